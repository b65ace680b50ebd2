#!/usr/bin/python3
"""Allocate and touch 1 GiB, 64 MiB at a time (every page is written, so it is
really resident): the memory limit (--memory) must stop it.
Expected: exit 125, "memory limit of N MiB reached"
"""
chunks = []
for i in range(16):
    chunks.append(b"\x01" * (64 << 20))
print("RESULT: allocated-1GiB", flush=True)
