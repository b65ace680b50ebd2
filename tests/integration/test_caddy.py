"""debate behind Caddy, with deploy/Caddyfile as shipped (docs/operations.md,
"Behind Caddy"): the real caddy binary in front of a real `debate serve`.

* /health answers over HTTP/2 at the edge, which also offers HTTP/3;
* plain HTTP is a 301 to the same path over HTTPS;
* debate's security headers arrive once each (Caddy adds none of its own);
* the rate limit counts the client's own address, which Caddy passes in
  X-Forwarded-For and debate believes from 127.0.0.1 only: two clients
  behind Caddy are limited separately, and a client's own X-Forwarded-For
  changes nothing;
* a build log event arrives over Server-Sent Events within 1 s of being
  written (Caddy passes events on at once);
* a Range request for an ISO gets exactly those bytes;
* an unprivileged proxy can read debate's CA certificate, not its keys.

Clients use distinct loopback source addresses (127.0.0.2, ...), so that one
test's requests never count against another's rate limit. The build and its
ISO are made directly in the database and the artifact store: what is under
test is the path through Caddy, not the build.
"""

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import (DebateServer, Conn, _finish, _own_tmpdir, build_request, client_context,
                      free_ports, run_psql)

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
CADDY = shutil.which("caddy")
RATE_LIMIT = 5
SSE_BOUND_S = 1.0
SECURITY_HEADERS = ("strict-transport-security", "x-frame-options", "x-content-type-options", "referrer-policy",
                    "content-security-policy", "cross-origin-opener-policy", "cross-origin-resource-policy")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the test servers run as root"),
    pytest.mark.skipif(CADDY is None, reason="caddy is not installed (scripts/install-deps.sh --test)"),
]


class Caddy:
    """caddy run with deploy/Caddyfile, its ports and state in workdir."""

    def __init__(self, workdir, upstream):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.upstream = upstream
        self.log_path = self.workdir / "caddy.log"
        self.root_ca = self.workdir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        self.proc = None

    def start(self):
        self.http_port, self.https_port = free_ports(2)
        env = dict(os.environ, XDG_DATA_HOME=str(self.workdir / "data"), XDG_CONFIG_HOME=str(self.workdir / "config"),
                   CADDY_HTTP_PORT=str(self.http_port), CADDY_HTTPS_PORT=str(self.https_port), CADDY_ADMIN="off", CADDY_GRACE_PERIOD="1s",
                   DEBATE_SITE="localhost", DEBATE_TLS="internal",
                   DEBATE_UPSTREAM=f"127.0.0.1:{self.upstream.https_port}", DEBATE_CA=str(self.upstream.ca_path))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([CADDY, "run", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=str(self.workdir))
        deadline = time.monotonic() + 30
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"caddy exited with {self.proc.returncode}:\n{self.log()[-3000:]}", pytrace=False)
            if self.root_ca.exists():
                last = self.curl("/health")
                if last.status == 200:
                    return self
            time.sleep(0.2)
        pytest.fail(f"caddy did not pass /health through within 30 s (last: {last!r}):\n{self.log()[-3000:]}",
                    pytrace=False)

    def log(self):
        return self.log_path.read_text("utf-8", "replace")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()

    def curl(self, path, headers=(), source="127.0.0.1", scheme="https", http2=True):
        """One request with curl (HTTP/2 unless told): status, version, headers (list), body."""
        port = self.https_port if scheme == "https" else self.http_port
        out = self.workdir / f"body-{secrets.token_hex(4)}"
        argv = ["curl", "-sS", "--max-time", "30", "--cacert", str(self.root_ca),
                "--resolve", f"localhost:{port}:127.0.0.1", "--interface", source,
                "-D", "-", "-o", str(out), "-w", "\n%{http_version}"]
        argv.append("--http2" if http2 else "--http1.1")
        for name, value in headers:
            argv += ["-H", f"{name}: {value}"]
        argv.append(f"{scheme}://localhost:{port}{path}")
        p = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        body = out.read_bytes() if out.exists() else b""
        out.unlink(missing_ok=True)
        if p.returncode != 0:
            return SimpleNamespace(status=None, version=None, headers=[], body=body,
                                   error=p.stderr.decode(errors="replace"))
        head, _, version = p.stdout.decode("latin-1").rpartition("\n")
        lines = head.replace("\r", "").split("\n")
        status = int(lines[0].split()[1])
        hdrs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
        return SimpleNamespace(status=status, version=version.strip(), headers=hdrs, body=body, error=None)


