#!/bin/sh
# A sandbox payload that waits while run.sh reads which cgroup it is in.
sleep 15.3
echo "RESULT: held"
