"""The database layer of `debate`, end to end against real PostgreSQL.

* migrations: idempotent, safe when two `debate migrate` run at once, and a
  database newer than the binary is refused;
* the pool: bounded waits when every connection is busy, killed backends
  replaced;
* outages: PostgreSQL stopped and started under a running server, and a
  server started before its database;
* the embedded cluster: created, reused, adopted after a crash, stale
  postmaster.pid handled, stopped on exit;
* /ready: disk and restore-test checks, never rate limited.

Each test that stops PostgreSQL or holds locks gets a cluster of its own
(fixture ``pg_cluster`` in conftest.py), reached over a unix socket.
"""

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (DebateServer, ResponseTimeout, _finish, _own_tmpdir, build_request,
                      clean_env, debate_bin, free_ports, kill9, metric_value, postgres_pids,
                      reap_postgres, run_psql)

# What migration 1 creates.
EXPECTED_MIGRATIONS = [("1", "builds"), ("2", "build service: events, artifacts, job kinds"), ("3", "boot check"),
                       ("4", "builder identities, rebuilds that verify")]
LATEST = len(EXPECTED_MIGRATIONS)
EXPECTED_BUILD_INDEXES = {
    "builds_pkey", "builds_cache", "builds_active_key", "builds_queue",
    "builds_leases", "builds_list", "builds_recipe", "builds_iso", "builds_active_verify",
}
NEWER_MESSAGE = "newer than this debate knows"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def run_debate(args, env, cwd, timeout=60.0):
    """Runs `debate ARGS...` to completion; returns CompletedProcess (text)."""
    return subprocess.run([debate_bin()] + list(args), env=clean_env(env), cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def no_sanitizer_reports(text):
    found = [m for m in SANITIZER_MARKERS if m in text]
    assert not found, f"sanitizer report(s) {found}:\n{text[-4000:]}"


def migrations_rows(cluster, dbname="debate"):
    out = cluster.psql("SELECT version, name FROM schema_migrations ORDER BY version",
                       dbname=dbname)
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def build_indexes(cluster, dbname="debate"):
    out = cluster.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'builds'",
                       dbname=dbname)
    return set(out.split())


def logs(srv):
    return srv.stdout() + srv.stderr()


def get_json(srv, path, timeout=10.0):
    r = srv.get(path, timeout=timeout)
    return r, (r.json() if r.body else None)


