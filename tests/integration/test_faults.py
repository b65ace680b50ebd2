"""Faults under load: what the service does when the things it stands on fail.

The builds here are the no-op jobs of build/tools/queue_worker (the real
worker loop, src/service/worker.c, with a payload that sleeps, then makes a
small "ISO" in artifact_dir/tmp and publishes it with the real
worker_publish): real claims, leases, heartbeats, sweeps, lease-checked
finishes and a real artifact store, without the minutes a real image costs.
The server is `debate serve` with no workers of its own on a PostgreSQL
cluster of the test's own (conftest.py's pg_cluster), so the test can stop
and start it.

* PostgreSQL stopped for 20 s while builds run and wait: the API answers
  503 (database_unavailable) meanwhile and recovers without a restart;
  every build ends, exactly once; none is lost.
* A worker stopped (SIGSTOP) past its lease, then continued: another
  worker finishes the build; the first one's outcome is refused; one
  artifact.
* The artifact store's disk full (a small tmpfs as artifact_dir): the
  build fails with the cause (disk_full) at the end of its log, no partial
  ISO is ever in the store or served, and once there is room again the
  same recipe builds.
* An artifact deleted or changed behind the server: 410, never wrong bytes;
  one written to while it is downloaded: the response is cut short.
* Sixteen worker processes, each in a network namespace of its own with a
  data directory of its own, reaching PostgreSQL over TCP and sharing the
  artifact store, four of them killed and restarted: every job ends once,
  none beyond max_attempts, each succeeded job's ISO in the store.

The outage waits 20 s by design, and the namespaced workers use no debate
binary: both run in the release run only.
"""

import collections
import hashlib
import http.client
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PgCluster, _own_tmpdir, as_pg_user, free_ports
from test_service import Api, tiny_unique

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "build" / "tools" / "queue_worker"

pytestmark = [
    pytest.mark.skipif(not TOOL.exists(), reason="build/tools/queue_worker is built by make test"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the fault tests mount file systems and run PostgreSQL as root"),
]
release_only = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                                  reason="waits out a 20 s outage: run once, in the release run")
# queue_worker is built once (release): a test of it alone runs once.
workers_only = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                                  reason="queue_worker alone, built once: run once, in the release run")

LEASE = 3                # heartbeat every second; a stalled worker's build is requeued within ~5 s
ISO_BYTES = 64 * 1024    # the no-op's ISO
TERMINAL = ("succeeded", "failed", "cancelled")


# --------------------------------------------------------------------------
# the pieces: the server, no-op workers, the database
# --------------------------------------------------------------------------

