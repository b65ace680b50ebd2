"""Integration tests for `debate backup`, `debate restore-test` and retention.

Every test gets its own copy of a migrated embedded PostgreSQL cluster (made
once per module with `debate migrate`, copied with `cp -a`), starts it with
pg_ctl when it needs to put rows in, and runs the real binary against it.
`Cluster.psql` starts the cluster whenever it is down (a debate command
that started it itself stops it again).

Retention is tested under a fake clock (`--now`): one real dump, and copies
of it under other timestamps with their own checksum file and manifest, so
every copy is a good set.
"""

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import (SANITIZER_MARKERS, DebateServer, clean_env, debate_bin, free_ports, metric_value,
                      reap_postgres)

IS_ROOT = os.geteuid() == 0
CMD_TIMEOUT = 60
DAY = timedelta(days=1)
BUILDS = 7  # rows the tests put in the builds table
# The newest schema version: the last migration in src/db/migrate.c (one row each in schema_migrations).
SCHEMA = max(int(v) for v in re.findall(r"^    \{(\d+), \"", (Path(__file__).resolve().parents[2] / "src" / "db" /
                                                                 "migrate.c").read_text(), re.M))


def _pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        pytest.skip("no PostgreSQL server under /usr/lib/postgresql")
    return Path(found[-1]).parent


def _tmpdir(prefix):
    # Searchable by others (0711): as root the embedded cluster runs as
    # postgres, which must reach DATA_DIR/pg through this path.
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o711)
    return d