def poll(fn, timeout, interval=0.2):
    """Calls fn() until it returns a truthy value; returns it or the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


def db_env(cluster, **extra):
    env = {"DEBATE_DATABASE_URL": cluster.url, "DEBATE_RATE_LIMIT": 100000}
    env.update(extra)
    return env


class Servers:
    """Like debate_factory, plus: servers can share a data dir (restarts of
    the embedded cluster), and any postmaster left under the work dir is
    reaped at teardown (conftest's kill9 kills one -9)."""

    def __init__(self):
        self.workdir = _own_tmpdir("debate-db-")
        self.started = []

    def new(self, data_dir=None, **env):
        srv = DebateServer(self.workdir / f"srv{len(self.started)}", env)
        if data_dir is not None:
            srv.data_dir = Path(data_dir)
            srv.ca_path = srv.data_dir / "tls" / "ca.pem"
            srv.env_overrides["DEBATE_DATA_DIR"] = str(srv.data_dir)
        self.started.append(srv)
        return srv

    def start(self, data_dir=None, **env):
        srv = self.new(data_dir, **env)
        try:
            return srv.start()
        except BaseException:
            # DebateServer.start killed it and reported its output: no
            # second report of the -9 exit at teardown
            if srv.proc is not None and srv.proc.poll() is not None:
                srv._stopped = True
            raise

    def close(self):
        try:
            _finish(self.started)
        finally:
            leaked = reap_postgres(self.workdir)
            shutil.rmtree(self.workdir, ignore_errors=True)
        assert not leaked, f"postmaster(s) {leaked} were left running under {self.workdir}"


@pytest.fixture
def work():
    """A scratch dir (cwd and DATA_DIR of one-shot debate commands)."""
    d = _own_tmpdir("debate-dbwork-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.close()


# --------------------------------------------------------------------------
# 1. migrations
# --------------------------------------------------------------------------

def test_migrate_twice_is_idempotent(pg_cluster, work):
    env = {"DEBATE_DATABASE_URL": pg_cluster.url, "DEBATE_DATA_DIR": str(work / "data")}
    first = run_debate(["migrate"], env, work)
    assert first.returncode == 0, first.stderr
    assert "applied database migration 1" in first.stderr, first.stderr
    assert f"schema is at version {LATEST}" in first.stdout, first.stdout
    assert migrations_rows(pg_cluster) == EXPECTED_MIGRATIONS

    second = run_debate(["migrate"], env, work)
    assert second.returncode == 0, second.stderr
    assert "applied database migration" not in second.stderr, second.stderr
    assert f"schema is current (version {LATEST})" in second.stderr, second.stderr
    assert migrations_rows(pg_cluster) == EXPECTED_MIGRATIONS
    assert build_indexes(pg_cluster) == EXPECTED_BUILD_INDEXES
    no_sanitizer_reports(first.stderr + second.stderr)


def test_concurrent_migrate_applies_once(pg_cluster, work):
    # three rounds, each on a fresh database, to give the race a few chances
    for rnd in range(3):
        dbname = f"race{rnd}"
        pg_cluster.psql(f"CREATE DATABASE {dbname}", dbname="postgres")
        env = clean_env({"DEBATE_DATABASE_URL": pg_cluster.url_for(dbname),
                         "DEBATE_DATA_DIR": str(work / "data")})
        procs = [subprocess.Popen([debate_bin(), "migrate"], env=env, cwd=str(work),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            results.append((p.returncode, out, err))
        for rc, out, err in results:
            assert rc == 0, f"round {rnd}: a concurrent migrate failed ({rc}):\n{err}"
            no_sanitizer_reports(err)
        applied = sum(err.count("applied database migration 1") for _, _, err in results)
        assert applied == 1, f"round {rnd}: migration 1 reported applied {applied} times: {results}"
        assert migrations_rows(pg_cluster, dbname) == EXPECTED_MIGRATIONS
        assert build_indexes(pg_cluster, dbname) == EXPECTED_BUILD_INDEXES
        assert pg_cluster.psql("SELECT count(*) FROM pg_type WHERE typname = 'build_status'",
                               dbname=dbname) == "1"


def test_newer_schema_is_refused(pg_cluster, work):
    env = {"DEBATE_DATABASE_URL": pg_cluster.url, "DEBATE_DATA_DIR": str(work / "data")}
    r = run_debate(["migrate"], env, work)
    assert r.returncode == 0, r.stderr
    pg_cluster.psql("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")

    r = run_debate(["migrate"], env, work)
    assert r.returncode != 0, f"migrate accepted a newer schema:\n{r.stdout}{r.stderr}"
    assert NEWER_MESSAGE in r.stderr, r.stderr
    assert "999" in r.stderr, r.stderr
    no_sanitizer_reports(r.stderr)

    https, http = free_ports(2)
    serve_env = dict(env, DEBATE_LISTEN="127.0.0.1", DEBATE_HTTPS_PORT=https,
                     DEBATE_HTTP_PORT=http, DEBATE_THREADS=1)
    r = run_debate(["serve"], serve_env, work, timeout=60)
    assert r.returncode != 0, f"serve started on a newer schema:\n{r.stdout}{r.stderr}"
    assert NEWER_MESSAGE in r.stderr, r.stderr
    no_sanitizer_reports(r.stderr)
    # nothing was changed
    assert migrations_rows(pg_cluster) == EXPECTED_MIGRATIONS + [("999", "from the future")]


# --------------------------------------------------------------------------
# 2. the pool
# --------------------------------------------------------------------------

LOCKED_SQL = ("SELECT count(*) > 0 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
              "WHERE c.relname = 'schema_migrations' AND l.mode = 'AccessExclusiveLock' "
              "AND l.granted")
DEBATE_WAITS_SQL = ("SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'debate' "
                    "AND wait_event_type = 'Lock'")


def test_pool_exhausted_answers_busy_quickly(pg_cluster, debate_factory):
    srv = debate_factory(**db_env(pg_cluster, DEBATE_DB_POOL_SIZE=1, DEBATE_DB_POOL_OVERFLOW=0,
                                  DEBATE_DB_ACQUIRE_TIMEOUT_MS=500))
    r = srv.get("/api/v1/health/db")
    assert r.status == 200, r

    locker = pg_cluster.session()
    blocked = None
    try:
        locker.send("BEGIN; LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE;")
        pg_cluster.wait_for(LOCKED_SQL, what="the lock on schema_migrations")

        # /ready now waits inside PostgreSQL, holding the only connection
        blocked = srv.connect_tls()
        blocked.send(build_request("GET", "/ready", srv.host))
        pg_cluster.wait_for(DEBATE_WAITS_SQL, what="debate's /ready query to wait on the lock")

        t0 = time.monotonic()
        try:
            busy = srv.get("/api/v1/health/db", timeout=3.0)
        except ResponseTimeout:
            pytest.fail("GET /api/v1/health/db got no answer within 3 s while the only "
                        "connection was busy (expected 503 database_busy after ~0.5 s)")
        elapsed = time.monotonic() - t0
        assert busy.status == 503, busy
        assert busy.error_code() == "database_busy", busy
        assert busy.header("Retry-After"), busy
        assert elapsed < 2.0, f"503 database_busy took {elapsed:.2f}s (acquire timeout 0.5 s)"
        assert elapsed >= 0.4, f"503 came after {elapsed:.2f}s, before the 0.5 s acquire timeout"
    finally:
        locker.close()          # releases the lock: the blocked /ready goes on

    try:
        ready = blocked.read_response(timeout=10.0)
    finally:
        blocked.close()
    assert ready.status == 200, ready
    assert ready.json()["status"] == "ready", ready
    r = srv.get("/api/v1/health/db")
    assert r.status == 200, r
    m = srv.get("/metrics")
    assert m.status == 200, m
    assert (metric_value(m.text, "debate_db_acquire_timeouts_total") or 0) >= 1, m.text


def _debate_backends(cluster):
    return int(cluster.psql("SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name = 'debate'"))


def _kill_debate_backends(cluster):
    n = int(cluster.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = 'debate'"))
    assert n >= 1, "debate had no backend to kill"
    cluster.wait_for("SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'debate'",
                     what="debate's backends to be gone")
    return n


def test_killed_backends_are_replaced(pg_cluster, debate_factory):
    # no build workers: their own connections would reconnect at once and blur the pool's
    srv = debate_factory(**db_env(pg_cluster, DEBATE_WORKERS="0"))
    for _ in range(3):
        r = srv.get("/api/v1/health/db")
        assert r.status == 200, r
    assert _debate_backends(pg_cluster) >= 1

    # idle for more than a second: checked before reuse, so no error at all
    _kill_debate_backends(pg_cluster)
    time.sleep(1.3)
    r = srv.get("/api/v1/health/db")
    assert r.status == 200, f"after >1 s idle a killed connection must be replaced at once: {r}"
    assert r.json()["status"] == "ok", r
    assert _debate_backends(pg_cluster) >= 1

    # used at once: at most one request may see the broken connection
    _kill_debate_backends(pg_cluster)
    statuses = []
    for _ in range(3):
        r = srv.get("/api/v1/health/db")
        statuses.append(r.status)
        if r.status == 503:
            assert r.error_code() == "database_unavailable", r
    assert statuses[0] in (200, 503) and statuses[1:] == [200, 200], statuses

    m = srv.get("/metrics")
    assert m.status == 200, m
    discarded = metric_value(m.text, "debate_db_connections_discarded_total")
    assert discarded is not None and discarded >= 1, m.text
    r = srv.get("/ready")
    assert r.status == 200, r


# --------------------------------------------------------------------------
# 3. outages
# --------------------------------------------------------------------------

def test_database_outage_and_recovery(pg_cluster, debate_factory):
    srv = debate_factory(**db_env(pg_cluster))
    r = srv.get("/ready")
    assert r.status == 200, r

    pg_cluster.stop(mode="fast")
    ready, doc = get_json(srv, "/ready")
    assert ready.status == 503, ready
    assert doc["status"] == "not ready", doc
    assert any("database" in reason.lower() for reason in doc["reasons"]), doc
    assert doc["checks"]["database"]["ok"] is False, doc
    assert ready.header("Retry-After"), ready

    for _ in range(2):  # the first may meet a broken pooled connection, the second cannot connect
        h = srv.get("/api/v1/health/db")
        assert h.status == 503, h
        assert h.error_code() == "database_unavailable", h
        assert h.header("Retry-After"), h
    assert srv.get("/health").status == 200
    assert srv.proc.poll() is None, "debate exited when the database went away"

    pg_cluster.start()
    t0 = time.monotonic()
    got = poll(lambda: srv.get("/ready").status == 200, timeout=10.0)
    assert got, f"/ready did not come back within 10 s of PostgreSQL restarting: {srv.get('/ready')}"
    r = srv.get("/api/v1/health/db")
    assert r.status == 200, r
    assert time.monotonic() - t0 < 10.0
    assert srv.proc.poll() is None


def test_server_waits_for_database_at_start(pg_cluster, servers):
    pg_cluster.stop(mode="fast")
    srv = servers.new(**db_env(pg_cluster))
    timer = threading.Timer(3.0, pg_cluster.start)
    t0 = time.monotonic()
    timer.start()
    try:
        srv.start()     # polls /health for up to 20 s
    finally:
        timer.join()
    took = time.monotonic() - t0
    assert took >= 2.5, f"server was up after {took:.1f}s, before its database"
    assert "retrying" in srv.stderr(), srv.stderr()
    assert srv.get("/ready").status == 200
    assert srv.get("/api/v1/health/db").status == 200


def test_server_gives_up_when_database_stays_down(pg_cluster, work):
    pg_cluster.stop(mode="fast")
    https, http = free_ports(2)
    env = {"DEBATE_DATABASE_URL": pg_cluster.url, "DEBATE_DATA_DIR": str(work / "data"),
           "DEBATE_LISTEN": "127.0.0.1", "DEBATE_HTTPS_PORT": https, "DEBATE_HTTP_PORT": http,
           "DEBATE_THREADS": 1}
    t0 = time.monotonic()
    r = run_debate(["serve"], env, work, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode != 0, r
    assert "retrying for 30 seconds" in r.stderr, r.stderr
    assert "cannot connect to the database" in r.stderr, r.stderr
    assert 25.0 <= took <= 45.0, f"gave up after {took:.1f}s (expected about 30 s)"
    no_sanitizer_reports(r.stderr)


# --------------------------------------------------------------------------
# 4. the embedded cluster (no DEBATE_DATABASE_URL)
# --------------------------------------------------------------------------

def embedded_socket_url(data_dir):
    return f"host={Path(data_dir) / 'pg' / 'run'} dbname=debate user=debate"


def assert_cluster_stopped(datadir):
    left = postgres_pids(datadir)
    assert not left, f"postgres still running for {datadir}: pids {left}"
    assert not (Path(datadir) / "postmaster.pid").exists(), "postmaster.pid left behind"


def test_embedded_create_reuse_persist(servers):
    data = servers.workdir / "data"
    pgdata = data / "pg" / "data"
    srv = servers.start(data_dir=data)
    assert (pgdata / "PG_VERSION").is_file()
    assert "creating the embedded PostgreSQL cluster" in logs(srv), logs(srv)
    r, doc = get_json(srv, "/ready")
    assert r.status == 200, r
    assert postgres_pids(pgdata), "no postmaster for the embedded cluster"
    url = embedded_socket_url(data)
    run_psql(url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")

    assert srv.stop() == [], logs(srv)
    assert_cluster_stopped(pgdata)

    srv2 = servers.start(data_dir=data)
    assert "creating the embedded PostgreSQL cluster" not in logs(srv2), logs(srv2)
    assert srv2.get("/ready").status == 200
    assert run_psql(url, "SELECT v FROM kept") == "still here"
    assert migrations_rows_url(url) == EXPECTED_MIGRATIONS
    assert srv2.stop() == [], logs(srv2)
    assert_cluster_stopped(pgdata)


def migrations_rows_url(url):
    out = run_psql(url, "SELECT version, name FROM schema_migrations ORDER BY version")
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def test_embedded_adopts_orphaned_cluster(servers):
    data = servers.workdir / "data"
    pgdata = data / "pg" / "data"
    srv = servers.start(data_dir=data)
    assert srv.get("/ready").status == 200
    postmasters = postgres_pids(pgdata)
    assert postmasters, "no postmaster for the embedded cluster"

    kill9(srv)
    assert postgres_pids(pgdata) == postmasters, "postgres did not survive kill -9 of debate"

    srv2 = servers.start(data_dir=data)
    assert "adopting the embedded PostgreSQL cluster" in logs(srv2), logs(srv2)
    assert "creating the embedded" not in logs(srv2)
    assert srv2.get("/ready").status == 200
    assert srv2.get("/api/v1/health/db").status == 200
    assert postgres_pids(pgdata) == postmasters, "the adopted cluster was restarted"
    assert srv2.stop() == [], logs(srv2)
    assert_cluster_stopped(pgdata)


@pytest.fixture
def unrelated_pg_user_process():
    """A long-lived process of the postgres OS user that is not postgres
    (what a pid reused after a crash or reboot can look like)."""
    kw = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
    p = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, **kw)
    yield p
    p.kill()
    p.wait(5)


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("owner", ["test process", "dead pid", "postgres-user process"])
def test_embedded_stale_postmaster_pid(servers, owner, request):
    data = servers.workdir / "data"
    pgdata = data / "pg" / "data"
    srv = servers.start(data_dir=data)
    assert srv.get("/ready").status == 200
    assert srv.stop() == [], logs(srv)
    assert_cluster_stopped(pgdata)

    unrelated = None
    if owner == "test process":
        pid = os.getpid()
    elif owner == "dead pid":
        pid = _dead_pid()
    else:
        unrelated = request.getfixturevalue("unrelated_pg_user_process")
        pid = unrelated.pid
    pidfile = pgdata / "postmaster.pid"
    # the first lines of a real postmaster.pid: pid, data dir, start time, port, socket dir
    pidfile.write_text(f"{pid}\n{pgdata}\n{int(time.time()) - 3600}\n5432\n"
                       f"{data / 'pg' / 'run'}\n\n  5432001         0\nready   \n")
    if os.geteuid() == 0:
        shutil.chown(str(pidfile), "postgres", "postgres")
    pidfile.chmod(0o600)

    failure = None
    try:
        srv2 = servers.start(data_dir=data)
    except BaseException as exc:  # noqa: BLE001 - reported below, after one more check
        failure = exc
    if unrelated is not None and unrelated.poll() is not None:
        pytest.fail(f"debate signalled the unrelated process {pid} named in the stale "
                    f"postmaster.pid (it exited with {unrelated.returncode}); start-up: "
                    f"{failure if failure else 'ok'}", pytrace=False)
    if failure is not None:
        raise failure
    r = srv2.get("/ready")
    assert r.status == 200, r
    assert postgres_pids(pgdata), "no postmaster for the embedded cluster"
    assert srv2.stop() == [], logs(srv2)
    assert_cluster_stopped(pgdata)


def test_embedded_migrate_command(servers):
    """`debate migrate` starts the embedded cluster and stops it again when
    it started it, but leaves alone a cluster a running server uses."""
    data = servers.workdir / "data"
    pgdata = data / "pg" / "data"
    work = servers.workdir
    env = {"DEBATE_DATA_DIR": str(data)}
    r = run_debate(["migrate"], env, work, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (pgdata / "PG_VERSION").is_file()
    no_sanitizer_reports(r.stderr)
    assert_cluster_stopped(pgdata)

    srv = servers.start(data_dir=data)
    assert srv.get("/ready").status == 200
    postmasters = postgres_pids(pgdata)
    r = run_debate(["migrate"], env, work, timeout=120)
    assert r.returncode == 0, r.stderr
    no_sanitizer_reports(r.stderr)
    assert postgres_pids(pgdata) == postmasters, \
        "`debate migrate` stopped the cluster a running server was using:\n" + r.stderr
    assert srv.get("/ready").status == 200
    assert srv.stop() == [], logs(srv)
    assert_cluster_stopped(pgdata)


# --------------------------------------------------------------------------
# 5. /ready
# --------------------------------------------------------------------------

def test_ready_disk_and_restore_warning(pg_cluster, debate_factory):
    srv = debate_factory(**db_env(pg_cluster, DEBATE_READY_MIN_FREE_MB=100000000))
    r, doc = get_json(srv, "/ready")
    assert r.status == 503, r
    assert doc["status"] == "not ready", doc
    assert doc["checks"]["disk"]["ok"] is False, doc
    assert doc["checks"]["database"]["ok"] is True, doc
    assert any("free" in x and "MB" in x for x in doc["reasons"]), doc
    assert not any(x.startswith("database") for x in doc["reasons"]), doc
    assert any("restore test" in w for w in doc["warnings"]), doc
    assert doc["checks"]["restore_test"]["ok"] is False, doc


def test_ready_ok_warns_about_restore_test(pg_cluster, debate_factory):
    srv = debate_factory(**db_env(pg_cluster, DEBATE_READY_MIN_FREE_MB=0))
    r, doc = get_json(srv, "/ready")
    assert r.status == 200, r
    assert doc["status"] == "ready", doc
    assert doc["reasons"] == [], doc
    assert doc["checks"]["database"]["schema_version"] == LATEST, doc
    assert doc["checks"]["disk"]["ok"] is True, doc
    assert any("restore test" in w for w in doc["warnings"]), doc


def test_ready_is_not_rate_limited(pg_cluster, debate_factory):
    srv = debate_factory(**db_env(pg_cluster, DEBATE_RATE_LIMIT=2))
    statuses = [srv.get("/ready").status for _ in range(5)]
    assert statuses == [200] * 5, statuses
    # the limit itself is in force: a rate-limited route gets 429
    limited = [srv.get("/api/v1/health/db").status for _ in range(4)]
    assert 429 in limited, limited


# --------------------------------------------------------------------------
# 6. the default data directory, relative to where the command started
# --------------------------------------------------------------------------

def test_embedded_start_failure_names_the_log(work):
    """With the default data_dir ("data", under the working directory), a
    cluster that does not start is reported with its log's absolute path and
    the reason postgres gave there."""
    try:
        r = run_debate(["migrate"], {}, work, timeout=120)
        assert r.returncode == 0, r.stderr
        pgdata = work / "data" / "pg" / "data"
        assert (pgdata / "PG_VERSION").is_file()
        assert_cluster_stopped(pgdata)
        with open(pgdata / "postgresql.conf", "a") as f:
            f.write("no_such_parameter_anywhere = 1\n")

        https, http = free_ports(2)
        env = {"DEBATE_LISTEN": "127.0.0.1", "DEBATE_HTTPS_PORT": https, "DEBATE_HTTP_PORT": http,
               "DEBATE_THREADS": 1, "DEBATE_WORKERS": 0}
        r = run_debate(["serve"], env, work, timeout=120)
        assert r.returncode == 1, f"serve started on a broken cluster:\n{r.stdout}{r.stderr}"
        log = work / "data" / "pg" / "postgres.log"
        assert f'debate serve: the embedded PostgreSQL did not start (its log is "{log}")' in r.stderr, r.stderr
        assert "FATAL:" in r.stderr, r.stderr
        assert "no_such_parameter_anywhere" in log.read_text()
        no_sanitizer_reports(r.stderr)
    finally:
        leaked = reap_postgres(work)
    assert not leaked, f"postmaster(s) {leaked} were left running under {work}"
