#!/usr/bin/env python3
"""Fuzz each target until it has had a given amount of CPU time.

    scripts/fuzz-campaign.py --cpu-seconds 1800 [TARGET...]

Wall time says little on a shared machine (a fuzzer at the lowest priority
beside a build gets a fraction of a core), so each target runs until the
fuzzer process itself has used --cpu-seconds of CPU (user + system, read
from /proc), then is interrupted, which makes libFuzzer print its final
statistics. One line per target goes to stdout and is appended to
build/fuzz/campaign.tsv: target, CPU seconds, wall seconds, executions,
coverage (edges), features, corpus size, and the crash or hang files it
left in build/fuzz/crashes/ (none: "-").

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


def run(target, budget, log_dir):
    corpus = BUILD / "corpus" / target
    crashes = BUILD / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.glob(f"{target}-*"))
    log = log_dir / f"{target}.log"
    argv = [str(BUILD / "targets" / target), "-timeout=10", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={crashes}/{target}-",
            str(corpus), str(ROOT / "fuzz" / "corpus" / target)]
    start = time.monotonic()
    used = 0.0
    with open(log, "w") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             preexec_fn=lambda: os.nice(19))
        while p.poll() is None:
            try:
                used = cpu_seconds(p.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            if used >= budget:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                break
            time.sleep(min(5.0, max(0.5, budget - used)))
    wall = time.monotonic() - start
    text = log.read_text(errors="replace")
    found = sorted(str(c.relative_to(ROOT)) for c in set(crashes.glob(f"{target}-*")) - before)
    row = {
        "target": target,
        "cpu_s": round(used),
        "wall_s": round(wall),
        "execs": last_int(r"stat::number_of_executed_units:\s*(\d+)", text),
        "cov": last_int(r"\bcov: (\d+)", text),
        "ft": last_int(r"\bft: (\d+)", text),
        "corpus": last_int(r"\bcorp: (\d+)", text),
        "found": ",".join(found) or "-",
    }
    return row


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