class QueueWorker:
    """A queue_worker process (its own session) taking no-op jobs."""

    def __init__(self, url, log_dir, name, threads=1, **env):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        full = dict(os.environ, DEBATE_LEASE_SECONDS=str(LEASE), DEBATE_LOG_LEVEL="info",
                    DEBATE_TEST_NOOP_ISO_BYTES=str(ISO_BYTES))
        full.update({k: str(v) for k, v in env.items()})
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv(url, threads), stdout=self._log, stderr=self._log, env=full,
                                     start_new_session=True)

    def argv(self, url, threads):
        return [str(TOOL), "work", url, str(threads)]

    @property
    def owner(self):
        """The lease owner names of this process: host:pid:n."""
        return f":{self.proc.pid}:"

    def log(self):
        return self.log_path.read_text("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)   # a stopped process cannot act on SIGTERM
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self._log.close()


class Faults:
    """One test's server, workers and artifact store on the test's PostgreSQL."""

    def __init__(self, pg, factory, workdir):
        self.pg = pg
        self.workdir = workdir
        self.artifact_dir = workdir / "artifacts"
        self.artifact_dir.mkdir(exist_ok=True)
        self.factory = factory
        self.workers = []
        self.srv = None
        self.api = None

    def server(self, **env):
        self.srv = self.factory(DEBATE_DATABASE_URL=self.pg.url, DEBATE_WORKERS=0,
                                DEBATE_ARTIFACT_DIR=self.artifact_dir, DEBATE_RATE_LIMIT=100000,
                                DEBATE_SUBMIT_LIMIT=1000, DEBATE_SUBMIT_WINDOW=3600, **env)
        self.api = Api(self.srv)
        wait_for(lambda: self.api.get("/api/v1/health/db", timeout=5).status == 200, 60,
                 "the server's database to be ready")
        return self.srv

    def worker(self, threads=1, **env):
        w = QueueWorker(self.pg.url, self.workdir, f"worker{len(self.workers)}", threads,
                        DEBATE_ARTIFACT_DIR=self.artifact_dir, **env)
        self.workers.append(w)
        time.sleep(0.3)
        assert w.proc.poll() is None, f"{w.name} exited at once:\n{w.log()}"
        return w

    def submit_noop(self, n, max_attempts=3):
        """Queues n no-op jobs; returns their ids."""
        before = set(self.ids())
        subprocess.run([str(TOOL), "submit", self.pg.url, str(n)], check=True, timeout=60,
                       env=dict(os.environ, DEBATE_MAX_ATTEMPTS=str(max_attempts)))
        new = [i for i in self.ids() if i not in before]
        assert len(new) == n, new
        return new

    def ids(self):
        out = self.pg.psql("SELECT id FROM builds WHERE kind = 'noop' ORDER BY created_at, id")
        return out.split() if out else []

    def rows(self):
        """{id: (status, attempts, error_code, iso_sha256)} of every no-op job."""
        out = self.pg.psql("SELECT id, status, attempts, coalesce(error_code, ''), coalesce(iso_sha256, '') "
                           "FROM builds WHERE kind = 'noop'")
        rows = {}
        for line in (out or "").splitlines():
            bid, status, attempts, code, sha = line.split("|")
            rows[bid] = (status, int(attempts), code, sha)
        return rows

    def count(self, where):
        return int(self.pg.psql(f"SELECT count(*) FROM builds WHERE kind = 'noop' AND {where}"))

    def finished_lines(self):
        """How many times each job's outcome was recorded, by the workers' logs."""
        seen = collections.Counter()
        for w in self.workers:
            for m in re.finditer(r"build ([0-9a-f-]{36}): (succeeded|failed)\b", w.log()):
                seen[m.group(1)] += 1
        return seen

    def isos(self):
        return sorted(p.name for p in self.artifact_dir.glob("*.iso"))

    def logs(self):
        out = [f"--- server stderr ---\n{self.srv.stderr()[-3000:]}" if self.srv else ""]
        out += [f"--- {w.name} ---\n{w.log()[-2500:]}" for w in self.workers]
        return "\n".join(out)

    def close(self):
        for w in self.workers:
            w.stop()


def wait_for(pred, timeout, what, interval=0.2, detail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail() if detail else ''}")


def expected_iso(build_key, size=ISO_BYTES):
    """The bytes the no-op job of this build_key makes: SHA-256 blocks chained from the key."""
    out, block = bytearray(), build_key.encode()
    while len(out) < size:
        block = hashlib.sha256(block).hexdigest().encode()
        out += block
    return bytes(out[:size])


@pytest.fixture
def faults(pg_cluster, debate_factory):
    workdir = _own_tmpdir("debate-faults-")
    f = Faults(pg_cluster, debate_factory, workdir)
    yield f
    f.close()
    subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)


# --------------------------------------------------------------------------
# 1. PostgreSQL stopped for 20 s
# --------------------------------------------------------------------------

OUTAGE = 20


def unavailable(r):
    return r.status == 503 and r.code == "database_unavailable" and r.header("Retry-After") is not None


