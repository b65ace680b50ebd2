"""The sandbox on a pure cgroup v2 machine, under QEMU.

The suite's machine is a v1/v2 hybrid whose controllers sit on v1, so the
rest of the suite only ever sees the sandbox's v1 limits. Here debate
builds a bookworm live image (tests/integration/cgroup2/recipe.json:
systemd, which boots Debian 12 with the unified hierarchy only), QEMU boots
it with a second disk holding this checkout's build/debate,
build/tests/test_sandbox, test_sandbox.py and the escape corpus (its C
helpers compiled here), and the image's debate-cgroup2.service (root,
Delegate=yes) runs tests/integration/cgroup2/run.sh: two probes of where
builds' cgroups go (sandbox_prepare_cgroups's paths 2 and 3, see
docs/internals/sandbox.md), the sandbox's C unit tests, and the corpus with
its memory, process, CPU and disk limits. The CGROUP2- lines it writes to
out/summary on the test disk (and the serial console, which ends with
CGROUP2-DONE) are what the tests below check.

About ten minutes under TCG (the boot's timeout allows 40): it runs with
`make test-cgroup2` (DEBATE_TEST_CGROUP2=1), never in `make test`.
DEBATE_TEST_CACHE_DIR keeps the package cache between runs.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from test_build import boot

ROOT = Path(__file__).resolve().parents[2]
DEBATE = os.environ.get("DEBATE_BIN", str(ROOT / "build" / "debate"))
UNIT_TESTS = ROOT / "build" / "tests" / "test_sandbox"
HERE = ROOT / "tests" / "integration" / "cgroup2"
CORPUS = ROOT / "tests" / "sandbox" / "corpus"
MARKER = b"CGROUP2-DONE"
BOOT_TIMEOUT = 2400  # TCG is about ten times slower than the machine

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="debate build and the sandbox run as root"),
    pytest.mark.skipif(os.environ.get("DEBATE_TEST_CGROUP2") != "1",
                       reason="a live image booted under QEMU for about ten minutes: make test-cgroup2"),
]


def phase(what, t0):
    print(f"\ntest_cgroup2: {what} in {time.monotonic() - t0:.0f} s", flush=True)


def build_iso(work):
    env = dict(os.environ, DEBATE_DATA_DIR=str(work / "data"))
    cache = os.environ.get("DEBATE_TEST_CACHE_DIR")
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        env["DEBATE_CACHE_DIR"] = str(Path(cache).resolve())
    iso = work / "cgroup2.iso"
    t0 = time.monotonic()
    r = subprocess.run(["nice", "-n", "10", DEBATE, "build", str(HERE / "recipe.json"), "-o", str(iso)],
                       capture_output=True, text=True, env=env, timeout=3600)
    assert r.returncode == 0, f"debate build failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    phase("ISO built", t0)
    return iso


def make_disk(work):
    """The test disk: an ext4 image made from a directory (no mount)."""
    top = work / "disk"
    for rel in ("build/tests", "tests/integration", "tests/sandbox", "corpus-bin", "probe"):
        (top / rel).mkdir(parents=True)
    shutil.copy(DEBATE, top / "build" / "debate")
    shutil.copy(UNIT_TESTS, top / "build" / "tests" / "test_sandbox")
    for name in ("test_sandbox.py", "conftest.py"):
        shutil.copy(ROOT / "tests" / "integration" / name, top / "tests" / "integration" / name)
    shutil.copytree(CORPUS, top / "tests" / "sandbox" / "corpus")
    for c in sorted(CORPUS.glob("*.c")):
        r = subprocess.run(["gcc", "-static", "-O1", "-o", str(top / "corpus-bin" / c.stem), str(c)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"cannot compile {c.name}:\n{r.stderr}"
    shutil.copy(HERE / "run.sh", top / "run.sh")
    shutil.copy(HERE / "hold.sh", top / "probe" / "hold.sh")
    for f in top.rglob("*"):  # the sandbox's root (uid 100000) reads and runs the hooks as "other"
        f.chmod(0o755 if f.is_dir() or os.access(f, os.X_OK) else 0o644)
    disk = work / "tests.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "debate-tests", "-d", str(top), str(disk), "2G"],
                   check=True, capture_output=True, timeout=300)
    return disk


def disk_file(disk, path):
    """A file of the test disk's, read without mounting it."""
    r = subprocess.run(["debugfs", "-R", f"cat {path}", str(disk)], capture_output=True, text=True,
                       errors="replace", timeout=60)
    return r.stdout


