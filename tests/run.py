#!/usr/bin/python3
"""Runs every test of debate and prints one closing line:
N passed, N failed, N skipped.

Unit tests (C, tests/unit) run in the release build and under
AddressSanitizer + UndefinedBehaviorSanitizer; the integration tests
(pytest, tests/integration) drive both builds of the real binary. The
fuzz targets (fuzz/, built into build/fuzz/targets) replay their corpora.

A test that did not run is counted and listed as skipped, with its reason
(a unit test's "SKIP name: reason" line, a pytest skip's message), never
as passed. The run fails when a test failed or when nothing passed.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = [("release", "build"), ("asan", "build/asan")]
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "LSAN_OPTIONS": "suppressions=" + os.path.join(ROOT, "tests", "lsan.supp") + ":print_suppressions=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

class Cluster:
    """A private PostgreSQL cluster for the unit tests that need a database
    (unix socket only, in a temporary directory; as user postgres when root,
    since PostgreSQL refuses to run as root)."""

    def __init__(self):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                          key=lambda p: int(p.split("/")[4]))
        if not versions:
            raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql")
        self.bindir = os.path.dirname(versions[-1])
        self.tmp = tempfile.mkdtemp(prefix="debate-unit-pg-")
        os.chmod(self.tmp, 0o711)
        self.data = os.path.join(self.tmp, "data")
        self.run_dir = os.path.join(self.tmp, "run")
        os.mkdir(self.run_dir, 0o700)
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.tmp, "postgres")
            shutil.chown(self.run_dir, "postgres")
        self.url = f"host={self.run_dir} user=debate"

    def _pg(self, *args):
        subprocess.run(self.as_user + list(args), check=True, capture_output=True, timeout=120)

    def start(self):
        self._pg(f"{self.bindir}/initdb", "-D", self.data, "-U", "debate", "--auth=trust", "-E", "UTF8",
                 "--locale=C", "--no-instructions")
        opts = (f"-c listen_addresses='' -c unix_socket_directories='{self.run_dir}' "
                "-c max_connections=100 -c fsync=off -c synchronous_commit=off")
        self._pg(f"{self.bindir}/pg_ctl", "start", "-D", self.data, "-l", os.path.join(self.tmp, "log"),
                 "-w", "-t", "60", "-o", opts)

    def stop(self):
        try:
            self._pg(f"{self.bindir}/pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w")
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class Tally:
    """What the run found: counts, failures with their details, and skips
    with their reasons."""

    def __init__(self):
        self.passed, self.failed = 0, 0
        self.failures, self.skips = [], []

    def record(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append((name, detail))

    def skip(self, name, reason):
        self.skips.append((name, " ".join(reason.split()) or "no reason given"))

    def ok(self):
        """A run passes when nothing failed and something passed: a run of
        skips alone proves nothing."""
        return self.failed == 0 and self.passed > 0

    def report(self):
        """The closing lines: skips, failures, then the counts."""
        lines = [f"SKIPPED {name}: {reason[:160]}" for name, reason in self.skips]
        for name, detail in self.failures:
            lines.append(f"FAILED {name}\n  {detail.strip()[:1500]}")
        lines.append(f"{self.passed} passed, {self.failed} failed, {len(self.skips)} skipped")
        return "\n".join(lines)


UNIT_LINE = re.compile(r"(PASS|FAIL|SKIP) ([A-Za-z0-9_]+)(?:: (.*))?$")
# A binary whose every test skipped exits 1 (nothing passed) without a FAIL.
ONLY_SKIPPED = re.compile(r"0 passed, 0 failed, [1-9][0-9]* skipped$")


def unit_results(tally, label, returncode, stdout, stderr):
    """Counts one unit test binary's PASS, FAIL and SKIP lines; a binary
    that reported nothing, or exited non-zero without saying why, fails."""
    seen, fails = 0, 0
    for line in stdout.splitlines():
        m = UNIT_LINE.match(line)
        if not m:
            continue
        seen += 1
        test = f"{label}.{m.group(2)}"
        if m.group(1) == "SKIP":
            tally.skip(test, m.group(3) or "")
        else:
            fails += m.group(1) == "FAIL"
            tally.record(test, m.group(1) == "PASS", stderr[-2000:])
    last = stdout.strip().splitlines()[-1] if stdout.strip() else "no output"
    only_skipped = returncode == 1 and ONLY_SKIPPED.match(last)
    if seen == 0 or (returncode != 0 and fails == 0 and not only_skipped):
        tally.record(label, False, f"exit {returncode}\n{stdout[-1000:]}{stderr[-2000:]}")
    return last


def junit_results(tally, variant, xml):
    """Counts the test cases of a pytest JUnit report; skips keep their
    message."""
    count = 0
    for case in ET.parse(xml).getroot().iter("testcase"):
        count += 1
        name = f"{variant}: {case.get('classname')}.{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if skipped is not None and bad is None:
            tally.skip(name, skipped.get("message") or skipped.text or "")
            continue
        tally.record(name, bad is None, (bad.get("message") or "")[:2000] if bad is not None else "")
    if count == 0:
        tally.record(f"{variant}: pytest", False, "no integration test ran")


def run_unit(tally, variant, build, db_url):
    tests_dir = os.path.join(ROOT, build, "tests")
    names = sorted(os.listdir(tests_dir)) if os.path.isdir(tests_dir) else []
    if not names:
        tally.record(f"{variant}: unit tests", False, f"no unit test binaries in {tests_dir}")
    for name in names:
        env = dict(os.environ, DEBATE_TEST_DATABASE_URL=db_url, **SAN_ENV)
        try:
            p = subprocess.run([os.path.join(tests_dir, name)], capture_output=True, text=True, env=env,
                               timeout=300)
        except subprocess.TimeoutExpired:
            tally.record(f"{variant}: {name}", False, "timed out")
            continue
        last = unit_results(tally, f"{variant}: {name}", p.returncode, p.stdout, p.stderr)
        print(f"unit {variant} {name}: {last}", flush=True)


FUZZ_DIR = os.path.join(ROOT, "build", "fuzz", "targets")
FUZZ_EXECUTED = re.compile(r"^Executed (.+) in \d+ ms$", re.M)


def run_fuzz(tally):
    """Replays every fuzz target's corpus (fuzz/corpus/TARGET: the seeds and
    every input that once crashed) through the target once: one test per
    target, failed when an input crashes or breaks a promise, or when an
    input did not run. A target without a corpus, or a corpus without a
    target, fails too."""
    targets = sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(ROOT, "fuzz", "*.c")))
    if not targets:
        tally.record("fuzz: targets", False, "no fuzz target in fuzz/")
    for name in targets:
        binary = os.path.join(FUZZ_DIR, name)
        inputs = sorted(glob.glob(os.path.join(ROOT, "fuzz", "corpus", name, "*")))
        label = f"fuzz: {name}"
        if not os.access(binary, os.X_OK):
            tally.record(label, False, f"{binary} is not built (make fuzz-build)")
            continue
        if not inputs:
            tally.record(label, False, f"fuzz/corpus/{name}/ holds no input")
            continue
        try:
            p = subprocess.run([binary, "-timeout=10", "-rss_limit_mb=2048"] + inputs, capture_output=True,
                               text=True, errors="replace", env=dict(os.environ, **SAN_ENV), timeout=300)
        except subprocess.TimeoutExpired:
            tally.record(label, False, "timed out")
            continue
        ran = len(FUZZ_EXECUTED.findall(p.stderr))
        ok = p.returncode == 0 and ran == len(inputs)
        tally.record(label, ok, f"exit {p.returncode}, {ran} of {len(inputs)} inputs ran\n{p.stderr[-3000:]}")
        print(f"fuzz {name}: {ran} of {len(inputs)} inputs replayed, exit {p.returncode}", flush=True)


def run_integration(tally, variant, build):
    binary = os.path.join(ROOT, build, "debate")
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        env = dict(os.environ, DEBATE_BIN=binary, **SAN_ENV)
        if variant == "release":
            env["DEBATE_TEST_HEAVY"] = "1"  # the live image: built and booted once
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=15", "--junitxml", xml,
               os.path.join(ROOT, "tests", "integration")]
        print(f"integration {variant}: {' '.join(cmd[2:])}", flush=True)
        p = subprocess.run(cmd, env=env, cwd=ROOT, timeout=2400)
        if not os.path.exists(xml):
            tally.record(f"{variant}: pytest", False, f"pytest exited {p.returncode} without a report")
            return
        junit_results(tally, variant, xml)


def main():
    only = sys.argv[1:]  # optional: "unit", "fuzz" or "integration"
    tally = Tally()
    if not only or "unit" in only:
        cluster = Cluster()
        try:
            cluster.start()
        except (subprocess.CalledProcessError, RuntimeError) as e:
            tally.record("unit: PostgreSQL for the database tests", False, f"{e}\n{getattr(e, 'stderr', '')}")
        try:
            for variant, build in VARIANTS:
                run_unit(tally, variant, build, cluster.url)
        finally:
            cluster.stop()
    if not only or "fuzz" in only:
        run_fuzz(tally)
    for variant, build in VARIANTS:
        if not only or "integration" in only:
            run_integration(tally, variant, build)
    print(tally.report())
    return 0 if tally.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
