#!/bin/sh
# Sleep far past the wall-time limit (--timeout).
# Expected: exit 125, "wall-time limit of N s reached"
sleep 600.7
echo "RESULT: woke"
