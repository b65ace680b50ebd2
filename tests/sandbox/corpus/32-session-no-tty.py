#!/usr/bin/python3
"""Stdin is /dev/null (the test feeds debate's stdin a pipe with text in it:
none of it may arrive) and there is no controlling terminal (tty_nr 0).
Expected: RESULT: no-ctty-stdin-null
"""
import os

with open("/proc/self/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
tty_nr = int(fields[4])          # field 7 of stat; fields[0] is the state (field 3)
stdin = os.readlink("/proc/self/fd/0")
data = os.read(0, 64)
print(f"tty_nr {tty_nr}; stdin -> {stdin}; read {data!r}; sid {os.getsid(0)}, pid {os.getpid()}")
if tty_nr == 0 and stdin == "/dev/null" and data == b"":
    print("RESULT: no-ctty-stdin-null", flush=True)
else:
    print(f"RESULT: tty_nr={tty_nr};stdin={stdin};read={len(data)}", flush=True)