@pytest.fixture(scope="module")
def console():
    """The CGROUP2- lines run.sh wrote (out/summary on the test disk) once it
    said CGROUP2-DONE on the serial console, with its logs for the failures'
    messages. The serial console itself is kept in TMPDIR for a diagnosis."""
    for f in (DEBATE, UNIT_TESTS):
        if not os.access(f, os.X_OK):
            pytest.fail(f"{f} is not built (make build/debate build/tests/test_sandbox)", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="debate-cgroup2-", dir="/var/tmp"))
    try:
        iso = build_iso(work)
        disk = make_disk(work)
        t0 = time.monotonic()
        serial = boot(iso, "bios", markers=(MARKER,), memory="2048", timeout=BOOT_TIMEOUT,
                      drives=(f"file={disk},format=raw,if=ide,index=1",), wrap=("nice", "-n", "10"))
        phase("booted and ran the tests", t0)
        (Path(tempfile.gettempdir()) / "debate-cgroup2-console.log").write_text(serial)
        logs = {name: disk_file(disk, f"/out/{name}") for name in ("unit.log", "pytest.log", "console.log")}
        yield Console(disk_file(disk, "/out/summary"), logs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Console(str):
    """The summary's text, with the machine's logs (name -> text) beside."""

    def __new__(cls, text, logs):
        c = super().__new__(cls, text)
        c.logs = logs
        return c


def values(console, key):
    """The rest of every line of the summary that starts with key."""
    found = re.findall(rf"^{re.escape(key)} ?(.*?)$", console, re.M)
    machine = getattr(console, "logs", {}).get("console.log", "")
    assert found, f"no {key} line in the summary:\n{console}\n--- the machine's output ---\n{machine[-3000:]}"
    return found


def value(console, key):
    return values(console, key)[-1]


def test_the_machine_is_pure_cgroup_v2(console):
    for line in values(console, "CGROUP2-TIME"):
        print(f"test_cgroup2: in the machine: {line} s")
    assert value(console, "CGROUP2-FSTYPE") == "cgroup2fs"
    assert value(console, "CGROUP2-V1-MOUNTS") == "0"
    assert {"memory", "pids", "cpu"} <= set(value(console, "CGROUP2-CONTROLLERS").split())
    # The runner is in its delegated service's cgroup.
    assert value(console, "CGROUP2-SELF") == "/system.slice/debate-cgroup2.service"


def test_the_sandbox_unit_tests_pass(console):
    summary = value(console, "CGROUP2-UNIT-SUMMARY")
    print(f"test_cgroup2: test_sandbox: {summary}")
    m = re.fullmatch(r"(\d+) passed, (\d+) failed, (\d+) skipped", summary)
    assert m, summary
    assert (int(m[2]), int(m[3])) == (0, 0) and int(m[1]) > 0, console.logs["unit.log"]
    assert value(console, "CGROUP2-UNIT-RC") == "0"


def test_the_corpus_and_its_limits_pass(console):
    summary = value(console, "CGROUP2-PYTEST-SUMMARY")
    print(f"test_cgroup2: test_sandbox.py: {summary}")
    assert not re.search(r"failed|error|skipped", summary), console.logs["pytest.log"][-6000:]
    m = re.search(r"(\d+) passed", summary)
    assert m and int(m[1]) >= len([f for f in CORPUS.iterdir() if f.suffix in (".sh", ".py", ".c")]), summary
    assert value(console, "CGROUP2-PYTEST-RC") == "0"


def probe(console, name):
    """What run.sh saw of a sandbox holding its payload: the payload's cgroup, the
    cgroups of debate's processes outside it (the caller and the supervisor;
    the sandbox's init is beside the payload) with their subtree_control, and
    debate's exit status."""
    lines = [line.split(" ", 1) for line in values(console, f"CGROUP2-PROBE {name}")]
    p = {what: [rest for key, rest in lines if key == what] for what in ("payload", "debate", "control", "exit")}
    p["debate"] = sorted(set(p["debate"]) - set(p["payload"]))
    p["control"] = sorted({c for c in p["control"] if c.split(" ")[0] in p["debate"]})
    return p


def test_alone_in_a_delegated_service_builds_go_beside_the_worker_leaf(console):
    p = probe(console, "leaf")
    assert p["exit"] == ["0"], p
    service = "/system.slice/debate-leaf-probe.service"
    assert p["debate"] == [f"{service}/debate-worker"], p
    assert len(p["payload"]) == 1, p
    assert re.fullmatch(rf"{re.escape(service)}/debate-sandbox-\d+-\d+", p["payload"][0]), p


def test_beside_a_shell_builds_go_below_debate_builds(console):
    """A service that is not delegated and holds a shell, as a login session's
    scope: debate leaves it as it is (its subtree_control untouched) and
    builds below /sys/fs/cgroup/debate-builds."""
    p = probe(console, "session")
    assert p["exit"] == ["0"], p
    service = "/system.slice/debate-session-probe.service"
    assert p["debate"] == [service], p
    assert p["control"] == [f"{service} []"], p
    assert len(p["payload"]) == 1, p
    assert re.fullmatch(r"/debate-builds/debate-sandbox-\d+-\d+", p["payload"][0]), p


def test_no_build_cgroup_is_left(console):
    assert value(console, "CGROUP2-LEFT") == "0"