@release_only
def test_the_database_stopped_for_20_s_loses_no_build(faults):
    srv = faults.server()
    api = faults.api
    # Builds accepted by the API (no build worker here: they wait in the queue) ...
    accepted = [api.submit_ok(tiny_unique())["id"] for _ in range(2)]
    # ... and no-op jobs, some running when the database goes, the rest queued.
    jobs = faults.submit_noop(12, max_attempts=5)
    for _ in range(2):
        faults.worker(threads=2, DEBATE_TEST_NOOP_MIN_MS=1500, DEBATE_NOOP_MS=2500)
    wait_for(lambda: faults.count("status = 'running'") >= 2, 30, "no-op jobs to run", detail=faults.logs)
    assert faults.count("status = 'queued'") > 0

    faults.pg.stop(mode="fast")      # every session is cut, as when the database host goes
    down = time.monotonic()
    try:
        seen = {}
        for path in ("/api/v1/builds", f"/api/v1/builds/{accepted[0]}", "/api/v1/health/db"):
            seen[path] = api.get(path, timeout=30)
        seen["POST /api/v1/builds"] = api.submit(tiny_unique())
        for what, r in seen.items():
            assert unavailable(r), f"{what} while the database is down: {r!r}\n{faults.logs()}"
        assert api.get("/health").status == 200, "the process itself stays up"
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
    finally:
        faults.pg.start()

    # The same server process recovers on its own.
    wait_for(lambda: api.get("/api/v1/builds", timeout=10).status == 200, 30, "the API to recover", detail=faults.logs)
    assert srv.proc.poll() is None
    later = api.submit(tiny_unique())
    assert later.status == 202, later
    accepted.append(later.json()["build"]["id"])

    wait_for(lambda: faults.count("status IN ('queued', 'running')") == 0, 90, "every no-op job to end",
             detail=faults.logs)
    rows = faults.rows()
    assert sorted(rows) == sorted(jobs), "a job was lost or made up"
    for bid, (status, attempts, code, sha) in rows.items():
        assert status == "succeeded" and 1 <= attempts <= 5, (bid, status, attempts, code, faults.logs())
    twice = {bid: n for bid, n in faults.finished_lines().items() if n != 1}
    assert not twice, f"outcomes recorded other than once: {twice}"
    assert any(a > 1 for _, a, _, _ in rows.values()), "the outage interrupted no running job: the test proved nothing"
    # Each succeeded job's ISO is in the store and served whole.
    for bid in jobs[:3]:
        b = api.build(bid)
        iso = api.get(b["iso_url"])
        assert iso.status == 200 and hashlib.sha256(iso.body).hexdigest() == b["iso_sha256"], iso
    # The builds the API accepted before, and the one after, are all there, still waiting for a worker.
    for bid in accepted:
        b = api.build(bid)
        assert b["status"] == "queued", b


# --------------------------------------------------------------------------
# 2. a worker stopped past its lease, then continued
# --------------------------------------------------------------------------

def build_row(faults, bid):
    out = faults.pg.psql(f"SELECT status, attempts, coalesce(lease_owner, '') FROM builds WHERE id = '{bid}'")
    status, attempts, owner = out.split("|")
    return status, int(attempts), owner


def test_a_worker_stopped_past_its_lease_cannot_finish_its_build(faults):
    faults.server()
    api = faults.api
    [bid] = faults.submit_noop(1)
    first = faults.worker(DEBATE_TEST_NOOP_MIN_MS=4000, DEBATE_NOOP_MS=4000)
    wait_for(lambda: build_row(faults, bid)[0] == "running", 30, "the first worker to claim the build",
             detail=faults.logs)
    assert first.owner in build_row(faults, bid)[2]
    os.killpg(first.proc.pid, signal.SIGSTOP)       # a stall: swapped out, a paused VM, a debugger

    second = faults.worker(DEBATE_NOOP_MS=200)
    wait_for(lambda: build_row(faults, bid)[0] in TERMINAL, 30, "the second worker to finish the build",
             detail=faults.logs)
    os.killpg(first.proc.pid, signal.SIGCONT)
    wait_for(lambda: "lease" in first.log(), 30, "the first worker to find its lease gone", detail=faults.logs)
    # Whatever it was doing when it stopped, the first worker has gone on to its next build by now.
    wait_for(lambda: re.search(r"not recorded|cannot record the outcome", first.log()), 15,
             "the first worker to give up its outcome", detail=faults.logs)

    b = api.build(bid)
    assert b["status"] == "succeeded" and b["attempts"] == 2, (b, faults.logs())
    assert f"build {bid}: succeeded" in second.log()
    assert faults.finished_lines() == {bid: 1}, faults.logs()
    assert "the lease was lost" in first.log(), first.log()
    # The log has one end: the first worker's lines after the stall were refused with its outcome.
    log = api.get(f"/api/v1/builds/{bid}/log").body.decode()
    assert log.count("no-op done") == 1, log
    # One artifact, the one the build names, whole; nothing left half-published.
    assert faults.isos() == [f"{b['iso_sha256']}.iso"], faults.isos()
    assert list((faults.artifact_dir / "tmp").iterdir()) == []
    iso = api.get(b["iso_url"])
    assert iso.status == 200 and iso.body == expected_iso(b["build_key"]), iso