def header_all(r, name):
    return [v for k, v in r.headers if k.lower() == name]


@pytest.fixture(scope="module")
def front(request):
    """debate (no workers, trusting 127.0.0.1 as its proxy) behind Caddy."""
    workdir = _own_tmpdir("debate-caddy-")
    srv = DebateServer(workdir / "debate", {"DEBATE_RATE_LIMIT": RATE_LIMIT, "DEBATE_RATE_WINDOW": 600,
                                            "DEBATE_TRUSTED_PROXIES": "127.0.0.1", "DEBATE_WORKERS": 0})
    srv.start()
    caddy = None
    try:
        caddy = Caddy(workdir / "caddy", srv).start()
        yield SimpleNamespace(srv=srv, caddy=caddy)
    finally:
        if caddy is not None:
            caddy.stop()
        try:
            _finish([srv], request)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def loopback(n):
    """127.0.0.n as a source address, or a skip when this machine cannot bind it."""
    addr = f"127.0.0.{n}"
    s = socket.socket()
    try:
        s.bind((addr, 0))
    except OSError:
        pytest.skip(f"cannot bind {addr} as a source address")
    finally:
        s.close()
    return addr


def conninfo(srv):
    return f"host={srv.data_dir}/pg/run dbname=debate user=debate"


def queued_build(srv):
    """A build row, queued (no worker will claim it: workers = 0); returns its id."""
    h = secrets.token_hex(32)
    return run_psql(conninfo(srv),
                    "INSERT INTO builds (config_hash, build_key, recipe, cancel_token_hash) VALUES "
                    f"('{h}', '{h}', '{{\"name\": \"caddy\"}}', '\\x{secrets.token_hex(32)}') RETURNING id")


# --------------------------------------------------------------------------

def test_health_over_http2_and_http3_offered(front):
    r = front.caddy.curl("/health")
    assert r.status == 200, r
    assert r.version == "2", f"/health did not come over HTTP/2 through Caddy: {r!r}"
    assert b'"ok"' in r.body or b"ok" in r.body, r.body[:300]
    alt = ", ".join(header_all(r, "alt-svc"))
    assert re.search(r'\bh3=":%d"' % front.caddy.https_port, alt), f"HTTP/3 is not offered (Alt-Svc {alt!r})"


def test_plain_http_is_a_301_to_https(front):
    r = front.caddy.curl("/api/v1/builds?limit=2", scheme="http", http2=False)
    assert r.status == 301, r
    assert header_all(r, "location") == [f"https://localhost:{front.caddy.https_port}/api/v1/builds?limit=2"], r


@pytest.mark.parametrize("path", ["/", "/health", "/api/v1/no-such-thing"])
def test_security_headers_arrive_once_each(front, path):
    r = front.caddy.curl(path)
    assert r.status is not None, r.error
    for name in SECURITY_HEADERS:
        if name == "content-security-policy" and path == "/health":
            continue
        values = header_all(r, name)
        assert len(values) == 1, f"{path}: {name} arrived {len(values)} times: {values!r}"


def test_rate_limit_counts_each_client_behind_caddy(front):
    a, b = loopback(2), loopback(3)
    for n in range(RATE_LIMIT):
        r = front.caddy.curl("/api/v1/csrf", source=a)
        assert r.status == 200, f"request {n + 1} of client {a}: {r!r}"
    r = front.caddy.curl("/api/v1/csrf", source=a)
    assert r.status == 429, f"client {a} was not limited: {r!r}"
    # Caddy replaces an X-Forwarded-For it did not get from a trusted proxy.
    r = front.caddy.curl("/api/v1/csrf", source=a, headers=[("X-Forwarded-For", "198.51.100.7")])
    assert r.status == 429, f"client {a} escaped the limit with its own X-Forwarded-For: {r!r}"
    r = front.caddy.curl("/api/v1/csrf", source=b)
    assert r.status == 200, f"client {b} shares the budget of client {a} behind Caddy: {r!r}"
    log = front.srv.stderr()
    assert "client=127.0.0.3" in log and "peer=127.0.0.1" in log, log[-2000:]


