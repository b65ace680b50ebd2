#!/usr/bin/python3
"""Runs every test of debate and prints one closing line: N passed, N failed.

Unit tests (C, tests/unit) run in the release build and under
AddressSanitizer + UndefinedBehaviorSanitizer; the integration tests
(pytest, tests/integration) drive both builds of the real binary.
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

passed, failed, failures = 0, 0, []


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


def record(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        failures.append((name, detail))


def run_unit(variant, build, db_url):
    tests_dir = os.path.join(ROOT, build, "tests")
    names = sorted(os.listdir(tests_dir)) if os.path.isdir(tests_dir) else []
    if not names:
        record(f"{variant}: unit tests", False, f"no unit test binaries in {tests_dir}")
    for name in names:
        env = dict(os.environ, DEBATE_TEST_DATABASE_URL=db_url, **SAN_ENV)
        try:
            p = subprocess.run([os.path.join(tests_dir, name)], capture_output=True, text=True, env=env,
                               timeout=300)
        except subprocess.TimeoutExpired:
            record(f"{variant}: {name}", False, "timed out")
            continue
        seen = 0
        for line in p.stdout.splitlines():
            m = re.match(r"(PASS|FAIL) (\S+)", line)
            if m:
                seen += 1
                record(f"{variant}: {name}.{m.group(2)}", m.group(1) == "PASS", p.stderr[-2000:])
        if seen == 0 or (p.returncode != 0 and "FAIL" not in p.stdout):
            record(f"{variant}: {name}", False, f"exit {p.returncode}\n{p.stdout[-1000:]}{p.stderr[-2000:]}")
        print(f"unit {variant} {name}: {p.stdout.strip().splitlines()[-1] if p.stdout.strip() else 'no output'}",
              flush=True)


def run_integration(variant, build):
    binary = os.path.join(ROOT, build, "debate")
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        env = dict(os.environ, DEBATE_BIN=binary, **SAN_ENV)
        if variant == "release":
            env["DEBATE_TEST_HEAVY"] = "1"  # the live image: built and booted once
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", xml,
               os.path.join(ROOT, "tests", "integration")]
        print(f"integration {variant}: {' '.join(cmd[2:])}", flush=True)
        p = subprocess.run(cmd, env=env, cwd=ROOT, timeout=2400)
        if not os.path.exists(xml):
            record(f"{variant}: pytest", False, f"pytest exited {p.returncode} without a report")
            return
        cases = ET.parse(xml).getroot().iter("testcase")
        count = 0
        for case in cases:
            count += 1
            name = f"{variant}: {case.get('classname')}.{case.get('name')}"
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if case.find("skipped") is not None:
                continue
            record(name, bad is None, (bad.get("message") or "")[:2000] if bad is not None else "")
        if count == 0:
            record(f"{variant}: pytest", False, "no integration test ran")


def main():
    only = sys.argv[1:]  # optional: "unit" or "integration"
    if not only or "unit" in only:
        cluster = Cluster()
        try:
            cluster.start()
        except (subprocess.CalledProcessError, RuntimeError) as e:
            record("unit: PostgreSQL for the database tests", False, f"{e}\n{getattr(e, 'stderr', '')}")
        try:
            for variant, build in VARIANTS:
                run_unit(variant, build, cluster.url)
        finally:
            cluster.stop()
    for variant, build in VARIANTS:
        if not only or "integration" in only:
            run_integration(variant, build)
    for name, detail in failures:
        print(f"FAILED {name}\n  {detail.strip()[:1500]}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
