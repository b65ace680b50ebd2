#!/usr/bin/env python3
"""Fuzz each target until it has had a given amount of CPU time.

    scripts/fuzz-campaign.py --cpu-seconds 1800 [TARGET...]

Wall time says little on a shared machine (a fuzzer at the lowest priority
beside a build gets a fraction of a core), so each target runs until the
fuzzer process itself has used --cpu-seconds of CPU (user + system, read
from /proc), then is interrupted, which makes libFuzzer print its final
statistics (the CPU time reported is the reaped process's own, exact). One line per target goes to stdout and is appended to
build/fuzz/campaign.tsv: target, CPU seconds, wall seconds, executions,
coverage (edges), features, corpus size, and the crash or hang files it
wrote in build/fuzz/crashes/ (none: "-"; a fuzzer that stopped on its
own without one: "exit N").

New inputs go to build/fuzz/corpus/TARGET; fuzz/corpus/TARGET is only read.
Exit status: 0 when no target found anything, 1 otherwise, 2 on misuse.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "fuzz"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: the fields start after its ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def last_int(pattern, text):
    found = re.findall(pattern, text)
    return int(found[-1]) if found else None


def artifacts(crashes, target):
    """The target's crash, leak, timeout and slow-unit files, with their times
    (libFuzzer names them by their input's hash: finding one again rewrites it)."""
    return {c: c.stat().st_mtime_ns for c in crashes.glob(f"{target}-*")}


def reap(pid, timeout):
    """Waits up to timeout seconds for pid; (exit code or -signal, CPU seconds) or None."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def background():
    """In the fuzzer's process before exec: it is to take only the CPU that
    nothing else wants. nice 19 alone is not that where the kernel's
    autogroup scheduling is on (each session then gets a fair share as a
    whole, and nice ranks tasks within a session only): so the fuzzer gets a
    session of its own, that session's group is niced to 19, and the fuzzer
    runs at SCHED_IDLE."""
    os.setsid()
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("19")
    except OSError:
        pass  # no autogroup scheduling in this kernel
    os.nice(19)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def run(target, budget, log_dir):
    corpus = BUILD / "corpus" / target
    crashes = BUILD / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = artifacts(crashes, target)
    log = log_dir / f"{target}.log"
    # -timeout is per input and in wall time: 60 s, so that an input starved
    # of CPU at the lowest priority is not taken for a hang (a hang still is).
    argv = [str(BUILD / "targets" / target), "-timeout=60", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={crashes}/{target}-",
            str(corpus), str(ROOT / "fuzz" / "corpus" / target)]
    start = time.monotonic()
    interrupted = False
    with open(log, "w") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=background)
        try:
            while (ended := reap(p.pid, 0)) is None:
                if cpu_seconds(p.pid) >= budget:
                    interrupted = True
                    p.send_signal(signal.SIGINT)
                    ended = reap(p.pid, 60)
                    if ended is None:
                        p.kill()
                        ended = reap(p.pid, 60) or (-9, budget)
                    break
                time.sleep(1.0)
        except KeyboardInterrupt:  # the fuzzer is in a session of its own: ^C does not reach it
            p.send_signal(signal.SIGINT)
            if reap(p.pid, 60) is None:
                p.kill()
            raise
        p.returncode = ended[0]  # reaped here, not by Popen
    code, used = ended
    wall = time.monotonic() - start
    text = log.read_text(errors="replace")
    after = artifacts(crashes, target)
    found = sorted(str(c.relative_to(ROOT)) for c, t in after.items() if before.get(c) != t)
    # Interrupted at its budget, libFuzzer exits with 72; on its own, only
    # after something it reports (or could not start): either way a finding.
    if code != (72 if interrupted else 0) and not found:
        found = [f"exit {code} (see {log.relative_to(ROOT)})"]
    return {
        "target": target,
        "cpu_s": round(used),
        "wall_s": round(wall),
        "execs": last_int(r"stat::number_of_executed_units:\s*(\d+)", text),
        "cov": last_int(r"\bcov: (\d+)", text),
        "ft": last_int(r"\bft: (\d+)", text),
        "corpus": last_int(r"\bcorp: (\d+)", text),
        "found": ",".join(found) or "-",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-seconds", type=float, required=True)
    ap.add_argument("targets", nargs="*")
    args = ap.parse_args()
    names = sorted(p.stem for p in (ROOT / "fuzz").glob("*.c"))
    targets = args.targets or names
    unknown = [t for t in targets if t not in names]
    if unknown or args.cpu_seconds <= 0:
        print(f"fuzz-campaign: unknown target {' '.join(unknown)} (have: {' '.join(names)})"
              if unknown else "fuzz-campaign: --cpu-seconds must be positive", file=sys.stderr)
        return 2
    log_dir = BUILD / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    table = BUILD / "campaign.tsv"
    if not table.exists():
        table.write_text("date\ttarget\tcpu_s\twall_s\texecs\tcov\tft\tcorpus\tfound\n")
    failed = False
    for t in targets:
        row = run(t, args.cpu_seconds, log_dir)
        line = "\t".join(str(row[k]) for k in row)
        with open(table, "a") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\t" + line + "\n")
        print(f"fuzz {t}: {row['cpu_s']} CPU s in {row['wall_s']} s, {row['execs']} executions, "
              f"cov {row['cov']}, ft {row['ft']}, corpus {row['corpus']}, found {row['found']}",
              flush=True)
        failed |= row["found"] != "-"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