def test_sse_event_arrives_within_a_second(front):
    srv, caddy = front.srv, front.caddy
    bid = queued_build(srv)
    ctx = client_context(caddy.root_ca, alpn=["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", caddy.https_port), timeout=10, source_address=(loopback(4), 0))
    conn = Conn(ctx.wrap_socket(raw, server_hostname="localhost"))
    with conn:
        conn.send(build_request("GET", f"/api/v1/builds/{bid}/log", f"localhost:{caddy.https_port}",
                                headers=[("Accept", "text/event-stream")]))
        deadline = time.monotonic() + 20
        while b": debate build log" not in conn.buf:
            assert not conn.eof and time.monotonic() < deadline, f"no stream greeting: {conn.buf!r}"
            conn._recv_some(deadline)
        marker = f"caddy-{secrets.token_hex(6)}"
        emitted = time.monotonic()
        run_psql(conninfo(srv), "INSERT INTO build_events (build_id, seq, kind, body) VALUES "
                                f"('{bid}', 1, 'log', '{{\"line\": \"{marker}\"}}')")
        deadline = emitted + 20
        while marker.encode() not in conn.buf:
            assert not conn.eof and time.monotonic() < deadline, f"the event never came: {conn.buf[-500:]!r}"
            conn._recv_some(deadline)
        took = time.monotonic() - emitted
    assert took < SSE_BOUND_S, (f"the event took {took:.2f} s through Caddy (bound {SSE_BOUND_S} s, "
                                f"debate polls every 0.5 s): is the proxy buffering?")


def test_iso_range_download_is_byte_exact(front):
    srv, caddy = front.srv, front.caddy
    data = os.urandom(3 * 1024 * 1024 + 12345)
    sha = hashlib.sha256(data).hexdigest()
    store = srv.data_dir / "artifacts"
    store.mkdir(exist_ok=True)
    (store / f"{sha}.iso").write_bytes(data)
    bid = queued_build(srv)
    run_psql(conninfo(srv), f"UPDATE builds SET status = 'succeeded', stage = 'done', progress = 100, "
                            f"iso_sha256 = '{sha}', iso_size = {len(data)}, finished_at = now() WHERE id = '{bid}'")
    src = loopback(5)
    first, last = 1000000, 2500099
    r = caddy.curl(f"/api/v1/builds/{bid}/iso", source=src, headers=[("Range", f"bytes={first}-{last}")])
    assert r.status == 206, r
    assert header_all(r, "content-range") == [f"bytes {first}-{last}/{len(data)}"], r.headers
    assert r.body == data[first:last + 1], "the range through Caddy is not those bytes of the ISO"
    r = caddy.curl(f"/api/v1/builds/{bid}/iso", source=src, headers=[("Range", "bytes=-777")])
    assert r.status == 206 and r.body == data[-777:], r
    r = caddy.curl(f"/api/v1/builds/{bid}/iso", source=src)
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == sha, (r.status, len(r.body))


def test_the_ca_certificate_is_readable_by_a_proxy_and_the_keys_are_not(front):
    tls = front.srv.data_dir / "tls"
    assert tls.stat().st_mode & 0o777 == 0o711, oct(tls.stat().st_mode)
    assert front.srv.ca_path.stat().st_mode & 0o777 == 0o644
    keys = [p for p in tls.iterdir() if p.name.endswith(".key") or "key" in p.name]
    assert keys, list(tls.iterdir())
    for k in keys:
        assert k.stat().st_mode & 0o077 == 0, f"{k.name} is readable by others: {oct(k.stat().st_mode)}"
