"""debate sandbox: the hostile-hook corpus (tests/sandbox/corpus) run inside
the sandbox every build runs in.

Each hook tries one escape or abuse and prints a last line
``RESULT: <token>``; CASES below says, for every corpus file, which limits
and arguments it runs with, which exit status debate must give, and which
tokens are acceptable (or, for hooks the sandbox must stop, which cause
debate names on stderr). Around the corpus:

* the host tree outside the build directories is unchanged (a checksum of
  /etc, /usr/bin, /usr/sbin, /boot, /root/.ssh before the first case and
  after the last), and so are the host's name, a host process the hooks
  attack, a host directory a planted symlink points into;
* nothing a hook started survives it, nothing stays mounted, no loop device
  stays attached;
* the host stays usable while a fork bomb and a memory hog run in two
  sandboxes at once.

Hooks that need a compiled helper are .c files, built here with gcc -static,
or taken already built from the directory DEBATE_TEST_CORPUS_BIN names (a
machine without gcc: the cgroup v2 machine of test_cgroup2.py).
"""
import hashlib
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBATE = os.environ.get("DEBATE_BIN", str(ROOT / "build" / "debate"))
CORPUS = ROOT / "tests" / "sandbox" / "corpus"
PREBUILT = os.environ.get("DEBATE_TEST_CORPUS_BIN")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="debate sandbox runs as root")

# Every case runs on a small build disk with a wall-time limit, unless its
# entry says otherwise.
DEFAULT_LIMITS = {"disk": 64, "timeout": 30}
KILLED = "killed for a system call the sandbox forbids"
# Processes that must not outlive the sandbox that started them: every hook
# runs as /mnt/in/<file> (its children keep that in their command line), and
# the markers the daemon and the long sleep carry.
SURVIVOR_PATTERNS = ("/mnt/in/", "sleep 8765.31", "sleep 600.7")
# Host paths a hook would have created if a write got out (see 12, 16, 17).
ESCAPE_MARKERS = ("/usr/.debate-sandbox-escape-marker", "/usr/bin/.debate-sandbox-escape-marker",
                  "/usr/lib/.debate-sandbox-escape-marker", "/etc/.debate-sandbox-escape-marker",
                  "/.debate-sandbox-escape-marker", "/mnt/.debate-sandbox-escape-marker",
                  "/usr/.debate-sandbox-mount-marker", "/usr/.debate-sandbox-rw-marker",
                  "/usr/debate-sandbox-dir", "/debate-sandbox-dir")
# The host tree that must come out of the corpus unchanged.
SNAPSHOT_TREES = ("/etc", "/usr/bin", "/usr/sbin", "/boot", "/root/.ssh")
SNAPSHOT_LISTINGS = ("/", "/usr")
SNAPSHOT_MAX_CONTENT = 1 << 20


# --------------------------------------------------------------------------
# checks made on the host after particular cases
# --------------------------------------------------------------------------

def nothing_accepted(sock, what):
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail(f"the {what} on the host accepted a connection from inside the sandbox")


def host_port_untouched(h):
    nothing_accepted(h.tcp, "TCP server")


def abstract_socket_untouched(h):
    nothing_accepted(h.abstract, "abstract unix socket")


def sleeper_alive(h):
    time.sleep(0.2)
    assert h.sleeper.poll() is None, "the host process the hook attacked is dead"


def no_escape_markers(h):
    found = [p for p in ESCAPE_MARKERS if os.path.lexists(p)]
    found += [str(p) for p in h.in_dir.iterdir() if p.name.startswith((".debate-sandbox", "debate-sandbox"))]
    for p in found:  # clean up, then fail
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)
    assert not found, f"a hook wrote outside the sandbox: {found}"


def usr_not_covered(h):
    no_escape_markers(h)
    assert os.path.isfile("/usr/bin/python3"), "the host's /usr lost its contents"
    assert "debate-evil-usr" not in Path("/proc/self/mountinfo").read_text(), \
        "the tmpfs a hook mounted over /usr is visible on the host"


