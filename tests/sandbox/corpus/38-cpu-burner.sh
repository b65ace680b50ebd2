#!/bin/sh
# Two busy loops (a child and the hook itself): the CPU-time limit (--cpu)
# counts the whole tree.
# Expected: exit 125, "CPU-time limit of N s reached"
( while :; do :; done ) &
while :; do :; done
echo "RESULT: finished"
