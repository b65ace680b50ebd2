"""The build service end to end (docs/api.md is the contract): `debate serve`
with in-process workers and `debate worker` processes, real PostgreSQL (the
embedded cluster, or a cluster of the test's own) and real builds of
examples/tiny.json.

* a submission followed over Server-Sent Events through every stage, the
  ISO downloaded and checked against the build, its ETag and its manifest;
* the cache: the same recipe again is an instant 200 "hit";
* two identical submissions at once make one build (one of them merged);
* a worker killed -9 mid-build, and the whole server killed -9 mid-build:
  the build is retried (attempts 2) and succeeds, with one artifact; a
  build queued at the kill is not lost;
* cancelling a running build (its sandbox dies within a heartbeat), and a
  wrong cancel token (403, nothing changes);
* the ISO route: ranges, HEAD, If-None-Match, a range past the end;
* bad input (nothing queued), limits (429 submission_limit, 503
  queue_full), listing with pagination and the status filter.

The package cache (cache_dir) is shared by every server and worker of the
module, so only the first build downloads packages. DEBATE_TEST_CACHE_DIR
names a cache to reuse across runs (it is not deleted).

Only the standard library talks HTTP here (http.client over the server's
internal CA); conftest.py starts the servers.
"""

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import (SANITIZER_MARKERS, DebateServer, _finish, _own_tmpdir,
                      build_request, clean_env, debate_bin, kill9, reap_postgres)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the build service runs builds as root")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny.json"

STAGES_AFTER_ROOTFS = ("customizing", "kernel", "squashfs", "bootloader", "assembling")
BUILD_STAGES = ("rootfs",) + STAGES_AFTER_ROOTFS
ALL_STAGES = ("queued", "resolving", "fetching") + BUILD_STAGES + ("booting", "verifying", "done")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

LEASE = 6                       # lease_seconds of every server here: heartbeat every 2 s
FIRST_BUILD_TIMEOUT = 900       # the first build downloads ~43 packages
BUILD_TIMEOUT = 400             # any later build (warm cache; slower under ASan)

BUILD_KEYS = {"id", "status", "stage", "progress", "queue_position", "config_hash", "build_key", "key",
              "iso_sha256", "iso_size", "iso_url", "manifest_url", "log_url", "error", "attempts",
              "max_attempts", "created_at", "started_at", "finished_at"}
KEY_KEYS = {"config_hash", "lock_hash", "mirror", "builder", "tools"}


# --------------------------------------------------------------------------
# recipes
# --------------------------------------------------------------------------

def tiny(**overrides):
    doc = json.loads(TINY.read_text())
    doc.update(overrides)
    return doc


def unique_host():
    return "h" + secrets.token_hex(6)


def tiny_unique(**overrides):
    """tiny with a host name of its own: a recipe (config_hash) never built before."""
    overrides.setdefault("hostname", unique_host())
    return tiny(**overrides)


def tiny_with_hook(name, script, **overrides):
    doc = tiny_unique(**overrides)
    doc["hooks"] = doc["hooks"] + [{"name": name, "script": script}]
    return doc


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# HTTP over http.client
# --------------------------------------------------------------------------

class R:
    """A response: status, headers (case-insensitive), body bytes."""

    def __init__(self, status, headers, body, method, path):
        self.status, self.headers, self.body = status, headers, body
        self.method, self.path = method, path

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - message for humans
            raise AssertionError(f"{self.method} {self.path}: body is not JSON ({exc}): {self.body[:500]!r}")

    @property
    def error(self):
        doc = self.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), \
            f"{self.method} {self.path}: error body lacks an 'error' object: {doc!r}"
        return doc["error"]

    @property
    def code(self):
        return self.error.get("code")

    def __repr__(self):
        body = self.body[:600] if self.status != 200 or len(self.body) < 600 else self.body[:200]
        return f"<{self.method} {self.path} -> {self.status} {dict(self.headers)!r} body={body!r}>"


def raise_if_crashed(srv, grace=1.0):
    """After a failed request: if the server process died (now or within
    grace seconds), fail with its exit code and log tail."""
    if srv._stopped or srv.proc is None:
        return
    deadline = time.monotonic() + grace
    while srv.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if srv.proc.poll() is not None:
        raise AssertionError(f"the debate server died (exit code {srv.proc.returncode})\n{tails(srv)}")