def victim_untouched(h):
    assert list(h.victim.iterdir()) == [], \
        f"a planted symlink wrote into the host directory {h.victim}: {list(h.victim.iterdir())}"


def hostname_unchanged(h):
    assert socket.gethostname() == h.hostname, "a hook changed the host's name"


def daemon_gone(h):
    left = survivors()
    assert not left, f"the daemon outlived the sandbox: {left}"


# --------------------------------------------------------------------------
# the table: corpus file -> what it must see
# --------------------------------------------------------------------------

@dataclass
class Case:
    results: frozenset = None       # acceptable RESULT tokens; None: not checked
    exit: int = 0                   # debate's exit status
    cause: str = None               # with exit 125: the cause on stderr
    args: tuple = ()                # arguments, with {placeholders} from Host.placeholders
    limits: dict = field(default_factory=dict)
    post: object = None             # a check made on the host afterwards


def sees(*tokens, **kw):
    return Case(results=frozenset(tokens), **kw)


def stopped(cause, **kw):
    return Case(exit=125, cause=cause, **kw)


CASES = {
    # positive checks: what the sandbox is
    "01-uid-map.sh": sees("mapped"),
    "02-nnp-seccomp.sh": sees("nnp1-seccomp2"),
    "03-env-exact.py": sees("exact"),
    "04-network-lo-only.py": sees("lo-only-up"),
    "55-workdir-writable.sh": sees("writable", limits={"disk": 64}),
    "56-no-host-dirs.sh": sees("no-host-dirs"),
    "57-passwd-minimal.sh": sees("minimal"),
    # network
    "05-connect-host-port.py": sees("ECONNREFUSED", args=("{port}",), post=host_port_untouched),
    "06-connect-outside.py": sees("ENETUNREACH"),
    "07-dns-python.py": sees("no-dns"),
    "08-dns-getent.sh": sees("no-dns"),
    "42-abstract-socket.py": sees("ECONNREFUSED", args=("{abstract}",), post=abstract_socket_untouched),
    # host files, sockets, processes
    "09-read-shadow.sh": sees("ENOENT"),
    "10-proc1-environ.py": sees("no-secret"),
    "11-postgres-socket.py": sees("ENOENT"),
    "12-write-outside.py": sees("blocked", post=no_escape_markers),
    "13-symlink-plant.sh": sees("planted", args=("{victim}",), post=victim_untouched),
    "14-ptrace-host.py": sees("EPERM", "ESRCH", args=("{host_pid}",), post=sleeper_alive),
    "15-kill-host.py": sees("ESRCH", args=("{host_pid}",), post=sleeper_alive),
    "24-chroot-escape.py": sees("contained", args=("{canary}",)),
    "58-chroot-escape-fd.c": sees("contained"),
    "31-inherited-fds.py": sees("fds=0,1,2"),
    "32-session-no-tty.py": sees("no-ctty-stdin-null"),
    "43-no-sys.sh": sees("ENOENT"),
    "44-dev-minimal.sh": sees("minimal"),
    "46-sysrq-trigger.py": sees("EACCES", "EROFS", "EPERM", "ENOENT"),
    "47-proc-kcore.py": sees("EACCES", "EPERM", "ENOENT"),
    "54-proc-sys-write.py": sees("blocked"),
    # mounts and privileges
    "16-mount-tmpfs-over-usr.py": sees("private-mount", args=("{mnt_ns}",), post=usr_not_covered),
    "17-remount-usr-rw.py": sees("EPERM", args=("{mnt_ns}",), post=no_escape_markers),
    "30-setuid-binary.sh": sees("euid=65534"),
    "45-mknod-block.py": sees("EPERM"),
    "49-sethostname.py": sees("private", args=("{uts_ns}",), post=hostname_unchanged),
    "50-set-clock.py": sees("EPERM"),
    "53-cgroup-escape.py": sees("contained"),
    # the system call filter
    "18-unshare-newuser.py": sees("EPERM"),
    "19-kernel-modules.py": sees("EPERM"),
    "20-kexec.py": sees("EPERM"),
    "21-bpf.py": sees("EPERM"),
    "22-perf-event-open.py": sees("EPERM"),
    "23-keyctl.py": sees("EPERM"),
    "25-tiocsti-devtty.py": sees("ENOENT", "ENXIO", "EIO"),
    "26-tiocsti-pty.py": sees("EPERM"),
    "27-tiocsti-highbits.py": sees("EPERM"),
    "28-tioclinux.py": sees("EPERM"),
    "29-clone3.py": sees("ENOSYS"),
    "48-open-by-handle-at.py": sees("EPERM"),
    "51-setns.py": sees("EPERM"),
    "52-misc-privileged.py": sees("EPERM"),
    "40-int80-getpid.c": stopped(KILLED),
    "41-x32-syscall.c": stopped(KILLED),
    # limits
    "33-fork-loop.py": stopped("process limit of 64 reached", limits={"pids": 64}),
    "34-forkbomb-classic.sh": stopped("process limit of 64 reached", limits={"pids": 64}),
    "35-memory-hog.py": stopped("memory limit of 128 MiB reached", limits={"memory": 128}),
    "36-disk-fill.sh": stopped("disk limit of 64 MiB reached", limits={"disk": 64}),
    "37-sleep-past-wall.sh": stopped("wall-time limit of 3 s reached", limits={"timeout": 3}),
    "38-cpu-burner.sh": stopped("CPU-time limit of 2 s reached", limits={"cpu": 2, "timeout": 60}),
    "39-double-fork-daemon.sh": sees("daemonized", post=daemon_gone),
}