# --------------------------------------------------------------------------
# 3. the artifact store's disk full
# --------------------------------------------------------------------------

@pytest.fixture
def small_store(faults):
    """artifact_dir on a 256 KiB tmpfs of its own."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "debate-faults", str(faults.artifact_dir)],
                   check=True)
    try:
        yield faults.artifact_dir
    finally:
        faults.close()      # no worker may hold a file on it
        subprocess.run(["umount", "-l", str(faults.artifact_dir)], check=False)


def test_a_full_artifact_disk_fails_the_build_with_its_cause_and_serves_nothing_partial(faults, small_store):
    faults.server()
    api = faults.api
    filler = small_store / "filler"
    filler.write_bytes(b"\0" * (224 * 1024))          # what is left cannot hold the ISO
    [bid] = faults.submit_noop(1)
    faults.worker()
    wait_for(lambda: build_row(faults, bid)[0] in TERMINAL, 30, "the build to end", detail=faults.logs)

    b = api.build(bid)
    assert b["status"] == "failed" and b["error"]["code"] == "disk_full", (b, faults.logs())
    assert "the disk is full" in b["error"]["message"], b
    log = api.get(f"/api/v1/builds/{bid}/log").body.decode()
    assert log.rstrip("\n").splitlines()[-1].startswith("error: cannot write") and \
        log.rstrip().endswith("the disk is full"), log
    r = api.get(f"/api/v1/builds/{bid}/iso")
    assert r.status == 404 and r.code == "no_iso", r
    # Nothing half-written is left in the store, nor under its tmp.
    assert faults.isos() == [] and list((small_store / "tmp").iterdir()) == [], sorted(small_store.rglob("*"))

    # Room again: the next build publishes, and its ISO is served whole.
    filler.unlink()
    [bid2] = faults.submit_noop(1)
    wait_for(lambda: build_row(faults, bid2)[0] in TERMINAL, 30, "the next build to end", detail=faults.logs)
    b2 = api.build(bid2)
    assert b2["status"] == "succeeded", (b2, faults.logs())
    iso = api.get(b2["iso_url"])
    assert iso.status == 200 and iso.body == expected_iso(b2["build_key"]), iso


# --------------------------------------------------------------------------
# 4. an artifact changed or deleted behind the server
# --------------------------------------------------------------------------

def succeeded_noops(faults, n):
    ids = faults.submit_noop(n)
    if not faults.workers:
        faults.worker()
    wait_for(lambda: faults.count("status IN ('queued', 'running')") == 0, 30, "the builds to end",
             detail=faults.logs)
    builds = [faults.api.build(bid) for bid in ids]
    for b in builds:
        assert b["status"] == "succeeded", (b, faults.logs())
    return builds


def assert_not_served(api, b, what):
    """The ISO route never hands out other bytes than the build's: 410."""
    for headers in ({}, {"Range": "bytes=0-99"}):
        r = api.get(b["iso_url"], headers=headers)
        assert r.status == 410 and r.code == "artifact_gone", f"{what}, {headers}: {r!r}"