class Api:
    """The JSON API of one server."""

    def __init__(self, srv):
        self.srv = srv
        self.ctx = srv.tls_context()
        self._csrf = None
        self.tokens = {}            # build id -> cancel token, for the submissions we made

    def conn(self, timeout=60.0, source_ip=None):
        return http.client.HTTPSConnection("localhost", self.srv.https_port, context=self.ctx,
                                           timeout=timeout,
                                           source_address=(source_ip, 0) if source_ip else None)

    def request(self, method, path, body=None, headers=None, timeout=60.0, source_ip=None):
        c = self.conn(timeout, source_ip)
        try:
            try:
                c.request(method, path, body=body, headers=dict(headers or {}))
                resp = c.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                raise_if_crashed(self.srv)     # a crash reads better than a reset
                raise
            return R(resp.status, resp.headers, data, method, path)
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def csrf(self):
        if self._csrf is None:
            self._csrf, _ = self.srv.csrf_token()
        return self._csrf

    def post(self, path, doc=None, raw=None, csrf=True, source_ip=None, timeout=60.0):
        body = raw if raw is not None else json.dumps(doc).encode()
        headers = {"Content-Type": "application/json"}
        if csrf:
            token = self.csrf()
            headers.update({"Cookie": f"__Host-debate_csrf={token}", "X-CSRF-Token": token})
        return self.request("POST", path, body=body, headers=headers, timeout=timeout, source_ip=source_ip)

    def submit(self, recipe, source_ip=None, **extra):
        doc = {"recipe": recipe}
        doc.update(extra)
        r = self.post("/api/v1/builds", doc, source_ip=source_ip)
        if r.status in (200, 202):
            body = r.json()
            if isinstance(body, dict) and body.get("cancel_token") and isinstance(body.get("build"), dict):
                self.tokens[body["build"].get("id")] = body["cancel_token"]
        return r

    def submit_ok(self, recipe, **extra):
        """Submits; the build object, or a failure that says what came back."""
        r = self.submit(recipe, **extra)
        assert r.status in (200, 202), f"submission refused: {r!r}\n{tails(self.srv)}"
        return r.json()["build"]

    def cancel(self, bid, token):
        return self.post(f"/api/v1/builds/{bid}/cancel", {"cancel_token": token})

    def build(self, bid):
        r = self.get(f"/api/v1/builds/{bid}")
        assert r.status == 200, f"GET build {bid}: {r!r}"
        return r.json()

    def build_log(self, bid):
        try:
            r = self.get(f"/api/v1/builds/{bid}/log", timeout=10)
            return r.body.decode("utf-8", "replace") if r.status == 200 else repr(r)
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"(log unavailable: {exc})"

    def list_page(self, query=""):
        r = self.get(f"/api/v1/builds{query}")
        assert r.status == 200, f"GET /api/v1/builds{query}: {r!r}"
        doc = r.json()
        assert isinstance(doc.get("builds"), list) and "next" in doc, doc
        return doc

    def list_all(self, status=None):
        """Every build (following `next`), newest first."""
        out, after = [], None
        for _ in range(1000):
            q = ["limit=100"]
            if status:
                q.append(f"status={status}")
            if after:
                q.append(f"after={after}")
            doc = self.list_page("?" + "&".join(q))
            out += doc["builds"]
            after = doc["next"]
            if not after:
                return out
        raise AssertionError("GET /api/v1/builds: `next` never ended")

    def wait(self, bid, until, timeout, what, interval=0.2):
        """Polls the build until until(build) is true; returns the build."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.build(bid)
            except (OSError, http.client.HTTPException) as exc:
                last = f"(request failed: {exc})"
                raise_if_crashed(self.srv, grace=0.3)
            if isinstance(last, dict) and until(last):
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout} s waiting for build {bid} to be {what}; "
                             f"last seen:\n{json.dumps(last, indent=1) if isinstance(last, dict) else last}\n"
                             f"--- build log tail ---\n{self.build_log(bid)[-3000:]}\n{tails(self.srv)}")

    def wait_end(self, bid, timeout=BUILD_TIMEOUT):
        return self.wait(bid, lambda b: b["status"] in TERMINAL, timeout, "finished")

    def wait_succeeded(self, bid, timeout=BUILD_TIMEOUT):
        b = self.wait_end(bid, timeout)
        assert b["status"] == "succeeded", \
            f"build {bid} ended {b['status']}: {b.get('error')}\n--- build log tail ---\n" \
            f"{self.build_log(bid)[-3000:]}\n{tails(self.srv)}"
        return b

    def sse(self, bid, last_event_id=None, timeout=FIRST_BUILD_TIMEOUT):
        """Follows the build's event stream to its end; returns (response, events, comments).
        Each event is a SimpleNamespace(id, event, data)."""
        c = self.conn(timeout=45.0)        # keep-alives come every 15 s of silence
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        deadline = time.monotonic() + timeout
        events, comments = [], 0
        try:
            try:
                c.request("GET", f"/api/v1/builds/{bid}/log", headers=headers)
                resp = c.getresponse()
            except OSError:
                raise_if_crashed(self.srv)
                raise
            if resp.status != 200:
                raise AssertionError(f"event stream of {bid}: {resp.status} {resp.read()[:500]!r}")
            cur = {"id": None, "event": None, "data": []}
            ended = False
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError(f"event stream of {bid}: no end within {timeout} s; "
                                         f"{len(events)} events, last {events[-3:]}\n{tails(self.srv)}")
                try:
                    line = resp.readline()
                except (TimeoutError, OSError) as exc:
                    if ended:
                        raise AssertionError(f"event stream of {bid} did not close after `event: end` ({exc})")
                    raise AssertionError(f"event stream of {bid}: nothing for 45 s (no keep-alive): {exc}; "
                                         f"{len(events)} events, last {events[-3:]}\n{tails(self.srv)}")
                if not line:
                    break
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    if cur["event"] is not None or cur["data"] or cur["id"] is not None:
                        ev = SimpleNamespace(id=cur["id"], event=cur["event"] or "message",
                                             data="\n".join(cur["data"]))
                        events.append(ev)
                        if ev.event == "end":
                            ended = True
                            c.sock.settimeout(10.0)   # the stream must close now
                    cur = {"id": None, "event": None, "data": []}
                    continue
                if line.startswith(":"):
                    comments += 1
                    continue
                name, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if name == "id":
                    cur["id"] = value
                elif name == "event":
                    cur["event"] = value
                elif name == "data":
                    cur["data"].append(value)
            return resp, events, comments
        finally:
            c.close()


# --------------------------------------------------------------------------
# processes: servers and `debate worker`
# --------------------------------------------------------------------------

def _tail(path, n=3000):
    try:
        return Path(path).read_text("utf-8", "replace")[-n:]
    except OSError:
        return "(no file)"


def tails(*procs):
    """Log tails of servers and workers, for failure messages."""
    out = []
    for p in procs:
        if isinstance(p, DebateServer):
            out.append(f"--- server {p.workdir} stderr tail ---\n{_tail(p.stderr_path)}"
                       f"\n--- server stdout tail ---\n{_tail(p.stdout_path, 1500)}")
        elif isinstance(p, Worker):
            out.append(f"--- worker {p.name} stderr tail ---\n{_tail(p.stderr_path)}"
                       f"\n--- worker stdout tail ---\n{_tail(p.stdout_path, 1500)}")
    return "\n".join(out)


class Worker:
    """A `debate worker` process in a process group (session) of its own."""

    def __init__(self, workdir, env, name):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.env = dict(env)
        self.stdout_path = self.workdir / f"{name}.stdout.log"
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self.proc = None
        self.stopped = False

    def start(self):
        env = clean_env({"DEBATE_DATA_DIR": str(self.workdir / "data")})
        env.update({k: str(v) for k, v in self.env.items()})
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([debate_bin(), "worker"], stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=env, cwd=str(self.workdir), start_new_session=True)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            self.stopped = True
            pytest.fail(f"debate worker exited at once with {self.proc.returncode}\n{tails(self)}", pytrace=False)
        return self

    def kill9(self):
        """SIGKILL the worker's whole process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.stopped = True

    def stop(self, timeout=30.0):
        problems = []
        if self.proc is None or self.stopped:
            return problems
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"worker {self.name} did not exit within {timeout} s of SIGTERM")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        for f in (self._out, self._err):
            f.close()
        err = _tail(self.stderr_path, 10 ** 7)
        for marker in SANITIZER_MARKERS:
            if marker in err:
                problems.append(f"worker {self.name} stderr contains {marker!r}")
        if problems:
            problems.append(tails(self))
        return problems


class Service:
    """Servers (which can share a data dir for restarts, and be killed -9)
    and workers of one test; all stopped at teardown, postmasters reaped."""

    def __init__(self, request, cache_dir):
        self.request = request
        self.cache_dir = cache_dir
        self.workdir = _own_tmpdir("debate-svc-")
        self.servers, self.workers = [], []
        self.failed_before = request.session.testsfailed

    def env(self, **extra):
        env = {"DEBATE_RATE_LIMIT": 100000, "DEBATE_RATE_WINDOW": 60, "DEBATE_CACHE_DIR": self.cache_dir,
               "DEBATE_LEASE_SECONDS": LEASE}
        env.update(extra)
        return env

    def server(self, data_dir=None, **env):
        srv = DebateServer(self.workdir / f"srv{len(self.servers)}", self.env(**env))
        if data_dir is not None:
            srv.data_dir = Path(data_dir)
            srv.ca_path = srv.data_dir / "tls" / "ca.pem"
            srv.env_overrides["DEBATE_DATA_DIR"] = str(srv.data_dir)
        self.servers.append(srv)
        try:
            srv.start()
        except BaseException:
            if srv.proc is not None and srv.proc.poll() is not None:
                srv._stopped = True
            raise
        wait_db_ready(srv)
        return srv

    def worker(self, **env):
        w = Worker(self.workdir / "workers", self.env(**env), f"worker{len(self.workers)}")
        self.workers.append(w)
        return w.start()

    def close(self):
        if self.request.session.testsfailed > self.failed_before:
            sys.__stderr__.write(f"\n===== logs of {self.request.node.name} =====\n"
                                 + tails(*self.servers, *self.workers) + "\n")
        problems = []
        try:
            for w in self.workers:
                problems += w.stop()
            try:
                _finish(self.servers, self.request)
            except BaseException as exc:  # noqa: BLE001 - reported with the others
                problems.append(str(exc))
        finally:
            leaked = reap_postgres(self.workdir)
            shutil.rmtree(self.workdir, ignore_errors=True)
        if leaked and not problems:     # after a crash, the cluster outlives its server
            problems.append(f"postmaster(s) {leaked} left running under {self.workdir}")
        if problems and not (self.request.session.shouldstop or self.request.session.shouldfail):
            pytest.fail("\n".join(problems), pytrace=False)
        elif problems:
            sys.__stderr__.write("\n" + "\n".join(problems) + "\n")