# Upper bounds on how long a stopped case may take (the limit plus setup).
MAX_SECONDS = {"37-sleep-past-wall.sh": 20, "38-cpu-burner.sh": 40}


# --------------------------------------------------------------------------
# host state
# --------------------------------------------------------------------------

def host_snapshot():
    """path -> description, for the host tree the corpus must not change:
    mode, owner, size, mtime and content (regular files under 1 MiB), link
    targets, and the names in a few top-level directories."""
    snap = {}

    def describe(path):
        st = os.lstat(path)
        base = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode):
            digest = None
            if st.st_size < SNAPSHOT_MAX_CONTENT:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            return base + (st.st_size, st.st_mtime_ns, digest)
        if stat.S_ISLNK(st.st_mode):
            return base + (os.readlink(path),)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            return base + (st.st_rdev,)
        return base

    for top in SNAPSHOT_TREES:
        if not os.path.isdir(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            snap[dirpath] = describe(dirpath) + (tuple(sorted(dirnames + filenames)),)
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    snap[p] = describe(p)
                except OSError as e:
                    snap[p] = ("unreadable", e.errno)
    for d in SNAPSHOT_LISTINGS:
        snap["listing " + d] = tuple(sorted(os.listdir(d)))
    return snap


def diff_snapshots(before, after):
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed[:20]]


def mounts():
    """(mount point, file system type, source) of every mount the test sees."""
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fields, rfields = left.split(), right.split()
        out.add((fields[4], rfields[0], rfields[1] if len(rfields) > 1 else ""))
    return out


def loop_devices():
    p = subprocess.run(["losetup", "-a"], capture_output=True, text=True, timeout=30)
    return set(p.stdout.splitlines())


def survivors():
    found = []
    for pattern in SURVIVOR_PATTERNS:
        p = subprocess.run(["pgrep", "-a", "-f", pattern], capture_output=True, text=True, timeout=30)
        found += p.stdout.splitlines()
    return found


def wait_no_survivors(grace=3.0):
    deadline = time.monotonic() + grace
    left = survivors()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = survivors()
    return left


# --------------------------------------------------------------------------
# the host side of the corpus
# --------------------------------------------------------------------------

class Host:
    """What the hooks attack and the test watches: a TCP server and an abstract
    unix socket on the host, a sleeping host process, a canary file in /root,
    a host directory a planted symlink points into, an fd debate inherits, the
    secret in debate's environment; and the state before the first case."""


