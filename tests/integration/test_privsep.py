"""The process model of `debate serve` started as root (docs/security.md):
the process that accepts connections runs as an unprivileged user with no
capabilities, no_new_privs and a seccomp filter; the build workers run in
a root process of their own; the supervisor stops everything when one of
them dies.

The checks look from outside at what the kernel enforces: the front door's
/proc/PID/status, and a helper run with the front door's uid and gid and
no capabilities (setpriv) that tries what a compromised front door would.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import DebateServer, _finish, _own_tmpdir, metric_value, module_server

RESTORED_AT = int(time.time()) - 3600

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="debate serve drops privileges only when started as root")

PROBE = r"""
import ctypes, errno, json, os, sys
key, csrf, artifacts, worker = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def open_close(path, flags):
    os.close(os.open(path, flags, 0o644))

libc = ctypes.CDLL(None, use_errno=True)
def ptrace_attach():
    if libc.ptrace(16, worker, None, None) != 0:      # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
    libc.ptrace(17, worker, None, None)               # PTRACE_DETACH

print(json.dumps({
    "tls_key": attempt(lambda: open_close(key, os.O_RDONLY)),
    "csrf_key": attempt(lambda: open_close(csrf, os.O_RDONLY)),
    "artifact_write": attempt(lambda: open_close(os.path.join(artifacts, "probe.iso"),
                                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL)),
    "artifact_list": attempt(lambda: os.listdir(artifacts)),
    "ptrace_worker": attempt(ptrace_attach),
}))
"""


@pytest.fixture(scope="module")
def privsep(request):
    """One server with a worker process, for the checks that leave it running."""
    def restore_record(srv):
        """A restore test's record, private to root as `debate restore-test` writes it."""
        backups = srv.data_dir / "backups"
        backups.mkdir(mode=0o700, parents=True)
        (backups / "restore-test.json").write_text(json.dumps({"last_success": RESTORED_AT, "dump": "x"}) + "\n")
        (backups / "restore-test.json").chmod(0o600)

    yield from module_server(request, "debate-privsep-", {"DEBATE_WORKERS": 1}, restore_record)


def listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def socket_owners(inodes):
    """The pids holding any of the sockets."""
    wanted = {f"socket:[{i}]" for i in inodes}
    owners = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    owners.add(int(pid))
            except OSError:
                pass
    return owners


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def children(pid):
    kids = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if status(p).get("PPid") == str(pid):
                kids.append(int(p))
        except OSError:
            pass
    return kids


def front_door(srv):
    owners = socket_owners(listening_inodes(srv.https_port))
    assert len(owners) == 1, f"the HTTPS port is held by {owners}, not by one process"
    return owners.pop()


def worker_process(srv, front):
    roots = [p for p in children(srv.proc.pid) if p != front and status(p)["Uid"].split()[0] == "0"]
    assert len(roots) == 1, f"children of the supervisor: {children(srv.proc.pid)}"
    return roots[0]


def test_the_process_that_accepts_connections_has_no_privileges(privsep):
    srv = privsep
    pid = front_door(srv)
    assert pid != srv.proc.pid, "the supervisor holds the listening socket"
    st = status(pid)
    assert all(u != "0" for u in st["Uid"].split()), st["Uid"]
    assert all(g != "0" for g in st["Gid"].split()), st["Gid"]
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[caps], 16) == 0, f"{caps} {st[caps]}"
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"  # a filter
    assert srv.get("/health").status == 200
    # The worker process keeps root, and holds no listening socket.
    assert worker_process(srv, pid) not in socket_owners(listening_inodes(srv.https_port))
    # logfmt escapes the quotes around the user's name
    assert re.search(r'front door running as user \\"[^"\\]+\\" \(uid \d+\), no capabilities', srv.stderr())


def test_the_front_doors_identity_cannot_read_secrets_write_artifacts_or_trace_the_worker(privsep):
    srv = privsep
    front = front_door(srv)
    worker = worker_process(srv, front)
    st = status(front)
    uid, gid = st["Uid"].split()[0], st["Gid"].split()[0]
    artifacts = srv.data_dir / "artifacts"
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "/usr/bin/python3", "-c", PROBE,
            str(srv.data_dir / "tls" / "server.key"), str(srv.data_dir / "csrf.key"), str(artifacts), str(worker)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got == {"tls_key": "EACCES", "csrf_key": "EACCES", "artifact_write": "EACCES",
                   "artifact_list": "ok", "ptrace_worker": "EPERM"}, got
    assert oct(artifacts.stat().st_mode & 0o777) == "0o755"


def test_the_front_door_sees_the_last_restore_test_it_cannot_read(privsep):
    """backup_dir is root's; the supervisor shares the time of the last success alone."""
    metrics = privsep.get("/metrics").text
    assert metric_value(metrics, "debate_backup_last_restore_test_success_timestamp_seconds") == RESTORED_AT
    ready = privsep.get("/ready").json()
    assert ready["checks"]["restore_test"]["ok"] is True, ready
    assert ready["checks"]["restore_test"]["last_success"] == RESTORED_AT
    shared = privsep.data_dir / "restore-test-success.json"
    assert json.loads(shared.read_text()) == {"last_success": RESTORED_AT}
    assert oct(shared.stat().st_mode & 0o777) == "0o644"


def test_a_dead_front_door_stops_the_server_with_an_error(debate_factory):
    srv = debate_factory(DEBATE_WORKERS=1)
    front = front_door(srv)
    worker = worker_process(srv, front)
    os.kill(front, signal.SIGKILL)
    rc = srv.wait_exit(20)
    srv._stopped = True  # its exit status is this test's to check
    for f in (srv._out, srv._err):
        f.close()
    assert rc == 1
    err = srv.stderr()
    assert f"the front door (pid {front}) was killed by signal 9: stopping the server" in err
    assert "build workers stopped" in err
    assert not os.path.exists(f"/proc/{worker}")
    # The embedded PostgreSQL went with it: its socket is gone.
    assert not list((srv.data_dir / "pg" / "run").glob(".s.PGSQL.*"))


def test_started_as_another_user_serve_is_one_unprivileged_process(monkeypatch):
    """systemd User=debate with workers = 0: nothing to drop, no worker process."""
    workdir = _own_tmpdir("debate-unprivileged-")
    os.chown(workdir, 65534, 65534)
    srv = DebateServer(workdir, {"DEBATE_WORKERS": 0})
    popen = subprocess.Popen

    def as_nobody(argv, **kw):
        return popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                      "--bounding-set=-all"] + list(argv), **kw)

    monkeypatch.setattr(subprocess, "Popen", as_nobody)
    try:
        srv.start()
        monkeypatch.undo()
        assert front_door(srv) == srv.proc.pid
        assert status(srv.proc.pid)["Uid"].split() == ["65534"] * 4
        assert not [p for p in children(srv.proc.pid) if "debate" in open(f"/proc/{p}/cmdline").read()]
        ready = srv.get("/ready").json()
        assert ready["checks"]["workers"] == {"in_process": 0}
        assert "front door running as user" not in srv.stderr()
    finally:
        monkeypatch.undo()
        try:
            _finish([srv])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