def stamp(t):
    return t.strftime("%Y%m%dT%H%M%SZ")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    """A data directory with its own embedded cluster and backup directory."""

    def __init__(self, root):
        self.root = root
        self.data = root / "data"
        self.pgdata = self.data / "pg" / "data"
        self.sock = self.data / "pg" / "run"
        self.backups = self.data / "backups"
        self.bindir = _pg_bindir()
        self.password = None  # once set_password switched the socket to scram-sha-256

    # -- debate --------------------------------------------------------------
    def debate(self, *args, expect=0, env=None, argv0=None):
        env = clean_env({"DEBATE_DATA_DIR": self.data, **(env or {})})
        argv = [argv0, *args] if argv0 else [debate_bin(), *args]
        p = subprocess.run(argv, env=env, capture_output=True, text=True,
                           timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
        for marker in SANITIZER_MARKERS:
            assert marker not in p.stderr, f"debate {' '.join(args)}: {marker}\n{p.stderr[-4000:]}"
        if expect is not None:
            assert p.returncode == expect, (
                f"debate {' '.join(args)} exited {p.returncode}, expected {expect}\n"
                f"--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr[-4000:]}")
        return p

    # -- the PostgreSQL server -------------------------------------------------
    def _pg_ctl(self, *args, check=True):
        argv = [str(self.bindir / "pg_ctl"), *args, "-D", str(self.pgdata)]
        if IS_ROOT:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT,
                              check=check, cwd="/", stdin=subprocess.DEVNULL)

    def running(self):
        return self._pg_ctl("status", check=False).returncode == 0

    def start(self):
        if self.running():
            return
        opts = f"-c listen_addresses='' -c unix_socket_directories='{self.sock}'"
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.data / "pg" / "postgres.log"), "-o", opts)

    def stop(self):
        if self.pgdata.exists() and self.running():
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60", check=False)

    def psql(self, sql, dbname="debate"):
        self.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            f"host={self.sock} user=debate dbname={dbname}", "-c", sql],
                           capture_output=True, text=True, timeout=CMD_TIMEOUT,
                           stdin=subprocess.DEVNULL, env=env)
        assert p.returncode == 0, f"psql {sql!r}: {p.stderr}"
        return p.stdout.strip()

    def set_password(self, password):
        """Gives role debate a password and makes the socket ask for it."""
        literal = "$pw$" + password + "$pw$"
        self.psql(f"ALTER ROLE debate PASSWORD {literal}")
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(re.sub(r"(?m)^local(\s+)all(\s+)all(\s+)trust$",
                              "local all all scram-sha-256", hba.read_text()))
        self._pg_ctl("reload")
        self.password = password
        time.sleep(0.3)  # the postmaster rereads pg_hba.conf asynchronously

    def insert_builds(self, n):
        self.psql(
            "INSERT INTO builds (config_hash, build_key, recipe, cancel_token_hash) "
            "SELECT repeat('c', 64), encode(sha256(gen_random_uuid()::text::bytea), 'hex'), "
            "jsonb_build_object('packages', jsonb_build_array('bash', g)), "
            "decode(repeat('ab', 32), 'hex') "
            f"FROM generate_series(1, {n}) g")

    def scratch_databases(self):
        out = self.psql("SELECT datname FROM pg_database "
                        "WHERE datname LIKE 'debate\\_restore\\_test\\_%'", dbname="postgres")
        return [line for line in out.splitlines() if line]

    # -- backup sets -------------------------------------------------------------
    def path(self, st, suffix):
        return self.backups / f"debate-{st}{suffix}"

    def sets(self):
        """Timestamps of the complete sets, oldest first."""
        return sorted(p.name[len("debate-"):-len(".manifest.json")]
                      for p in self.backups.glob("debate-*.manifest.json"))

    def manifest(self, st):
        return json.loads(self.path(st, ".manifest.json").read_text())

    def write_manifest(self, st, doc):
        self.path(st, ".manifest.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def copy_set(self, src, dst, created):
        """A good set at another timestamp: the same dump, its own checksum file and manifest."""
        dump = self.path(src, ".dump").read_bytes()
        self.path(dst, ".dump").write_bytes(dump)
        digest = hashlib.sha256(dump).hexdigest()
        self.path(dst, ".dump.sha256").write_text(f"{digest}  debate-{dst}.dump\n")
        doc = self.manifest(src)
        doc.update(dump=f"debate-{dst}.dump", created_at=iso(created))
        self.write_manifest(dst, doc)
        for suffix in (".dump", ".dump.sha256", ".manifest.json"):
            self.path(dst, suffix).chmod(0o600)

    def restore_record(self):
        path = self.backups / "restore-test.json"
        return json.loads(path.read_text()) if path.exists() else None


def error_line(p, cmd):
    """The `debate <cmd>: <err>` line a failed command prints."""
    lines = [line for line in p.stderr.splitlines() if line.startswith(f"debate {cmd}: ")]
    assert lines, f"no 'debate {cmd}:' line on stderr:\n{p.stderr[-3000:]}"
    return lines[-1]


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template():
    """A migrated, stopped cluster to copy: initdb runs once per module."""
    root = _tmpdir("debate-backup-tpl-")
    try:
        Cluster(root).debate("migrate")
        yield root
    finally:
        Cluster(root).stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(template):
    root = _tmpdir("debate-backup-")
    subprocess.run(["cp", "-a", str(template / "data"), str(root / "data")], check=True,
                   timeout=CMD_TIMEOUT)
    c = Cluster(root)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def backed_up(cluster):
    """A cluster with BUILDS rows, one backup taken now and one restore test passed."""
    cluster.insert_builds(BUILDS)
    cluster.debate("backup")
    assert len(cluster.sets()) == 1
    cluster.debate("restore-test")
    return cluster


# --------------------------------------------------------------------------
# backup and restore test
# --------------------------------------------------------------------------

def test_backup_then_wipe_then_restore_test_passes(cluster):
    cluster.insert_builds(BUILDS)
    before = int(time.time())
    p = cluster.debate("backup")
    [st] = cluster.sets()
    assert abs(datetime.strptime(st, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
               - before) <= 5
    assert re.search(r'backup \\".*debate-' + st + r'\.dump\\" written: \d+ bytes', p.stderr), p.stderr

    # The set: private files, a sha256sum-compatible checksum, a manifest
    # that counts exactly what was inserted.
    assert (cluster.backups.stat().st_mode & 0o777) == 0o700
    dump = cluster.path(st, ".dump").read_bytes()
    for suffix in (".dump", ".dump.sha256", ".manifest.json"):
        assert (cluster.path(st, suffix).stat().st_mode & 0o777) == 0o600, suffix
    assert dump.startswith(b"PGDMP"), "not a pg_dump custom-format archive"
    digest = hashlib.sha256(dump).hexdigest()
    assert cluster.path(st, ".dump.sha256").read_text() == f"{digest}  debate-{st}.dump\n"
    check = subprocess.run(["sha256sum", "-c", f"debate-{st}.dump.sha256"], cwd=cluster.backups,
                           capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert check.returncode == 0, check.stdout + check.stderr
    m = cluster.manifest(st)
    assert m["format"] == 1
    assert m["dump"] == f"debate-{st}.dump"
    assert m["size"] == len(dump) and m["sha256"] == digest
    assert m["tables"] == {"artifacts": 0, "build_events": 0, "builds": BUILDS, "schema_migrations": SCHEMA,
                           "workers": 0}
    assert m["schema_version"] == SCHEMA
    assert m["created_at"] == f"{st[0:4]}-{st[4:6]}-{st[6:8]}T{st[9:11]}:{st[11:13]}:{st[13:15]}Z"
    assert m["server_version"].split()[0].split(".")[0] == cluster.bindir.parent.name
    assert m["pg_dump_version"].startswith("pg_dump (PostgreSQL)")
    assert not [p.name for p in cluster.backups.iterdir() if ".tmp." in p.name]

    # Wipe the live database: the restore test works from the dump alone.
    cluster.psql("DROP TABLE builds CASCADE")
    started = int(time.time())
    p = cluster.debate("restore-test")
    assert "restore test of" in p.stderr and "passed: 5 tables" in p.stderr, p.stderr
    rec = cluster.restore_record()
    assert started <= rec["last_success"] <= int(time.time())
    assert rec["dump"] == f"debate-{st}.dump"
    assert rec["tables"] == len(m["tables"])
    assert isinstance(rec["duration_ms"], int) and rec["duration_ms"] >= 0
    assert "last_failure" not in rec
    assert (cluster.backups / "restore-test.json").stat().st_mode & 0o077 == 0
    # The time alone, readable by serve's unprivileged front door (docs/security.md).
    shared = cluster.data / "restore-test-success.json"
    assert json.loads(shared.read_text()) == {"last_success": rec["last_success"]}
    assert shared.stat().st_mode & 0o777 == 0o644
    assert cluster.scratch_databases() == []
    # The live database was left alone.
    assert cluster.psql("SELECT to_regclass('public.builds') IS NULL") == "t"


def test_restore_test_without_backup_fails(cluster):
    p = cluster.debate("restore-test", expect=1)
    assert "no complete backup" in error_line(p, "restore-test")
    assert cluster.restore_record() is None


def test_backup_snapshot_counts_match_the_dump(cluster):
    """The manifest counts and the dump agree: restoring yields the counts."""
    cluster.insert_builds(3)
    cluster.debate("backup")
    cluster.insert_builds(2)  # after the backup: in neither the dump nor the manifest
    [st] = cluster.sets()
    assert cluster.manifest(st)["tables"]["builds"] == 3
    cluster.debate("restore-test")


def _fails_restore_test(cluster, pattern):
    before = cluster.restore_record()
    p = cluster.debate("restore-test", expect=1)
    line = error_line(p, "restore-test")
    assert re.search(pattern, line), line
    rec = cluster.restore_record()
    # The last success stays what it was; the failure is recorded beside it.
    assert rec["last_success"] == before["last_success"]
    assert rec["dump"] == before["dump"]
    assert rec["last_failure"]["error"] in line
    assert cluster.scratch_databases() == []
    return line


def test_truncated_dump_fails(backed_up):
    [st] = backed_up.sets()
    dump = backed_up.path(st, ".dump")
    size = dump.stat().st_size
    os.truncate(dump, size // 2)
    line = _fails_restore_test(backed_up, r"size mismatch")
    assert f"has {size // 2} bytes, its manifest says {size}" in line
    assert "truncated" in line


def test_flipped_byte_fails(backed_up):
    [st] = backed_up.sets()
    dump = backed_up.path(st, ".dump")
    flip_byte(dump, dump.stat().st_size // 2)
    _fails_restore_test(backed_up, r"checksum mismatch: the dump is damaged")


def test_edited_checksum_file_fails(backed_up):
    [st] = backed_up.sets()
    path = backed_up.path(st, ".dump.sha256")
    path.write_text("0" * 64 + path.read_text()[64:])
    _fails_restore_test(backed_up, r"checksum mismatch: .*disagrees with the manifest")


@pytest.mark.parametrize("edit, pattern", [
    (lambda m: m["tables"].update(builds=BUILDS + 1),
     rf'table "builds" has {BUILDS} rows in the restored copy, the manifest says {BUILDS + 1}'),
    (lambda m: m["tables"].update(ghost=0),
     r'table "ghost" is missing from the restored copy'),
    (lambda m: m["tables"].pop("schema_migrations"),
     r'table "schema_migrations" is in the restored copy but not in the manifest'),
    (lambda m: m.update(schema_version=SCHEMA + 1),
     rf"the restored copy has schema version {SCHEMA}, the manifest says {SCHEMA + 1}"),
], ids=["row-count", "missing-table", "extra-table", "schema-version"])
def test_edited_manifest_fails_the_comparison(backed_up, edit, pattern):
    """The dump and its checksum are intact: only the comparison can catch this."""
    [st] = backed_up.sets()
    m = backed_up.manifest(st)
    edit(m)
    backed_up.write_manifest(st, m)
    _fails_restore_test(backed_up, pattern)


def test_truncated_dump_with_matching_checksum_fails_in_pg_restore(backed_up):
    """A dump that passes the checksum but does not restore: pg_restore's own words."""
    [st] = backed_up.sets()
    dump = backed_up.path(st, ".dump")
    data = dump.read_bytes()[: dump.stat().st_size * 2 // 3]
    dump.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    backed_up.path(st, ".dump.sha256").write_text(f"{digest}  debate-{st}.dump\n")
    m = backed_up.manifest(st)
    m.update(size=len(data), sha256=digest)
    backed_up.write_manifest(st, m)
    _fails_restore_test(backed_up, r"pg_restore.*exited with status")


def test_restore_test_uses_the_newest_complete_set(backed_up):
    [old] = backed_up.sets()
    newer = datetime.now(timezone.utc) + timedelta(minutes=5)
    backed_up.copy_set(old, stamp(newer), newer)
    # An incomplete set (no manifest) that is newer still is never used.
    newest = newer + timedelta(minutes=5)
    shutil.copy(backed_up.path(old, ".dump"), backed_up.path(stamp(newest), ".dump"))
    backed_up.debate("restore-test")
    assert backed_up.restore_record()["dump"] == f"debate-{stamp(newer)}.dump"


def test_two_backups_in_the_same_second_fail_clearly(cluster):
    now = "2026-03-01T02:00:00Z"
    cluster.debate("backup", "--now", now)
    [st] = cluster.sets()
    before = {p.name: p.read_bytes() for p in cluster.backups.glob("debate-*")}
    p = cluster.debate("backup", "--now", now, expect=1)
    assert "already exists" in error_line(p, "backup")
    after = {p.name: p.read_bytes() for p in cluster.backups.glob("debate-*")}
    assert after == before, "the second run touched the first set"


def test_commands_wait_for_the_backup_dir_lock(backed_up):
    """A restore test does not read a set while another command holds the lock."""
    err_path = backed_up.root / "restore-test.err"
    with open(backed_up.backups / ".lock", "r+") as lock, open(err_path, "w") as err:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.Popen([debate_bin(), "restore-test"], stdout=subprocess.DEVNULL, stderr=err,
                                env=clean_env({"DEBATE_DATA_DIR": backed_up.data}),
                                stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while "waiting for another backup" not in err_path.read_text():
                assert proc.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, err_path.read_text()
                time.sleep(0.05)
            time.sleep(0.5)
            assert proc.poll() is None, "did not wait for the lock"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            rc = proc.wait(CMD_TIMEOUT)
    text = err_path.read_text()
    assert rc == 0, text
    assert "passed" in text
    for marker in SANITIZER_MARKERS:
        assert marker not in text


def test_failed_pg_dump_leaves_nothing_behind(cluster):
    """pg_dump failing half way: its words in the error, no file left."""
    fake = cluster.root / "bin"
    fake.mkdir()
    for tool in cluster.bindir.iterdir():
        (fake / tool.name).symlink_to(tool)
    (fake / "pg_dump").unlink()
    (fake / "pg_dump").write_text("#!/bin/sh\n"
                                  "for a; do case $a in --file) f=1;; *) [ -n \"${f:-}\" ] && out=$a f=;; esac; done\n"
                                  "echo partial > \"$out\"\n"
                                  "echo 'pg_dump: error: simulated failure' >&2\n"
                                  "exit 1\n")
    (fake / "pg_dump").chmod(0o755)
    p = cluster.debate("backup", env={"DEBATE_PG_BINDIR": fake}, expect=1)
    line = error_line(p, "backup")
    assert "pg_dump" in line and "simulated failure" in line, line
    assert [x.name for x in cluster.backups.iterdir()] == [".lock"]
    # And the next run works.
    cluster.debate("backup")
    assert len(cluster.sets()) == 1


# --------------------------------------------------------------------------
# retention
# --------------------------------------------------------------------------

DAY1 = datetime(2026, 1, 1, 2, 0, 0, tzinfo=timezone.utc)


def _thirty_one_days(cluster):
    """31 good daily sets, 02:00 on 2026-01-01 .. 2026-01-31; one real dump, 30 copies."""
    cluster.insert_builds(BUILDS)
    cluster.debate("backup", "--now", iso(DAY1))
    days = [DAY1 + i * DAY for i in range(31)]
    for d in days[1:]:
        cluster.copy_set(stamp(DAY1), stamp(d), d)
    assert cluster.sets() == [stamp(d) for d in days]
    return days


def _prune(cluster, now):
    p = cluster.debate("backup", "--prune-only", "--now", iso(now))
    m = re.search(r"debate backup: (\d+) old backups? deleted", p.stdout)
    assert m, p.stdout
    return int(m.group(1)), p


def test_retention_keeps_thirty_days(cluster):
    days = _thirty_one_days(cluster)
    deleted, p = _prune(cluster, days[-1] + timedelta(hours=1))
    assert deleted == 1
    assert cluster.sets() == [stamp(d) for d in days[1:]]
    assert not cluster.path(stamp(days[0]), ".dump").exists()
    assert not cluster.path(stamp(days[0]), ".dump.sha256").exists()
    assert f"debate-{stamp(days[0])}" in p.stderr  # logged
    # Pruning again changes nothing.
    assert _prune(cluster, days[-1] + timedelta(hours=1))[0] == 0
    # Exactly 30 days old is not older than 30 days.
    assert _prune(cluster, days[1] + 30 * DAY)[0] == 0
    # A real backup prunes as well: a day later the oldest kept set goes.
    later = days[-1] + DAY + timedelta(hours=1)
    cluster.debate("backup", "--now", iso(later))
    assert cluster.sets() == [stamp(d) for d in days[2:]] + [stamp(later)]


def test_retention_keeps_newest_good_set_however_old(cluster):
    days = _thirty_one_days(cluster)
    deleted, p = _prune(cluster, days[-1] + timedelta(days=365))
    assert deleted == 30
    assert cluster.sets() == [stamp(days[-1])]
    assert "it is the newest good one" in p.stderr
    # It restores.
    cluster.debate("restore-test")
    assert cluster.restore_record()["dump"] == f"debate-{stamp(days[-1])}.dump"


def test_retention_keeps_newest_good_when_newest_is_damaged(cluster):
    days = _thirty_one_days(cluster)
    dump = cluster.path(stamp(days[-1]), ".dump")
    flip_byte(dump, dump.stat().st_size // 2)
    deleted, p = _prune(cluster, days[-1] + timedelta(days=365))
    assert deleted == 30
    assert cluster.sets() == [stamp(days[-2])]
    assert "checksum mismatch" in p.stderr
    assert not dump.exists()


def test_retention_keeps_newest_good_when_newest_is_truncated_or_incomplete(cluster):
    days = _thirty_one_days(cluster)
    os.truncate(cluster.path(stamp(days[-1]), ".dump"), 100)  # complete, not good
    cluster.path(stamp(days[-2]), ".manifest.json").unlink()  # incomplete
    deleted, _ = _prune(cluster, days[-1] + timedelta(days=365))
    assert deleted == 30
    assert cluster.sets() == [stamp(days[-3])]
    assert not list(cluster.backups.glob(f"debate-{stamp(days[-2])}*"))


def test_prune_removes_old_leftovers_only(cluster):
    now = DAY1 + 10 * DAY
    cluster.debate("backup", "--now", iso(DAY1))
    old = now - timedelta(days=2)
    recent = now - timedelta(hours=2)
    # An interrupted run two days ago, and one two hours ago.
    shutil.copy(cluster.path(stamp(DAY1), ".dump"), cluster.path(stamp(old), ".dump"))
    cluster.path(stamp(old), ".manifest.json.tmp.4242").write_text("{")
    cluster.path(stamp(recent), ".dump.tmp.4243").write_bytes(b"PGDMP")
    # A temporary beside a kept complete set, from a run that died.
    cluster.path(stamp(DAY1), ".dump.tmp.4244").write_bytes(b"PGDMP")
    unrelated = cluster.backups / "notes.txt"
    unrelated.write_text("keep me")
    # A restore-test.json temporary: judged by its modification time.
    stray_old = cluster.backups / "restore-test.json.tmp.4245"
    stray_new = cluster.backups / "restore-test.json.tmp.4246"
    for path, t in ((stray_old, old), (stray_new, recent)):
        path.write_text("{")
        os.utime(path, (t.timestamp(), t.timestamp()))
    deleted, _ = _prune(cluster, now)
    assert deleted == 1
    assert not list(cluster.backups.glob(f"debate-{stamp(old)}*"))
    assert cluster.path(stamp(recent), ".dump.tmp.4243").exists()
    assert not cluster.path(stamp(DAY1), ".dump.tmp.4244").exists()
    assert cluster.sets() == [stamp(DAY1)]
    assert unrelated.exists()
    assert not stray_old.exists() and stray_new.exists()


def test_prune_without_backup_dir_is_a_no_op(cluster):
    assert not cluster.backups.exists()
    assert _prune(cluster, DAY1)[0] == 0
    assert not cluster.backups.exists()


# --------------------------------------------------------------------------
# /metrics and /ready
# --------------------------------------------------------------------------

@pytest.fixture
def serve(cluster):
    """Starts `debate serve` on the cluster's data directory (call after preparing it)."""
    started = []

    def start():
        cluster.stop()  # serve starts the cluster itself, and stops it on exit
        srv = DebateServer(cluster.root)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        problems = srv.stop()
        assert not problems, "\n".join(problems)


def _ready_warnings(srv):
    r = srv.get("/ready")
    assert r.status in (200, 503), r
    doc = r.json()
    return doc, [w for w in doc["warnings"] if "restore test" in w]


def test_metrics_export_last_restore_test(backed_up, serve):
    recorded = backed_up.restore_record()["last_success"]
    srv = serve()
    r = srv.get("/metrics")
    assert r.status == 200, r
    assert metric_value(r.text, "debate_backup_last_restore_test_success_timestamp_seconds") == recorded
    doc, warnings = _ready_warnings(srv)
    assert warnings == [], doc
    assert doc["checks"]["restore_test"]["ok"] is True
    assert doc["checks"]["restore_test"]["last_success"] == recorded


def test_ready_warns_when_restore_test_is_stale(cluster, serve):
    old = int(time.time()) - 9 * 86400
    cluster.backups.mkdir(mode=0o700)
    (cluster.backups / "restore-test.json").write_text(json.dumps({"last_success": old}))
    srv = serve()
    r = srv.get("/metrics")
    assert metric_value(r.text, "debate_backup_last_restore_test_success_timestamp_seconds") == old
    doc, warnings = _ready_warnings(srv)
    assert len(warnings) == 1, doc
    assert "9 days old" in warnings[0], warnings
    assert doc["checks"]["restore_test"]["ok"] is False


def test_backup_leaves_a_running_servers_database_up(cluster, serve):
    """The nightly backup and the weekly restore test run next to the server:
    they must not stop the cluster they adopted (docs/operations.md)."""
    srv = serve()
    assert srv.get("/ready").json()["checks"]["database"]["ok"] is True
    cluster.debate("backup")
    cluster.debate("restore-test")
    doc = srv.get("/ready").json()
    assert doc["checks"]["database"]["ok"] is True, doc
    assert doc["checks"]["restore_test"]["ok"] is True, doc


# --------------------------------------------------------------------------
# an external database (database_url) and the cron script
# --------------------------------------------------------------------------

def test_database_url_with_password(cluster):
    """database_url with a password: pg_dump and pg_restore get it from the
    environment (not their command line), ahead of an inherited PGPASSWORD."""
    password = "s3 cr'et\\x"
    cluster.start()
    cluster.insert_builds(BUILDS)
    cluster.set_password(password)
    quoted = password.replace(" ", "%20").replace("'", "%27").replace("\\", "%5C")
    env = {
        "DEBATE_DATABASE_URL": f"postgresql://debate:{quoted}@/debate?host={cluster.sock}",
        "DEBATE_BACKUP_DIR": cluster.root / "external-backups",
        "PGPASSWORD": "wrong",
    }
    p = cluster.debate("backup", env=env)
    [manifest] = (cluster.root / "external-backups").glob("*.manifest.json")
    doc = json.loads(manifest.read_text())
    assert doc["tables"]["builds"] == BUILDS
    # Neither the password nor a piece of it, quoted or not, is written
    # anywhere (pieces with a quote: a temporary directory's random name
    # may hold any short run of letters and digits).
    for text in (manifest.read_text(), p.stderr):
        for piece in (password, quoted, "cr'et", "cr%27et"):
            assert piece not in text
    p = cluster.debate("restore-test", env=env)
    assert "passed" in p.stderr
    assert cluster.scratch_databases() == []
    # The wrong password is refused, clearly.
    env["DEBATE_DATABASE_URL"] = f"host={cluster.sock} user=debate dbname=debate password=nope"
    p = cluster.debate("restore-test", env=env, expect=1)
    assert "password authentication failed" in error_line(p, "restore-test")


SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "backup-postgres.sh"


def test_cron_script(cluster):
    conf = cluster.root / "debate.conf"
    conf.write_text(f"data_dir = {cluster.data}\n")
    # The data directory comes from the file named by DEBATE_CONFIG alone.
    full = clean_env({"DEBATE_BIN": debate_bin(), "DEBATE_CONFIG": conf})
    p = subprocess.run([str(SCRIPT)], env=full, capture_output=True, text=True,
                       timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert len(cluster.sets()) == 1
    p = subprocess.run([str(SCRIPT), "restore-test"], env=full, capture_output=True, text=True,
                       timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert cluster.restore_record()["dump"] == f"debate-{cluster.sets()[0]}.dump"
    # A failure: non-zero, and said on standard error (cron mails it).
    conf.write_text(f"data_dir = {cluster.data}\nbackup_retention_days = 0\n")
    p = subprocess.run([str(SCRIPT)], env=full, capture_output=True, text=True,
                       timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "backup_retention_days" in p.stderr and "debate backup failed" in p.stderr


# --------------------------------------------------------------------------
# the default data directory, relative to where the commands start
# --------------------------------------------------------------------------

class DefaultDataDirServer(DebateServer):
    """`debate serve` started in workdir with no DEBATE_DATA_DIR: the default
    data_dir, "data", relative to the directory it started in (a checkout
    after `make run`, or a service's working directory)."""

    def start(self):
        for _attempt in range(3):
            self.https_port, self.http_port = free_ports(2)
            env = clean_env({"DEBATE_LISTEN": "127.0.0.1", "DEBATE_HTTPS_PORT": self.https_port,
                             "DEBATE_HTTP_PORT": self.http_port, "DEBATE_THREADS": 2, "DEBATE_WORKERS": 0})
            self._out = open(self.stdout_path, "wb")
            self._err = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen([debate_bin(), "serve"], stdin=subprocess.DEVNULL, stdout=self._out,
                                         stderr=self._err, env=env, cwd=str(self.workdir))
            ok, why = self._wait_ready()
            if ok:
                return self
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self._out.close()
            self._err.close()
            if "in use" not in self.stderr().lower():
                break
        self._stopped = True
        pytest.fail(f"debate serve did not start in {self.workdir}: {why}\n{self.stderr()[-3000:]}",
                    pytrace=False)


def test_backup_and_restore_test_from_the_directory_serve_started_in():
    work = _tmpdir("debate-backup-cwd-")
    srv = DefaultDataDirServer(work)
    problems = []
    try:
        srv.start()
        assert srv.get("/ready").status == 200, srv.stderr()[-3000:]
        for cmd in ("backup", "restore-test"):
            p = subprocess.run([debate_bin(), cmd], env=clean_env(), cwd=str(work), capture_output=True,
                               text=True, timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
            for marker in SANITIZER_MARKERS:
                assert marker not in p.stderr, f"debate {cmd}: {marker}\n{p.stderr[-4000:]}"
            assert p.returncode == 0, f"debate {cmd} exited {p.returncode}:\n{p.stderr[-3000:]}"
        assert len(list((work / "data" / "backups").glob("debate-*.manifest.json"))) == 1
        doc = srv.get("/ready").json()
        assert doc["checks"]["database"]["ok"] is True, doc
        assert doc["checks"]["restore_test"]["ok"] is True, doc
    finally:
        if srv.proc is not None:
            problems = srv.stop()
        leaked = reap_postgres(work)
        shutil.rmtree(work, ignore_errors=True)
    assert not problems, "\n".join(problems)
    assert not leaked, f"postmaster(s) {leaked} were left running under {work}"