def program_name(corpus_file):
    return corpus_file[:-2] if corpus_file.endswith(".c") else corpus_file


@pytest.fixture(scope="module")
def host():
    if not (os.path.isfile(DEBATE) and os.access(DEBATE, os.X_OK)):
        pytest.fail(f"debate binary not found: {DEBATE} (set DEBATE_BIN)", pytrace=False)
    h = Host()
    h.tmp = Path(tempfile.mkdtemp(prefix="debate-sbx-"))
    h.tmp.chmod(0o755)
    h.data_dir = h.tmp / "data"
    h.data_dir.mkdir()
    h.in_dir = h.tmp / "in"
    h.in_dir.mkdir(mode=0o755)
    h.in_dir.chmod(0o755)
    # The corpus, readable and executable by the sandbox's root (host uid
    # 100000, "other" to these files); .c hooks compiled on the host.
    for f in sorted(CORPUS.iterdir()):
        if f.suffix == ".c" and PREBUILT:
            shutil.copy(Path(PREBUILT) / f.stem, h.in_dir / f.stem)
        elif f.suffix == ".c":
            r = subprocess.run(["gcc", "-static", "-O1", "-o", str(h.in_dir / f.stem), str(f)],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, f"cannot compile {f.name}:\n{r.stderr}"
        elif f.suffix in (".sh", ".py"):
            shutil.copy(f, h.in_dir / f.name)
        else:
            continue
        (h.in_dir / program_name(f.name)).chmod(0o755)

    h.secret = secrets.token_hex(16)
    h.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    h.tcp.bind(("127.0.0.1", 0))
    h.tcp.listen(8)
    h.tcp.setblocking(False)
    h.abstract_name = f"debate-test-{secrets.token_hex(8)}"
    h.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    h.abstract.bind("\0" + h.abstract_name)
    h.abstract.listen(8)
    h.abstract.setblocking(False)
    h.sleeper = subprocess.Popen(["sleep", "3600.42"], start_new_session=True)
    h.canary = Path("/root") / f".debate-sandbox-canary-{secrets.token_hex(6)}"
    h.canary.write_text(h.secret + "\n")
    h.victim = Path(tempfile.mkdtemp(prefix="debate-sbx-victim-", dir="/var/tmp"))
    h.leak_fd = os.open(h.canary, os.O_RDONLY)   # inherited by debate: must not reach a hook
    h.hostname = socket.gethostname()
    h.placeholders = {
        "port": h.tcp.getsockname()[1],
        "abstract": h.abstract_name,
        "host_pid": h.sleeper.pid,
        "canary": h.canary.name,
        "victim": str(h.victim),
        "mnt_ns": os.readlink("/proc/self/ns/mnt"),
        "uts_ns": os.readlink("/proc/self/ns/uts"),
    }
    h.snapshot = host_snapshot()
    h.mounts = mounts()
    h.loops = loop_devices()
    try:
        yield h
    finally:
        h.sleeper.kill()
        h.sleeper.wait()
        h.tcp.close()
        h.abstract.close()
        os.close(h.leak_fd)
        h.canary.unlink(missing_ok=True)
        shutil.rmtree(h.victim, ignore_errors=True)
        shutil.rmtree(h.tmp, ignore_errors=True)


def sandbox_cmd(h, program, args=(), limits=None):
    opts = dict(DEFAULT_LIMITS, **(limits or {}))
    cmd = [DEBATE, "sandbox"]
    for k, v in opts.items():
        cmd += [f"--{k}", str(v)]
    return cmd + ["--in", str(h.in_dir), "--", f"/mnt/in/{program}", *args], opts


def sandbox_env(h):
    """debate's environment: the caller's, plus the secret and variables a hook
    must not see (the sandbox gives PROGRAM exactly four of its own)."""
    return dict(os.environ, DEBATE_DATA_DIR=str(h.data_dir), DEBATE_TEST_SECRET=h.secret,
                TZ="Asia/Tokyo", PYTHONPATH="/nonexistent", PYTHONSTARTUP="/nonexistent/startup.py",
                ENV="/nonexistent/env.sh", BASH_ENV="/nonexistent/bash_env.sh",
                http_proxy="http://192.0.2.1:3128", https_proxy="http://192.0.2.1:3128",
                HOME="/root/caller-home")


def run_sandbox(h, program, args=(), limits=None):
    cmd, opts = sandbox_cmd(h, program, args, limits)
    t0 = time.monotonic()
    p = subprocess.run(cmd, input="host stdin: must not reach the hook\n", capture_output=True, text=True,
                       errors="replace", env=sandbox_env(h), timeout=int(opts["timeout"]) + 60,
                       pass_fds=(h.leak_fd,))
    p.elapsed = time.monotonic() - t0
    return p


def result_of(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT: "):
            return line[len("RESULT: "):].strip()
    return None


def explain(cmd_desc, p):
    return (f"{cmd_desc}: exit {p.returncode} after {p.elapsed:.1f} s\n"
            f"--- stdout (hook output) ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-2000:]}")


def assert_cause(p, cause, what):
    lines = [l for l in p.stderr.splitlines() if l.startswith("debate sandbox: ")]
    assert any(cause in l for l in lines), f"no 'debate sandbox: {cause}' line on stderr\n{what}"


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------

def corpus_files():
    return sorted(f.name for f in CORPUS.iterdir() if f.suffix in (".sh", ".py", ".c"))


def test_corpus_matches_the_table():
    files = corpus_files()
    assert len(files) >= 34
    assert set(files) == set(CASES), (f"corpus files without an entry: {sorted(set(files) - set(CASES))}; "
                                      f"entries without a file: {sorted(set(CASES) - set(files))}")
    for name in files:
        f = CORPUS / name
        assert name[:2].isdigit() and name[2] == "-", f"{name}: not named NN-what"
        if f.suffix == ".c":
            continue
        first = f.read_text().splitlines()[0]
        assert first == {".sh": "#!/bin/sh", ".py": "#!/usr/bin/python3"}[f.suffix], f"{name}: shebang {first!r}"
        assert os.access(f, os.X_OK), f"{name} is not executable"
        assert "RESULT: " in f.read_text(), f"{name} never prints a RESULT line"


@pytest.mark.parametrize("corpus_file", sorted(CASES))
def test_hostile_hook(host, corpus_file):
    case = CASES[corpus_file]
    program = program_name(corpus_file)
    args = [a.format(**host.placeholders) for a in case.args]
    p = run_sandbox(host, program, args, case.limits)
    what = explain(f"debate sandbox ... -- /mnt/in/{program} {' '.join(args)}", p)

    assert host.secret not in p.stdout + p.stderr, f"the secret from debate's environment leaked\n{what}"
    assert p.returncode == case.exit, f"expected exit {case.exit}\n{what}"
    if case.cause is not None:
        assert_cause(p, case.cause, what)
    if case.results is not None:
        token = result_of(p.stdout)
        assert token in case.results, f"RESULT {token!r}, expected one of {sorted(case.results)}\n{what}"
    if corpus_file in MAX_SECONDS:
        assert p.elapsed < MAX_SECONDS[corpus_file], f"took too long\n{what}"

    left = wait_no_survivors()
    for line in left:  # clean up what escaped, then fail
        try:
            os.kill(int(line.split()[0]), 9)
        except (ProcessLookupError, ValueError):
            pass
    assert not left, f"processes outlived the sandbox: {left}\n{what}"
    if case.post is not None:
        case.post(host)


def test_host_stays_usable_under_a_fork_bomb_and_a_memory_hog(host):
    """A fork bomb and a memory hog, each in its own sandbox, the two at once and
    started again as soon as the sandbox stops them (a sandbox that kills on
    the limit ends each run within a second): meanwhile the host still starts
    processes and computes, each within generous bounds (this shows liveness,
    not speed). Every run must end on its limit."""
    limits = {"pids": 128, "memory": 256, "timeout": 20}
    expected = {"34-forkbomb-classic.sh": "process limit of 128 reached",
                "35-memory-hog.py": "memory limit of 256 MiB reached"}
    env = sandbox_env(host)
    stop = threading.Event()
    runs = {name: [] for name in expected}
    running = {name: 0 for name in expected}

    def keep_running(name):
        cmd, _ = sandbox_cmd(host, name, limits=limits)
        while not stop.is_set():
            running[name] += 1
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors="replace", env=env, timeout=80)
            running[name] -= 1
            runs[name].append(p)

    threads = [threading.Thread(target=keep_running, args=(name,), daemon=True) for name in expected]
    for t in threads:
        t.start()
    probes, overlapped = 0, 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            overlapped += all(running.values())
            t0 = time.monotonic()
            subprocess.run(["/bin/true"], check=True, timeout=60)
            assert time.monotonic() - t0 < 10, "starting /bin/true on the host took over 10 s"
            t0 = time.monotonic()
            total = sum(i * i for i in range(100_000))
            assert total > 0 and time.monotonic() - t0 < 10, "a small computation on the host took over 10 s"
            probes += 1
            if probes >= 20 and all(len(r) >= 3 for r in runs.values()):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    print(f"{probes} probes, {overlapped} of them while both sandboxes ran; "
          f"runs: { {k: len(v) for k, v in runs.items()} }")
    for name, done in runs.items():
        assert done, f"{name}: no run finished"
        for p in done:
            what = f"{name}: exit {p.returncode}\n--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-2000:]}"
            assert p.returncode == 125, what
            assert any(l.startswith("debate sandbox: ") and expected[name] in l for l in p.stderr.splitlines()), what
    left = wait_no_survivors()
    assert not left, f"processes outlived the sandboxes: {left}"


def test_no_work_directories_are_left_behind(host):
    left = []
    for dirpath, dirnames, filenames in os.walk(host.data_dir):
        left += [os.path.join(dirpath, n) for n in dirnames + filenames]
    work = [p for p in left if "/sandboxes/" in p]
    assert not work, f"sandbox work directories or disk images left behind: {work[:10]}"


def test_host_is_unchanged_after_the_corpus(host):
    """Runs last: the host tree, processes, mounts and loop devices."""
    after = host_snapshot()
    assert after == host.snapshot, "the host tree changed:\n" + "\n".join(diff_snapshots(host.snapshot, after))

    assert wait_no_survivors() == []
    assert host.sleeper.poll() is None, "the host process the hooks attacked is dead"
    assert socket.gethostname() == host.hostname
    assert list(host.victim.iterdir()) == []
    assert host.canary.read_text() == host.secret + "\n"
    no_escape_markers(host)

    # Mounts: none new since the module started, none naming this module's
    # directories or the tmpfs hook 16 mounted, none at the sandbox's paths.
    new_mounts = mounts() - host.mounts
    assert not new_mounts, f"mounts left on the host: {sorted(new_mounts)}"
    info = Path("/proc/self/mountinfo").read_text()
    watched = (str(host.tmp), "debate-evil")
    assert not [w for w in watched if w in info], f"a mount mentions a debate path:\n{info}"
    for line in info.splitlines():
        point = line.split()[4]
        assert point not in ("/mnt/build", "/mnt/in"), f"a sandbox mount reached the host: {line}"

    # Loop devices: none backed by a file of this module (its sandboxes' disks
    # live under its data directory) and none new backed by a debate work file
    # (.debate-*); those attached before the module started (a build of
    # another module) are not its business. Autoclear is asynchronous: wait.
    def leaked_loops():
        return sorted(l for l in loop_devices()
                      if str(host.tmp) in l or (l not in host.loops and ".debate-" in l))

    deadline = time.monotonic() + 10
    leaked = leaked_loops()
    while leaked and time.monotonic() < deadline:
        time.sleep(0.2)
        leaked = leaked_loops()
    assert not leaked, f"loop devices backed by debate files left attached: {leaked}"