def wait_db_ready(srv, timeout=60.0):
    """The server answers /health before its database may be up: wait for it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = srv.get("/api/v1/health/db", timeout=5.0)
            if last.status == 200:
                return
        except Exception as exc:  # noqa: BLE001 - keep polling
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"the database of the server never became ready: {last!r}\n{tails(srv)}")


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache_dir():
    """One package cache for every server and worker of the module."""
    keep = os.environ.get("DEBATE_TEST_CACHE_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield str(keep)
        return
    d = tempfile.mkdtemp(prefix="debate-svc-cache-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def service(request, cache_dir):
    s = Service(request, cache_dir)
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared(request, cache_dir):
    """One server with two in-process workers and its embedded PostgreSQL,
    shared by the tests that do not need a server of their own."""
    s = Service(request, cache_dir)
    srv = s.server(DEBATE_WORKERS=2, DEBATE_SUBMIT_LIMIT=1000, DEBATE_SUBMIT_WINDOW=3600)
    api = Api(srv)
    yield SimpleNamespace(srv=srv, api=api, service=s)
    # Whatever a failed test left running: cancel it, so the server stops cleanly.
    for bid, token in list(api.tokens.items()):
        try:
            if api.build(bid)["status"] in ("queued", "running"):
                api.cancel(bid, token)
                api.wait_end(bid, timeout=30)
        except Exception:  # noqa: BLE001 - best effort
            pass
    s.close()


@pytest.fixture(scope="module")
def tiny_build(shared):
    """examples/tiny.json submitted to the shared server and followed over
    SSE to its end (the first build: it fills the package cache); its ISO
    and manifest downloaded."""
    api = shared.api
    t0 = time.monotonic()
    sub = api.submit(tiny())
    assert sub.status in (200, 202), f"submission of tiny refused: {sub!r}\n{tails(shared.srv)}"
    body = sub.json()
    bid = body["build"]["id"]
    resp, events, comments = api.sse(bid, timeout=FIRST_BUILD_TIMEOUT)
    build = api.wait_end(bid, timeout=60)
    assert build["status"] == "succeeded", \
        f"tiny ended {build['status']}: {build.get('error')}\n{api.build_log(bid)[-4000:]}\n{tails(shared.srv)}"
    iso = api.get(build["iso_url"], timeout=300)
    manifest = api.get(build["manifest_url"])
    return SimpleNamespace(submit=sub, body=body, id=bid, sse_response=resp, events=events, comments=comments,
                           build=build, iso=iso, manifest=manifest, seconds=time.monotonic() - t0)


# --------------------------------------------------------------------------
# shape checks
# --------------------------------------------------------------------------

def assert_build_object(b):
    """The build object of docs/api.md; a failure names the rule and shows the whole object."""
    def need(ok, rule):
        if not ok:
            raise AssertionError(f"build object: {rule}:\n{json.dumps(b, indent=1, sort_keys=True)}")

    need(isinstance(b, dict), "not an object")
    need(not (BUILD_KEYS - set(b)), f"lacks {sorted(BUILD_KEYS - set(b))}")
    need(UUID_RE.match(str(b["id"])), "id is not a UUID")
    need(b["status"] in STATUSES, f"status {b['status']!r} is not one of {STATUSES}")
    need(b["stage"] in ALL_STAGES, f"stage {b['stage']!r} is not one of {ALL_STAGES}")
    need(isinstance(b["progress"], int) and 0 <= b["progress"] <= 100, "progress is not 0-100")
    need(HEX64_RE.match(str(b["config_hash"])) and HEX64_RE.match(str(b["build_key"])),
         "config_hash/build_key are not 64 hex")
    need(isinstance(b["key"], dict) and KEY_KEYS <= set(b["key"]), f"key lacks one of {sorted(KEY_KEYS)}")
    need(b["key"]["config_hash"] == b["config_hash"], "key.config_hash != config_hash")
    need(isinstance(b["key"]["builder"], str) and b["key"]["builder"].startswith("debate "),
         "key.builder is not 'debate VERSION'")
    need(HEX64_RE.match(str(b["key"]["tools"])), "key.tools is not 64 hex")
    need(b["log_url"] == f"/api/v1/builds/{b['id']}/log", "log_url")
    need(isinstance(b["attempts"], int) and isinstance(b["max_attempts"], int), "attempts/max_attempts")
    need(TIME_RE.match(str(b["created_at"])), "created_at is not an RFC 3339 UTC time")
    if b["status"] == "queued":
        need(isinstance(b["queue_position"], int) and b["queue_position"] >= 1,
             "a queued build has no queue_position (1 = next to run)")
    else:
        need(b["queue_position"] is None, "queue_position is set on a build that is not queued")
    if b["status"] == "succeeded":
        need(HEX64_RE.match(str(b["iso_sha256"])), "iso_sha256 of a succeeded build")
        need(isinstance(b["iso_size"], int) and b["iso_size"] > 0, "iso_size of a succeeded build")
        need(b["iso_url"] == f"/api/v1/builds/{b['id']}/iso", "iso_url of a succeeded build")
        need(b["manifest_url"] == f"/api/v1/builds/{b['id']}/manifest", "manifest_url of a succeeded build")
        need(b["error"] is None, "error of a succeeded build")
        need(b["stage"] == "done" and b["progress"] == 100, "a succeeded build is at stage done, 100 %")
    else:
        need(b["iso_sha256"] is None and b["iso_size"] is None, "iso_sha256/iso_size before success")
        need(b["iso_url"] is None and b["manifest_url"] is None, "iso_url/manifest_url before success")
    if b["status"] in TERMINAL:
        need(TIME_RE.match(str(b["finished_at"])), "finished_at of an ended build")
    else:
        need(b["finished_at"] is None, "finished_at of a build that has not ended")
    if b["status"] in ("failed", "cancelled"):
        need(isinstance(b["error"], dict) and b["error"].get("code"), "error.code of a failed/cancelled build")


def assert_retry_after(r, most=None):
    ra = r.header("Retry-After")
    assert ra is not None and re.fullmatch(r"\d+", ra.strip()), f"Retry-After missing or not seconds: {r!r}"
    assert int(ra) >= 1, r
    if most is not None:
        assert int(ra) <= most, r


def debate_hash(recipe_path):
    p = subprocess.run([debate_bin(), "hash", str(recipe_path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    canonical, config_hash = p.stdout.split("\n")[:2]
    return canonical, config_hash


def pgrep(pattern):
    p = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return p.stdout.split()


def artifacts(artifact_dir):
    d = Path(artifact_dir)
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# --------------------------------------------------------------------------
# 1. submit, follow, download
# --------------------------------------------------------------------------

def test_submit_follow_the_stream_and_download_the_iso(shared, tiny_build):
    srv = shared.srv
    sub, body = tiny_build.submit, tiny_build.body
    # The submission: a new build.
    assert sub.status == 202, sub
    assert sub.header("Location") == f"/api/v1/builds/{tiny_build.id}", sub
    assert sub.header("Cache-Control") == "no-store", sub
    assert body["cache"] == "miss" and body["merged"] is False, body
    assert isinstance(body.get("cancel_token"), str) and len(body["cancel_token"]) == 43, body
    assert body["build"]["status"] in ("queued", "running"), body

    # The stream: progress through every stage of the build, then end with the final build.
    assert (tiny_build.sse_response.getheader("Content-Type") or "").startswith("text/event-stream")
    events = tiny_build.events
    kinds = [e.event for e in events]
    assert kinds and kinds[-1] == "end", f"the stream closed without `event: end`: {kinds[-20:]}"
    assert kinds.count("end") == 1, kinds
    progress = [json.loads(e.data) for e in events if e.event == "progress"]
    for p in progress:
        assert {"stage", "progress", "message"} <= set(p), p
    stages = [p["stage"] for p in progress]
    missing = set(BUILD_STAGES) - set(stages)
    assert not missing, f"no progress event for {sorted(missing)}; stages seen: {stages}"
    firsts = sorted({s for s in stages if s in BUILD_STAGES}, key=stages.index)
    assert firsts == [s for s in BUILD_STAGES if s in firsts], f"stages out of order: {firsts}"
    end = json.loads(events[-1].data)
    assert end["id"] == tiny_build.id and end["status"] == "succeeded", end

    # The final build, and its ISO: the bytes hash to iso_sha256, which is the ETag and the manifest's.
    b = tiny_build.build
    assert b["status"] == "succeeded" and b["attempts"] == 1 and b["max_attempts"] == 3, b
    assert b["iso_sha256"] == end["iso_sha256"], (b, end)
    iso = tiny_build.iso
    assert iso.status == 200, iso
    assert iso.header("Content-Type") == "application/x-iso9660-image", iso
    digest = sha256(iso.body)
    assert digest == b["iso_sha256"], "the downloaded ISO does not hash to the build's iso_sha256"
    assert len(iso.body) == b["iso_size"] == int(iso.header("Content-Length")), (len(iso.body), b["iso_size"])
    assert iso.header("ETag") == f'"{digest}"', iso.header("ETag")
    man = tiny_build.manifest
    assert man.status == 200 and (man.header("Content-Type") or "").startswith("application/json"), man
    m = man.json()
    assert m["iso_sha256"] == digest and m["iso_size"] == len(iso.body), m
    assert m["config_hash"] == b["config_hash"], m
    canonical, config_hash = debate_hash(TINY)
    assert m["recipe"] == json.loads(canonical)
    assert b["config_hash"] == config_hash
    assert iso.header("Accept-Ranges") == "bytes", iso
    assert iso.header("Content-Disposition") == f'attachment; filename="tiny-{digest[:12]}.iso"', \
        iso.header("Content-Disposition")

    # The artifacts are content-addressed under artifact_dir (DATA_DIR/artifacts).
    names = artifacts(srv.data_dir / "artifacts")
    assert f"{digest}.iso" in names and f"{digest}.manifest.json" in names, names

    # The plain-text log: progress lines and what the tools printed.
    log = shared.api.get(f"/api/v1/builds/{tiny_build.id}/log")
    assert log.status == 200 and (log.header("Content-Type") or "").startswith("text/plain"), log
    assert "rootfs" in log.body.decode("utf-8", "replace"), log.body[:2000]

    # The finer points of the contract, last (so that the checks above report first).
    ids = [e.id for e in events if e.event != "end"]
    assert all(i is not None and re.fullmatch(r"\d+", i) for i in ids), \
        f"every event but end has a numeric id: {[(e.id, e.event) for e in events][:20]}"
    assert [int(i) for i in ids] == sorted(set(int(i) for i in ids)), "event ids must increase"
    percents = [p["progress"] for p in progress]
    assert percents == sorted(percents), f"progress went backwards: {percents}"
    unknown = sorted({s for s in stages if s not in ALL_STAGES})
    assert not unknown, f"progress events name stages the contract does not list: {unknown}"
    key = body["build"]["key"]
    assert key["lock_hash"] is None, key             # nothing pinned: the mirror names the packages
    assert isinstance(key["mirror"], str) and key["mirror"].startswith("http"), key
    assert body.get("differs") == [], body           # the first build of this recipe
    assert TIME_RE.match(b["started_at"] or ""), b
    assert_build_object(end)
    assert_build_object(b)
    assert_build_object(body["build"])


def test_the_stream_resumes_after_last_event_id(shared, tiny_build):
    ids = [int(e.id) for e in tiny_build.events if e.event != "end"]
    assert len(ids) >= 4, ids
    n = ids[len(ids) // 2]
    _, events, _ = shared.api.sse(tiny_build.id, last_event_id=n, timeout=60)
    assert events and events[-1].event == "end", [e.event for e in events]
    again = [int(e.id) for e in events if e.event != "end"]
    assert again == [i for i in ids if i > n], (n, again[:10], ids[:10])
    # A value that is not a plain number replays everything rather than guess (never "12abc" as 12).
    _, events, _ = shared.api.sse(tiny_build.id, last_event_id=f"{n}abc", timeout=60)
    assert [int(e.id) for e in events if e.event != "end"] == ids, (n, [e.id for e in events[:10]])


# --------------------------------------------------------------------------
# 2. the cache
# --------------------------------------------------------------------------

def test_the_same_recipe_again_is_a_cache_hit(shared, tiny_build):
    t0 = time.monotonic()
    r = shared.api.submit(tiny())
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    body = r.json()
    assert body["cache"] == "hit", body
    b = body["build"]
    assert_build_object(b)
    assert b["status"] == "succeeded", b
    assert b["iso_sha256"] == tiny_build.build["iso_sha256"], (b, tiny_build.build)
    assert b["id"] == tiny_build.id, "the cached answer is the build that made the ISO"
    assert b["build_key"] == tiny_build.build["build_key"]
    assert not body.get("cancel_token"), "a cache hit created nothing to cancel"
    assert r.header("Location") is None or r.header("Location") == f"/api/v1/builds/{b['id']}"
    assert elapsed < 2.0, f"a cache hit took {elapsed:.2f} s"
    # Key order and whitespace do not matter: the canonical recipe is the key.
    shuffled = json.loads(json.dumps(tiny()), object_pairs_hook=lambda kv: dict(reversed(kv)))
    r2 = shared.api.submit(shuffled)
    assert r2.status == 200 and r2.json()["build"]["id"] == tiny_build.id, r2


def test_an_overlay_change_reuses_the_base_layer_and_the_stream_says_so(shared, tiny_build):
    """A recipe that differs from tiny only in an overlay misses the cache
    but not the base layer: the stream says the packages were not installed."""
    api = shared.api
    doc = tiny()
    doc["overlays"] = doc["overlays"] + [{"path": "/etc/debate-extra", "content": "a new overlay\n"}]
    sub = api.submit(doc)
    assert sub.status == 202 and sub.json()["cache"] == "miss", sub
    bid = sub.json()["build"]["id"]
    _, events, _ = api.sse(bid, timeout=FIRST_BUILD_TIMEOUT)
    build = api.wait_end(bid, timeout=60)
    assert build["status"] == "succeeded", build
    progress = [json.loads(e.data) for e in events if e.event == "progress"]
    reused = [p for p in progress if "reusing the base layer" in p["message"]]
    assert reused and reused[0]["stage"] == "rootfs", [p["message"] for p in progress]
    assert not any("writing the base layer" in p["message"] for p in progress), progress
    m = api.get(build["manifest_url"]).json()
    assert m["base_layer"]["reused"] is True, m["base_layer"]
    assert m["base_layer"]["key"] == tiny_build.manifest.json()["base_layer"]["key"]


def test_verify_through_the_api_rebuilds_on_another_worker_and_records_the_verdict(shared, tiny_build):
    """POST /api/v1/builds/{id}/verify queues an independent rebuild (cold,
    from the manifest's lock) that the server's other worker takes; the
    build's record then says match, by which worker, when; the rebuild
    serves no cache hit and cannot itself be verified."""
    api = shared.api
    bid = tiny_build.id
    before = api.build(bid)
    assert before["verify_url"] == f"/api/v1/builds/{bid}/verify", before
    assert before["built_by"], before
    r = api.post(before["verify_url"], {})
    assert r.status == 202, r
    body = r.json()
    assert body["verifies"] == bid and body["merged"] is False and len(body["cancel_token"]) == 43, body
    rebuild = body["build"]
    assert rebuild["verify_of"] == bid and rebuild["build_key"] == before["build_key"], rebuild
    assert r.header("Location") == f"/api/v1/builds/{rebuild['id']}"
    api.tokens[rebuild["id"]] = body["cancel_token"]
    # asked again while it is in flight: the same rebuild
    again = api.post(before["verify_url"], {})
    assert again.status == 202 and again.json()["merged"] is True, again
    assert again.json()["build"]["id"] == rebuild["id"] and "cancel_token" not in again.json()
    assert api.build(bid)["verifying"] is True
    done = api.wait_succeeded(rebuild["id"], timeout=BUILD_TIMEOUT)
    assert done["iso_sha256"] == before["iso_sha256"], (done, before)
    assert done["verify_url"] is None, "a rebuild cannot be verified"
    assert done["built_by"] and done["built_by"] != before["built_by"], \
        f"the rebuild ran on the worker that made the build ({done['built_by']}) while another was idle"
    _, events, _ = api.sse(rebuild["id"], timeout=60)    # replayed from the start: the rebuild reused no layer
    messages = [json.loads(e.data)["message"] for e in events if e.event == "progress"]
    assert any(m.startswith("kernel ") for m in messages), messages
    assert not any(m.startswith("reusing the") for m in messages), messages
    after = api.build(bid)
    v = after["verification"]
    assert after["verifying"] is False, after
    assert v["result"] == "match" and v["build"] == rebuild["id"] and v["sha256"] == before["iso_sha256"], v
    assert v["worker"] == done["built_by"] and TIME_RE.match(v["at"].replace("Z", ".0Z")), v
    # the cache still answers with the build that made the ISO
    hit = api.submit(tiny())
    assert hit.status == 200 and hit.json()["build"]["id"] == bid, hit
    assert hit.json()["build"]["verification"]["result"] == "match"
    refused = api.post(f"/api/v1/builds/{rebuild['id']}/verify", {})
    assert refused.status == 409 and refused.code == "not_verifiable", refused
    missing = api.post(f"/api/v1/builds/{uuid.uuid4()}/verify", {})
    assert missing.status == 404, missing
    bad = api.post(before["verify_url"], {"now": True})
    assert bad.status == 400 and bad.code == "invalid_request", bad
    # the same from the command line, as a user types it (no root needed)
    srv = shared.srv
    cli = subprocess.run([debate_bin(), "verify", "--build", bid, "--on-server", "--server",
                          f"https://localhost:{srv.https_port}", "--cacert", str(srv.ca_path)],
                         capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                         env=clean_env({"DEBATE_DATA_DIR": str(srv.data_dir.parent / "client-data")}))
    assert cli.returncode == 0, cli
    line = cli.stdout.splitlines()[0]
    assert line.startswith(f"match  {before['iso_sha256']}  {bid}  rebuilt by "), cli.stdout
    assert "rebuild" in cli.stderr and "queued on the server" in cli.stderr, cli.stderr
    cli = subprocess.run([debate_bin(), "verify", "--build", rebuild["id"], "--on-server", "--server",
                          f"https://localhost:{srv.https_port}", "--cacert", str(srv.ca_path)],
                         capture_output=True, text=True, timeout=60, env=clean_env())
    assert cli.returncode == 2 and "not_verifiable" in cli.stderr, cli
    status = subprocess.run([debate_bin(), "status", bid, "--server", f"https://localhost:{srv.https_port}",
                             "--cacert", str(srv.ca_path)], capture_output=True, text=True, timeout=60,
                            env=clean_env())
    assert status.returncode == 0 and re.search(r"^verified  match \(rebuild \S+ by \S+, ", status.stdout, re.M), status
    assert re.search(r"^built by  \S+", status.stdout, re.M), status.stdout


# --------------------------------------------------------------------------
# 7. the ISO route: ranges, HEAD, conditional requests
# --------------------------------------------------------------------------

def test_iso_ranges_head_and_conditional_get(shared, tiny_build):
    api, srv = shared.api, shared.srv
    full = tiny_build.iso.body
    size = len(full)
    digest = tiny_build.build["iso_sha256"]
    path = tiny_build.build["iso_url"]

    r = api.get(path, headers={"Range": "bytes=100-1123"})
    assert r.status == 206, r
    assert r.body == full[100:1124], "the range is not those bytes of the ISO"
    assert len(r.body) == 1024 and r.header("Content-Length") == "1024", r
    assert r.header("Content-Range") == f"bytes 100-1123/{size}", r
    assert r.header("ETag") == f'"{digest}"', r

    r = api.get(path, headers={"Range": f"bytes={size - 10}-{size - 1}"})
    assert r.status == 206 and r.body == full[-10:], r
    assert r.header("Content-Range") == f"bytes {size - 10}-{size - 1}/{size}", r

    # HEAD: the headers of a GET, no body (read on a raw connection: nothing after the head).
    with srv.connect_tls() as conn:
        conn.send(build_request("HEAD", path, srv.host))
        h = conn.read_response(timeout=30, head_request=True)
        rest, closed = conn.read_until_close(timeout=5)
    assert h.status == 200, h
    assert h.header("Content-Length") == str(size), h
    assert h.header("ETag") == f'"{digest}"', h
    assert h.header("Accept-Ranges") == "bytes", h
    assert h.header("Content-Type") == "application/x-iso9660-image", h
    assert rest == b"", f"HEAD sent a body: {len(rest)} bytes"

    r = api.get(path, headers={"If-None-Match": f'"{digest}"'})
    assert r.status == 304 and r.body == b"", r
    r = api.get(path, headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert r.status == 200 and len(r.body) == size, r

    r = api.get(path, headers={"Range": f"bytes={size + 100}-{size + 200}"})
    assert r.status == 416, r

    r = api.get(tiny_build.build["manifest_url"])
    assert r.status == 200 and r.json()["iso_sha256"] == digest, r


# --------------------------------------------------------------------------
# 3. identical submissions at the same moment merge
# --------------------------------------------------------------------------

def test_identical_submissions_at_once_make_one_build(shared, tiny_build):
    api = shared.api
    recipe = tiny_unique()
    api.csrf()
    barrier = threading.Barrier(2)
    results = [None, None]

    def submit(i):
        c = api.conn(timeout=60)
        try:
            c.connect()                      # TLS handshake before the barrier
            body = json.dumps({"recipe": recipe}).encode()
            token = api.csrf()
            barrier.wait(timeout=30)
            c.request("POST", "/api/v1/builds", body=body,
                      headers={"Content-Type": "application/json", "Cookie": f"__Host-debate_csrf={token}",
                               "X-CSRF-Token": token})
            resp = c.getresponse()
            results[i] = R(resp.status, resp.headers, resp.read(), "POST", "/api/v1/builds")
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc
        finally:
            c.close()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for r in results:
        assert isinstance(r, R), f"a submission failed: {r!r}"
        assert r.status == 202, r
    bodies = [r.json() for r in results]
    for body in bodies:
        if body.get("cancel_token"):
            api.tokens[body["build"]["id"]] = body["cancel_token"]
    ids = {b["build"]["id"] for b in bodies}
    assert len(ids) == 1, f"two builds for one recipe: {ids}"
    bid = ids.pop()
    assert sorted(b["merged"] for b in bodies) == [False, True], [b["merged"] for b in bodies]
    creator = next(b for b in bodies if not b["merged"])
    joiner = next(b for b in bodies if b["merged"])
    assert isinstance(creator.get("cancel_token"), str) and len(creator["cancel_token"]) == 43, creator
    assert not joiner.get("cancel_token"), "only the submission that created the build gets its token"
    for r in results:
        assert r.header("Location") == f"/api/v1/builds/{bid}", r
    for b in bodies:
        assert b["cache"] == "miss", b
    key = creator["build"]["build_key"]
    same_key = [b for b in api.list_all() if b["build_key"] == key]
    assert [b["id"] for b in same_key] == [bid], same_key

    # No ISO before it succeeded.
    r = api.get(f"/api/v1/builds/{bid}/iso")
    if r.status != 200:
        assert r.status == 404 and r.code == "no_iso", r
    else:
        assert api.build(bid)["status"] == "succeeded"

    b = api.wait_succeeded(bid)
    assert b["attempts"] == 1, b
    same_key = [b for b in api.list_all() if b["build_key"] == key]
    assert [b["id"] for b in same_key] == [bid], same_key
    assert_build_object(b)
    for body in bodies:
        assert_build_object(body["build"])


# --------------------------------------------------------------------------
# 6. cancel a running build
# --------------------------------------------------------------------------

def test_cancel_a_running_build_kills_its_sandbox(shared, tiny_build):
    api = shared.api
    n = 4242000 + os.getpid() % 1000     # a sleep of this test's own
    pattern = f"sleep {n}$"
    recipe = tiny_with_hook("50-sleep", f"#!/bin/sh\nsleep {n}\n")
    r = api.submit(recipe)
    assert r.status == 202, r
    body = r.json()
    bid, token = body["build"]["id"], body["cancel_token"]
    try:
        b = api.wait(bid, lambda b: b["status"] in TERMINAL or (b["status"] == "running" and pgrep(pattern)),
                     BUILD_TIMEOUT, "running its sleeping hook")
        assert b["status"] == "running", f"the build ended before its hook ran: {b}\n{api.build_log(bid)[-3000:]}"
        assert b["stage"] == "customizing", f"hooks run in the customizing stage: {b}"
        # A wrong token: 403 (checked at the end, so the rest reports too), and nothing changes.
        wrong = secrets.token_urlsafe(32)
        assert len(wrong) == 43 and wrong != token
        wrong_answer = api.cancel(bid, wrong)
        assert wrong_answer.status not in (200, 202), wrong_answer
        r = api.post(f"/api/v1/builds/{bid}/cancel", {"cancel_token": ""})
        assert r.status in (400, 403), r
        time.sleep(LEASE / 3 + 1)            # a heartbeat would have seen a cancel request
        b = api.build(bid)
        assert b["status"] == "running" and b["error"] is None, b
        assert pgrep(pattern), "the wrong token stopped the hook"

        # The right token: cancelled within one heartbeat, the sandbox gone.
        t0 = time.monotonic()
        r = api.cancel(bid, token)
        assert r.status == 202, r
        assert r.json()["build"]["id"] == bid, r
        b = api.wait(bid, lambda b: b["status"] in TERMINAL, LEASE / 3 + 3, "cancelled within one heartbeat",
                     interval=0.1)
        elapsed = time.monotonic() - t0
        assert b["status"] == "cancelled", b
        assert b["error"]["code"] == "cancelled", b
        assert_build_object(b)
        deadline = time.monotonic() + 3
        while pgrep(pattern) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = pgrep(pattern)
        assert not left, f"processes of the cancelled build outlived it: {left}"
        print(f"cancelled in {elapsed:.1f} s")
    finally:
        if pgrep(pattern):
            api.cancel(bid, token)

    r = api.cancel(bid, token)
    assert r.status == 409 and r.code == "already_finished", r
    assert r.json().get("build", {}).get("status") == "cancelled", r
    r = api.get(f"/api/v1/builds/{bid}/iso")
    assert r.status == 404 and r.code == "no_iso", r
    r = api.get(f"/api/v1/builds/{bid}/manifest")
    assert r.status == 404, r
    # The stream of an ended build: its backlog, then end at once.
    _, events, _ = api.sse(bid, timeout=30)
    assert events and events[-1].event == "end", [e.event for e in events]
    assert json.loads(events[-1].data)["status"] == "cancelled"
    assert wrong_answer.status == 403 and wrong_answer.code == "bad_cancel_token", wrong_answer


# --------------------------------------------------------------------------
# 8. bad input queues nothing
# --------------------------------------------------------------------------

def test_bad_input_is_refused_and_queues_nothing(service, pg_cluster):
    # A server of its own (no workers): nothing is queued unless a submission was taken.
    srv = service.server(DEBATE_DATABASE_URL=pg_cluster.url, DEBATE_WORKERS=0)
    api = Api(srv)
    before = [b["id"] for b in api.list_all()]
    queued_before = [b["id"] for b in api.list_all("queued")]

    r = api.post("/api/v1/builds", raw=b'{"recipe": {"name": "tiny",')
    assert r.status == 400 and r.code == "invalid_json", r
    assert r.header("Cache-Control") == "no-store", r

    r = api.submit(tiny(packages=["bad name!"]))
    assert r.status == 400 and r.code == "invalid_recipe", r
    assert r.error.get("field") == "recipe.packages[0]", r

    recipe = tiny_unique()
    del recipe["name"]
    r = api.submit(recipe)
    assert r.status == 400 and r.code == "invalid_recipe", r
    assert r.error.get("field") == "recipe.name", r

    r = api.submit(tiny_unique(hooks=[{"name": "x", "script": "no shebang"}]))
    assert r.status == 400 and r.code == "invalid_recipe", r
    assert r.error.get("field") == "recipe.hooks[0].script", r

    r = api.submit(tiny_unique(), surprise=1)
    assert r.status == 400 and r.code == "invalid_request", r
    assert r.error.get("field") in (None, "surprise"), r

    r = api.submit(tiny_unique(), no_cache="yes")
    assert r.status == 400 and r.code == "invalid_request", r

    r = api.post("/api/v1/builds", {"no_cache": False})
    assert r.status == 400 and r.code in ("invalid_request", "invalid_recipe"), r

    r = api.submit(tiny_unique(), lock={"packages": "nope"})
    assert r.status == 400 and r.code == "invalid_lock", r

    r = api.post("/api/v1/builds", {"recipe": tiny_unique()}, csrf=False)
    assert r.status == 403, r

    unknown = str(uuid.uuid4())
    for path in (f"/api/v1/builds/{unknown}", "/api/v1/builds/not-a-build-id",
                 "/api/v1/builds/" + unknown.upper().replace("-", ""),
                 "/api/v1/builds/" + "a" * 300, "/api/v1/builds/%27%20OR%201=1"):
        r = api.get(path)
        assert r.status == 404 and r.code == "not_found", r
        assert r.header("Cache-Control") == "no-store", r
    # The routes under an unknown build: 404 too (not_found; the contract's
    # "404 as for the ISO" leaves no_iso possible for iso and manifest).
    for path in (f"/api/v1/builds/{unknown}/iso", f"/api/v1/builds/{unknown}/manifest",
                 f"/api/v1/builds/{unknown}/log", "/api/v1/builds/not-a-build-id/iso"):
        r = api.get(path)
        assert r.status == 404 and r.code in ("not_found", "no_iso"), r
    r = api.cancel(unknown, secrets.token_urlsafe(32))
    assert r.status == 404 and r.code == "not_found", r
    r = api.cancel("not-a-build-id", secrets.token_urlsafe(32))
    assert r.status == 404 and r.code == "not_found", r

    after = [b["id"] for b in api.list_all()]
    assert after == before == [], f"bad input created builds: {after}"
    assert api.list_all("queued") == [] and queued_before == []

    # JSON of the wrong shape.
    for raw in (b'{"recipe": "tiny"}', b'{"recipe": [1]}'):
        r = api.post("/api/v1/builds", raw=raw)
        assert r.status == 400 and r.code in ("invalid_request", "invalid_recipe"), (raw, r)
    for raw in (b"[1, 2]", b'"recipe"', b"null"):
        r = api.post("/api/v1/builds", raw=raw)
        assert r.status == 400 and r.code in ("invalid_request", "invalid_json"), (raw, r)
    assert api.list_all() == []


# --------------------------------------------------------------------------
# 9. limits
# --------------------------------------------------------------------------

def test_submission_limit_and_full_queue(service, pg_cluster):
    pg_cluster.psql("CREATE DATABASE debate_q", dbname="postgres")
    srv = service.server(DEBATE_DATABASE_URL=pg_cluster.url, DEBATE_WORKERS=0,
                         DEBATE_SUBMIT_LIMIT=2, DEBATE_SUBMIT_WINDOW=3600)
    api = Api(srv)
    for _ in range(2):
        r = api.submit(tiny_unique())
        assert r.status == 202, r
    r = api.submit(tiny_unique())
    assert r.status == 429 and r.code == "submission_limit", r
    assert_retry_after(r, most=3600)
    assert len(api.list_all()) == 2, "the refused submission was queued"
    # The limit is per client: another address may still submit.
    r = api.submit(tiny_unique(), source_ip="127.0.0.2")
    assert r.status == 202, r
    assert len(api.list_all()) == 3

    # queue_max=1: a second distinct build does not fit.
    srv2 = service.server(DEBATE_DATABASE_URL=pg_cluster.url_for("debate_q"), DEBATE_WORKERS=0,
                          DEBATE_QUEUE_MAX=1)
    api2 = Api(srv2)
    r = api2.submit(tiny_unique())
    assert r.status == 202, r
    first = r.json()
    r = api2.submit(tiny_unique())
    assert r.status == 503 and r.code == "queue_full", r
    assert_retry_after(r)
    assert [b["id"] for b in api2.list_all()] == [first["build"]["id"]]
    # Cancelling the queued build (at once) makes room again.
    r = api2.cancel(first["build"]["id"], first["cancel_token"])
    assert r.status == 202 and r.json()["build"]["status"] == "cancelled", r
    r = api2.submit(tiny_unique())
    assert r.status == 202, r


def fake_lock(packages):
    """A trixie lock (format 2: the release, updates and security suites,
    main) of (name, version, suite) packages. A submission's lock is only
    parsed: nothing is fetched while no worker runs."""
    date = "Sat, 21 Nov 2026 09:15:44 UTC"
    suites = [{"suite": s, "mirror": "http://deb.debian.org/debian" + ("-security" if s.endswith("security") else ""),
               "inrelease_sha256": c * 64, "date": date}
              for s, c in (("trixie", "a"), ("trixie-updates", "b"), ("trixie-security", "c"))]
    pkgs = [{"name": n, "version": v, "architecture": "amd64", "size": 1, "sha256": "d" * 64,
             "filename": f"pool/main/x/{n}_{v}_amd64.deb", "suite": s, "component": "main"} for n, v, s in packages]
    return {"format": 2, "mirror": "http://deb.debian.org/debian", "release": "trixie", "architecture": "amd64",
            "components": ["main"], "date": date, "suites": suites, "packages": pkgs}


def test_a_miss_for_another_lock_names_the_packages_that_changed(service, pg_cluster):
    # A database of its own: the builds stay queued (no workers).
    pg_cluster.psql("CREATE DATABASE debate_locks", dbname="postgres")
    srv = service.server(DEBATE_DATABASE_URL=pg_cluster.url_for("debate_locks"), DEBATE_WORKERS=0)
    api = Api(srv)
    recipe = tiny_unique()
    kernel = ("linux-image-amd64", "6.12.41-1", "trixie")
    r = api.submit(recipe, lock=fake_lock([("busybox-static", "1:1.37.0-6+b9", "trixie"), kernel,
                                           ("gone", "1", "trixie")]))
    assert r.status == 202, r
    assert "lock_changes" not in r.json(), r.json()      # the first build of this recipe
    r = api.submit(recipe, lock=fake_lock([("busybox-static", "1:1.37.0-6+b9", "trixie"),
                                           ("linux-image-amd64", "6.12.118-1", "trixie-security"),
                                           ("new", "2", "trixie-updates")]))
    assert r.status == 202, r
    body = r.json()
    assert body["differs"] == ["lock_hash"], body
    assert body["lock_changes"] == [
        {"name": "gone", "old": {"version": "1", "suite": "trixie"}, "new": None},
        {"name": "linux-image-amd64", "old": {"version": "6.12.41-1", "suite": "trixie"},
         "new": {"version": "6.12.118-1", "suite": "trixie-security"}},
        {"name": "new", "old": None, "new": {"version": "2", "suite": "trixie-updates"}},
    ], body
    from apidoc import check_answer, load_doc
    check_answer(load_doc(), "/api/v1/builds", "POST", r)
    # The same recipe without a lock: the lock is not what differs, and nothing is named.
    r = api.submit(recipe)
    assert r.status == 202 and "lock_changes" not in r.json(), r


# --------------------------------------------------------------------------
# 10. listing
# --------------------------------------------------------------------------

def test_list_pagination_and_status_filter(service, pg_cluster):
    srv = service.server(DEBATE_DATABASE_URL=pg_cluster.url, DEBATE_WORKERS=0)
    api = Api(srv)
    subs = []
    for _ in range(3):
        r = api.submit(tiny_unique())
        assert r.status == 202, r
        subs.append(r.json())
    ids = [s["build"]["id"] for s in subs]
    # Queue positions: the oldest runs first.
    assert [api.build(i)["queue_position"] for i in ids] == [1, 2, 3]

    # limit=1, following next: newest first, one per page, then next null.
    seen, after, pages, listed = [], None, 0, []
    while True:
        doc = api.list_page("?limit=1" + (f"&after={after}" if after else ""))
        pages += 1
        assert len(doc["builds"]) <= 1, doc
        listed += doc["builds"]
        seen += [b["id"] for b in doc["builds"]]
        after = doc["next"]
        if not after:
            break
        assert pages < 10, f"pagination does not end: {seen}"
    assert seen == list(reversed(ids)), (seen, ids)

    doc = api.list_page("?limit=2")
    assert [b["id"] for b in doc["builds"]] == [ids[2], ids[1]] and doc["next"], doc
    doc = api.list_page(f"?limit=2&after={doc['next']}")
    assert [b["id"] for b in doc["builds"]] == [ids[0]] and doc["next"] is None, doc

    assert [b["id"] for b in api.list_all("queued")] == list(reversed(ids))
    assert api.list_all("succeeded") == [] and api.list_all("running") == []

    r = api.cancel(ids[1], subs[1]["cancel_token"])
    assert r.status == 202 and r.json()["build"]["status"] == "cancelled", r
    assert [b["id"] for b in api.list_all("cancelled")] == [ids[1]]
    assert [b["id"] for b in api.list_all("queued")] == [ids[2], ids[0]]
    assert [api.build(i)["queue_position"] for i in (ids[0], ids[2])] == [1, 2]
    doc = api.list_page("?status=queued&limit=1")
    assert [b["id"] for b in doc["builds"]] == [ids[2]] and doc["next"], doc
    doc = api.list_page(f"?status=queued&limit=1&after={doc['next']}")
    assert [b["id"] for b in doc["builds"]] == [ids[0]], doc

    for query, param in (("?status=bogus", "status"), ("?status=SUCCEEDED", "status"),
                         ("?after=not-a-cursor", "after")):
        r = api.get("/api/v1/builds" + query)
        assert r.status == 400, r
        err = r.error
        assert err.get("field") == param or param in (err.get("message") or ""), \
            f"the 400 for {query} does not name {param}: {r!r}"
    # Submitted and listed builds have the shape of every build object (queue_position included).
    for b in [s["build"] for s in subs] + listed:
        assert_build_object(b)


# --------------------------------------------------------------------------
# 4. a worker killed -9 in the middle of a build
# --------------------------------------------------------------------------

def test_a_killed_worker_build_is_retried(service, pg_cluster):
    artifact_dir = service.workdir / "artifacts"
    artifact_dir.mkdir()
    common = {"DEBATE_DATABASE_URL": pg_cluster.url, "DEBATE_ARTIFACT_DIR": str(artifact_dir)}
    srv = service.server(DEBATE_WORKERS=0, **common)
    api = Api(srv)
    w1 = service.worker(DEBATE_WORKERS=1, **common)
    # A hook that pauses: the build stays past rootfs long enough to be caught there.
    recipe = tiny_with_hook("50-pause", "#!/bin/sh\nsleep 5\n")
    r = api.submit(recipe)
    assert r.status == 202, r
    bid = r.json()["build"]["id"]
    b = api.wait(bid, lambda b: b["status"] != "queued" and (b["status"] in TERMINAL
                                                            or b["stage"] in STAGES_AFTER_ROOTFS),
                 BUILD_TIMEOUT, "running past rootfs")
    assert b["status"] == "running", f"the build ended before it could be interrupted: {b}\n{tails(srv, w1)}"
    assert b["attempts"] == 1, b
    w1.kill9()

    w2 = service.worker(DEBATE_WORKERS=1, **common)
    b = api.wait_end(bid, timeout=BUILD_TIMEOUT)
    assert b["status"] == "succeeded", f"{b}\n{api.build_log(bid)[-3000:]}\n{tails(srv, w1, w2)}"
    assert b["attempts"] == 2, b
    assert_build_object(b)
    digest = b["iso_sha256"]
    isos = [n for n in artifacts(artifact_dir) if n.endswith(".iso")]
    assert isos == [f"{digest}.iso"], f"artifact_dir holds {artifacts(artifact_dir)}"
    assert f"{digest}.manifest.json" in artifacts(artifact_dir)
    iso = api.get(b["iso_url"], timeout=300)
    assert iso.status == 200 and sha256(iso.body) == digest, iso


# --------------------------------------------------------------------------
# 5. the server killed -9 in the middle of a build
# --------------------------------------------------------------------------

def test_a_killed_server_loses_no_build(service, pg_cluster):
    env = {"DEBATE_DATABASE_URL": pg_cluster.url, "DEBATE_WORKERS": 1}
    srv = service.server(**env)
    api = Api(srv)
    running = api.submit(tiny_with_hook("50-pause", "#!/bin/sh\nsleep 5\n"))
    assert running.status == 202, running
    queued = api.submit(tiny_unique())
    assert queued.status == 202, queued
    a, q = running.json()["build"]["id"], queued.json()["build"]["id"]
    b = api.wait(a, lambda b: b["status"] in TERMINAL or (b["status"] == "running"
                                                         and b["stage"] in STAGES_AFTER_ROOTFS),
                 BUILD_TIMEOUT, "running past rootfs")
    assert b["status"] == "running", f"the build ended before the kill: {b}"
    qb = api.build(q)
    assert qb["status"] == "queued" and qb["queue_position"] == 1, qb
    kill9(srv)

    srv2 = service.server(data_dir=srv.data_dir, **env)
    api2 = Api(srv2)
    b = api2.build(a)
    assert b["status"] in ("running", "queued", "succeeded"), b       # not lost
    qb = api2.build(q)
    assert qb["status"] in ("queued", "running", "succeeded"), qb
    b = api2.wait_succeeded(a, timeout=BUILD_TIMEOUT)
    assert b["attempts"] == 2, b
    qb = api2.wait_succeeded(q, timeout=BUILD_TIMEOUT)
    assert qb["attempts"] == 1, qb
    for x in (b, qb):
        assert_build_object(x)
        h = api2.request("HEAD", x["iso_url"])
        assert h.status == 200 and h.header("ETag") == f'"{x["iso_sha256"]}"', h
    isos = [n for n in artifacts(srv.data_dir / "artifacts") if n.endswith(".iso")]
    assert sorted(isos) == sorted({f"{b['iso_sha256']}.iso", f"{qb['iso_sha256']}.iso"}), isos


# --------------------------------------------------------------------------
# 11. SIGTERM while clients follow build logs
# --------------------------------------------------------------------------

def open_log_stream(srv, bid, timeout=30.0):
    """A raw connection following the build's event stream, its greeting read."""
    conn = srv.connect_tls()
    conn.send(build_request("GET", f"/api/v1/builds/{bid}/log", srv.host,
                            headers=[("Accept", "text/event-stream")]))
    deadline = time.monotonic() + timeout
    while b": debate build log" not in conn.buf:
        assert not conn.eof, f"the event stream closed at once: {conn.buf!r}"
        conn._recv_some(deadline)
    return conn


def test_sigterm_ends_open_log_streams_and_stops_the_embedded_database(service):
    from conftest import postgres_pids
    drain = 20
    # No workers: the build stays queued, so its stream would last as long as the server.
    srv = service.server(DEBATE_WORKERS=0, DEBATE_DRAIN_TIMEOUT=drain)
    api = Api(srv)
    bid = api.submit_ok(tiny_unique())["id"]
    streams = [open_log_stream(srv, bid) for _ in range(3)]
    assert postgres_pids(srv.data_dir), "the embedded PostgreSQL is not running"
    try:
        srv.signal(signal.SIGTERM)
        seen = []
        for conn in streams:
            head = conn.buf
            rest, closed = conn.read_until_close(timeout=drain)
            seen.append((head + rest, closed))
    finally:
        for conn in streams:
            conn.close()
    for data, closed in seen:
        assert closed, f"an event stream stayed open through the drain: {data[-300:]!r}\n{tails(srv)}"
        assert data.startswith(b"HTTP/1.1 200"), data[:300]
        assert b"the server is stopping" in data, data[-300:]
        # The last chunk of a chunked response: the stream was ended, not cut off by the process exiting.
        assert data.endswith(b"\r\n0\r\n\r\n"), f"the stream was cut, not ended: {data[-300:]!r}"
    rc = srv.wait_exit(timeout=drain)
    assert rc == 0, f"the server did not exit cleanly within drain_timeout ({drain} s): {rc}\n{tails(srv)}"
    log = srv.stderr()
    assert "drain timeout" not in log, tails(srv)
    assert 'msg=stopped' in log, f"the server never logged `stopped`\n{tails(srv)}"
    assert postgres_pids(srv.data_dir) == [], f"the embedded PostgreSQL outlived its server\n{tails(srv)}"