def test_an_artifact_changed_or_deleted_on_disk_is_never_served(faults):
    faults.server()
    api = faults.api
    same_size, shorter, deleted, untouched = succeeded_noops(faults, 4)
    for b in (same_size, shorter, deleted, untouched):
        r = api.get(b["iso_url"])        # served once: the store has checked each one
        assert r.status == 200 and r.body == expected_iso(b["build_key"]), r

    # Bytes changed in place, the size kept (a bad disk, a careless hand).
    path = faults.artifact_dir / f"{same_size['iso_sha256']}.iso"
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"X" * 16)
    assert_not_served(api, same_size, "changed in place")
    # Cut short.
    os.truncate(faults.artifact_dir / f"{shorter['iso_sha256']}.iso", ISO_BYTES // 2)
    assert_not_served(api, shorter, "truncated")
    # Removed.
    (faults.artifact_dir / f"{deleted['iso_sha256']}.iso").unlink()
    assert_not_served(api, deleted, "deleted")

    # The untouched one is still served, whole and in part.
    r = api.get(untouched["iso_url"])
    assert r.status == 200 and r.body == expected_iso(untouched["build_key"]), r
    r = api.get(untouched["iso_url"], headers={"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == expected_iso(untouched["build_key"])[100:200], r

    # A manifest that is not this ISO's is not served either.
    other = faults.artifact_dir / f"{untouched['iso_sha256']}.manifest.json"
    other.write_text('{"iso_sha256": "%s"}\n' % same_size["iso_sha256"])
    r = api.get(untouched["manifest_url"])
    assert r.status == 410 and r.code == "artifact_gone", r


def test_an_artifact_written_to_while_it_is_downloaded_is_cut_off(faults):
    faults.server()
    size = 32 << 20         # more than the socket buffers hold: most of it is still to send
    faults.worker(DEBATE_TEST_NOOP_ISO_BYTES=size)
    [b] = succeeded_noops(faults, 1)
    path = faults.artifact_dir / f"{b['iso_sha256']}.iso"
    c = faults.api.conn(timeout=30)
    try:
        c.request("GET", b["iso_url"])
        resp = c.getresponse()
        assert resp.status == 200 and int(resp.getheader("Content-Length")) == size, resp.status
        got = resp.read(64 * 1024)
        with open(path, "r+b") as f:      # written to behind the server, mid-download
            f.seek(size - 4096)
            f.write(b"X" * 4096)
        try:
            got += resp.read()
        except http.client.IncompleteRead as exc:
            got += exc.partial
    finally:
        c.close()
    assert len(got) < size, "the whole response was sent although the file changed under it"
    assert got == expected_iso(b["build_key"], size)[:len(got)], "bytes other than the ISO's were sent"


# --------------------------------------------------------------------------
# 5. sixteen workers, each in a network namespace of its own, over TCP
# --------------------------------------------------------------------------

class TcpCluster(PgCluster):
    """A PgCluster that also listens on TCP at `address`, trusting its /24 (a test network of its own)."""

    def __init__(self, root, address, port):
        super().__init__(root, max_connections=120)
        self.address, self.port = address, port
        self.tcp_url = f"host={address} port={port} dbname=debate user=debate"

    def start(self, timeout=60):
        hba = self.datadir / "pg_hba.conf"
        net = self.address.rsplit(".", 1)[0] + ".0/24"
        line = f"host all all {net} trust\n"
        if line not in hba.read_text():
            subprocess.run(as_pg_user(["sh", "-c", f"echo '{line.strip()}' >> {hba}"]), check=True)
        opts = (f"-c listen_addresses='{self.address}' -c port={self.port} "
                f"-c unix_socket_directories='{self.sockdir}' -c max_connections={self.max_connections} "
                f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run([self.bindir / "pg_ctl", "start", "-D", self.datadir, "-l", self.logfile, "-w", "-t", str(timeout),
                   "-o", opts], timeout=timeout + 30)
        self.url = self.url_for("debate")

    def url_for(self, dbname):
        return f"host={self.sockdir} port={self.port} dbname={dbname} user=debate"


class Namespaces:
    """A bridge on the host and n network namespaces, each with a veth on it: 10.N.M.1 is the host."""

    def __init__(self, n):
        self.tag = secrets.token_hex(2)
        self.net = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
        self.host = f"{self.net}.1"
        self.bridge = f"dbf{self.tag}"
        self.names = [f"debate-faults-{self.tag}-{i}" for i in range(n)]

    def ip(self, *argv):
        subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)

    def up(self):
        self.ip("link", "add", self.bridge, "type", "bridge")
        self.ip("addr", "add", f"{self.host}/24", "dev", self.bridge)
        self.ip("link", "set", self.bridge, "up")
        for i, ns in enumerate(self.names):
            veth = f"dbf{self.tag}v{i}"
            self.ip("netns", "add", ns)
            self.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.ip("link", "set", veth, "master", self.bridge, "up")
            self.ip("-n", ns, "addr", "add", f"{self.net}.{10 + i}/24", "dev", "eth0")
            self.ip("-n", ns, "link", "set", "eth0", "up")
            self.ip("-n", ns, "link", "set", "lo", "up")
        return self

    def down(self):
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class NetnsWorker(QueueWorker):
    """A queue_worker process inside a network namespace, with a data directory of its own."""

    def __init__(self, ns, url, log_dir, name, **env):
        self.ns = ns
        data = Path(log_dir) / f"{name}-data"
        data.mkdir(exist_ok=True)
        super().__init__(url, log_dir, name, 1, DEBATE_DATA_DIR=data, **env)

    def argv(self, url, threads):
        return ["ip", "netns", "exec", self.ns, str(TOOL), "work", url, str(threads)]


WORKERS_NS = 16
JOBS_NS = 400


@workers_only
def test_sixteen_workers_in_network_namespaces_over_tcp():
    if shutil.which("ip") is None:
        pytest.skip("no ip(8) (iproute2) to make network namespaces")
    root = _own_tmpdir("debate-faults-ns-")
    nets = Namespaces(WORKERS_NS)
    cluster = TcpCluster(root / "pg", nets.host, free_ports(1)[0])
    store = root / "artifacts"
    store.mkdir()
    workers = []
    try:
        nets.up()
        cluster.init()
        subprocess.run([str(TOOL), "submit", cluster.url, str(JOBS_NS)], check=True, timeout=120,
                       env=dict(os.environ, DEBATE_MAX_ATTEMPTS="4"))
        env = dict(DEBATE_ARTIFACT_DIR=store, DEBATE_NOOP_MS=40, DEBATE_TEST_NOOP_ISO_BYTES=1024)
        workers = [NetnsWorker(ns, cluster.tcp_url, root, f"ns{i}", **env) for i, ns in enumerate(nets.names)]
        rng = random.Random(int(os.environ.get("DEBATE_TEST_SEED", "7")))
        kills = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = int(cluster.psql("SELECT count(*) FROM builds WHERE status IN ('queued', 'running')"))
            if left == 0:
                break
            if kills < 4 and left < JOBS_NS * 3 // 4:        # a few workers die mid-job, and come back
                i = rng.randrange(WORKERS_NS)
                os.killpg(workers[i].proc.pid, signal.SIGKILL)
                workers[i].proc.wait()
                kills += 1
                workers[i] = NetnsWorker(nets.names[i], cluster.tcp_url, root, f"ns{i}-{kills}", **env)
            time.sleep(0.3)
        assert left == 0, f"{left} jobs never finished\n" + "\n".join(w.log()[-1500:] for w in workers[:3])

        rows = cluster.psql("SELECT status, attempts, coalesce(error_code, ''), coalesce(iso_sha256, '') "
                            "FROM builds WHERE kind = 'noop'")
        statuses = collections.Counter()
        for line in rows.splitlines():
            status, attempts, code, sha = line.split("|")
            statuses[status] += 1
            assert 1 <= int(attempts) <= 4, line
            assert status == "succeeded" or code == "attempts_exhausted", line
            if status == "succeeded":       # its ISO is in the shared store, whole
                assert (store / f"{sha}.iso").stat().st_size == 1024, line
        assert sum(statuses.values()) == JOBS_NS
        # Each outcome recorded once, by the worker that held the lease.
        seen = collections.Counter()
        for log in root.glob("ns*.log"):
            for m in re.finditer(r"build ([0-9a-f-]{36}): succeeded", log.read_text()):
                seen[m.group(1)] += 1
        assert seen and max(seen.values()) == 1, [b for b, n in seen.items() if n > 1]
        # A worker killed after its commit and before its log line leaves a success unlogged: one per kill at most.
        assert statuses["succeeded"] - kills <= len(seen) <= statuses["succeeded"], (len(seen), statuses)
        # Every worker took part, over TCP from its own address.
        owners = cluster.psql("SELECT count(DISTINCT client_addr) FROM pg_stat_activity "
                              "WHERE application_name = 'debate' AND client_addr IS NOT NULL")
        assert int(owners) >= WORKERS_NS - 1, owners
        assert kills == 4
    finally:
        for w in workers:
            w.stop()
        cluster.destroy()
        nets.down()
        shutil.rmtree(root, ignore_errors=True)
