"""Fixtures and raw HTTP/TLS helpers for the `debate` integration tests.

Only the Python standard library and pytest are used.  The binary under test
is taken from DEBATE_BIN (default: build/debate of this checkout).

Main pieces:

* ``DebateServer``     -- one running ``debate serve`` process, with helpers
                          to talk raw bytes to it over TLS or plain TCP.
* ``Conn``             -- a raw connection (TLS or plain) with a small
                          HTTP/1.1 response parser.
* ``server`` fixture   -- a module-scoped shared server (huge rate limit,
                          1 KiB body limit, one CORS origin).
* ``debate_factory``   -- function-scoped factory for fresh servers with
                          custom environment (rate limits, timeouts, drain).
* ``kill9(srv)``       -- SIGKILL a server, as a crash would, without a
                          teardown complaint about its exit.
"""

import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

DEBATE_BIN = os.environ.get("DEBATE_BIN", str(Path(__file__).resolve().parents[2] / "build" / "debate"))
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 15.0
SANITIZER_MARKERS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "ThreadSanitizer",
    "UndefinedBehaviorSanitizer",
    "runtime error",
)

# Configuration of the shared, module-scoped server.
SHARED_MAX_BODY = 1024
SHARED_CORS_ORIGIN = "https://app.example"


# --------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------

def debate_bin():
    path = os.path.abspath(DEBATE_BIN)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(f"debate binary not found or not executable: {path} "
                    f"(set DEBATE_BIN)", pytrace=False)
    return path


def file_sha256(path):
    """The SHA-256 of a file, read in pieces (ISOs are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def free_ports(n=2):
    """Pick n distinct free TCP ports on 127.0.0.1."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def clean_env(extra=None):
    """Environment without any inherited DEBATE_* settings, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBATE_")}
    # Make sanitizer reports deterministic and fatal-free for log scanning.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def client_context(ca_path, minimum=None, maximum=None, alpn=None,
                   seclevel0=False, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=str(ca_path))
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if alpn is not None:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


# --------------------------------------------------------------------------
# HTTP response parsing
# --------------------------------------------------------------------------

class NoResponse(Exception):
    """The peer closed the connection before sending any response byte."""


class ResponseTimeout(Exception):
    """The peer neither answered nor closed within the timeout."""


class Response:
    def __init__(self, status, reason, version, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers          # list of (name, value), order kept
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return self.header(name) is not None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception as exc:  # pragma: no cover - message for humans
            raise AssertionError(
                f"response body is not JSON ({exc}): {self.body[:300]!r}")

    def error_code(self):
        doc = self.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), \
            f"error body lacks an 'error' object: {doc!r}"
        return doc["error"].get("code")

    def __repr__(self):
        return (f"<Response {self.status} {self.reason!r} "
                f"headers={self.headers!r} body={self.body[:200]!r}>")


class Conn:
    """A raw connection (TLS or plain TCP) with a tiny HTTP/1.1 reader."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.send_error = None

    # -- low level ---------------------------------------------------------
    @property
    def is_tls(self):
        return isinstance(self.sock, ssl.SSLSocket)

    def send(self, data):
        """Send all bytes; returns False (and records why) if the peer is gone."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                ssl.SSLError, OSError) as exc:
            self.send_error = exc
            return False

    def readable(self, timeout=0.0):
        """True once application data (or EOF) is available, within timeout.

        TLS records that carry no application data (e.g. TLS 1.3 session
        tickets) do not count."""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf or self.eof:
                return True
            if self.is_tls and self.sock.pending():
                return True
            remaining = max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([self.sock], [], [], remaining)
            if r:
                self.sock.settimeout(0.0)
                try:
                    data = self.sock.recv(65536)
                    if data:
                        self.buf += data
                    else:
                        self.eof = True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError,
                        BlockingIOError):
                    pass
                except (ssl.SSLError, OSError):
                    self.eof = True
                finally:
                    try:
                        self.sock.settimeout(5.0)
                    except OSError:
                        pass
                if self.buf or self.eof:
                    return True
            if time.monotonic() >= deadline:
                return False

    def _recv_some(self, deadline):
        """Append some bytes to self.buf; sets self.eof on close/reset."""
        if self.eof:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ResponseTimeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise ResponseTimeout()
        except ssl.SSLWantReadError:
            return
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError,
                ConnectionAbortedError, BrokenPipeError):
            self.eof = True
            return
        except ssl.SSLError:
            # e.g. an alert from the server: the connection is gone.
            self.eof = True
            return
        except OSError:
            self.eof = True
            return
        if not data:
            self.eof = True
        else:
            self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                raise AssertionError(
                    f"connection closed mid-body: wanted {n} bytes, "
                    f"have {len(self.buf)}")
            self._recv_some(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _take_line(self, deadline):
        while b"\r\n" not in self.buf:
            if self.eof:
                raise AssertionError("connection closed inside chunked framing")
            self._recv_some(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    # -- HTTP --------------------------------------------------------------
    def read_response(self, timeout=10.0, head_request=False):
        """Read one HTTP response.

        Raises NoResponse if the connection closes before any byte arrives,
        ResponseTimeout if nothing complete arrives in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n\r\n" not in self.buf:
                if self.eof:
                    if not self.buf:
                        raise NoResponse()
                    raise AssertionError(
                        f"connection closed inside response head: {self.buf!r}")
                self._recv_some(deadline)
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
            assert m, f"malformed status line: {lines[0]!r}"
            version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
            headers = []
            for line in lines[1:]:
                assert ":" in line, f"malformed header line: {line!r}"
                k, v = line.split(":", 1)
                assert k == k.strip() and k, f"bad header name: {line!r}"
                headers.append((k, v.strip(" \t")))
            if 100 <= status < 200 and status != 101:
                continue  # interim response; read the final one
            break

        resp = Response(status, reason, version, headers, b"", head)
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if head_request or status in (204, 304):
            body = b""
        elif "chunked" in te:
            body = b""
            while True:
                size_line = self._take_line(deadline)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self._take_line(deadline) != b"":
                        pass  # trailers
                    break
                body += self._take(size, deadline)
                assert self._take(2, deadline) == b"\r\n", "bad chunk terminator"
        elif cl is not None:
            assert re.fullmatch(r"\d+", cl), f"bad Content-Length in response: {cl!r}"
            body = self._take(int(cl), deadline)
        else:
            while not self.eof:
                self._recv_some(deadline)
            body, self.buf = self.buf, b""
        resp.body = body
        return resp

    def send_staged(self, parts, wait=0.3):
        """Send parts one by one; stop early if the server already answered
        (or closed), so that an early error response is not lost to a TCP
        reset caused by unread request bytes.  Returns the number of parts
        sent."""
        sent = 0
        for i, part in enumerate(parts):
            if self.readable(wait if i else 0.0):
                break
            if not self.send(part):
                break
            sent += 1
        return sent

    def read_until_close(self, timeout=5.0):
        """Return (bytes_received, closed) -- closed False on timeout."""
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                self._recv_some(deadline)
        except ResponseTimeout:
            data, self.buf = self.buf, b""
            return data, False
        data, self.buf = self.buf, b""
        return data, True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_request(method, path, host, headers=None, body=b"",
                  content_length=True, connection_close=True):
    """Build raw request bytes. headers: list of (name, value) or dict."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if isinstance(body, str):
        body = body.encode()
    if content_length and (body or method in ("POST", "PUT", "PATCH")) \
            and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    if connection_close and "connection" not in names:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_metrics(text):
    """Parse Prometheus text format into [(name, {labels}, value)]."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                 m.group(3) or ""))
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        out.append((m.group(1), labels, value))
    return out


def metric_value(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (or None)."""
    total, found = 0.0, False
    for n, ls, v in parse_metrics(text):
        if n == name and all(ls.get(k) == str(val) for k, val in labels.items()):
            total += v
            found = True
    return total if found else None


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------

class DebateServer:
    def __init__(self, workdir, env_overrides=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.ca_path = self.data_dir / "tls" / "ca.pem"
        self.env_overrides = dict(env_overrides or {})
        self.proc = None
        self.https_port = None
        self.http_port = None
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.exit_code = None
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------
    def start(self):
        binary = debate_bin()
        last_err = ""
        for _attempt in range(3):
            self.https_port, self.http_port = free_ports(2)
            env = clean_env({
                "DEBATE_DATA_DIR": str(self.data_dir),
                "DEBATE_LISTEN": "127.0.0.1",
                "DEBATE_HTTPS_PORT": self.https_port,
                "DEBATE_HTTP_PORT": self.http_port,
                "DEBATE_THREADS": 2,
            })
            env.update({k: str(v) for k, v in self.env_overrides.items()})
            self._out = open(self.stdout_path, "wb")
            self._err = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen([binary, "serve"], stdin=subprocess.DEVNULL,
                                         stdout=self._out, stderr=self._err,
                                         env=env, cwd=str(self.workdir))
            ok, why = self._wait_ready()
            if ok:
                return self
            last_err = why
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self._out.close()
            self._err.close()
            if "in use" not in self.stderr().lower():
                break  # not a port race: do not retry
        pytest.fail(f"debate did not become ready: {last_err}\n"
                    f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}",
                    pytrace=False)

    def _wait_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"process exited early with {self.proc.returncode}"
            if self.ca_path.exists():
                try:
                    r = self.get("/health", timeout=2.0)
                    if r.status == 200:
                        return True, ""
                    last = f"/health answered {r.status}"
                except Exception as exc:  # noqa: BLE001 - keep polling
                    last = f"{type(exc).__name__}: {exc}"
            else:
                last = f"{self.ca_path} not created yet"
            time.sleep(0.1)
        return False, f"timeout after {STARTUP_TIMEOUT}s ({last})"

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=SHUTDOWN_TIMEOUT):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self.exit_code = None
        return self.exit_code

    def stop(self):
        """SIGTERM, wait, return list of problems (empty when clean)."""
        if self._stopped:
            return []
        self._stopped = True
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(SHUTDOWN_TIMEOUT)
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass
        if rc is None:
            problems.append(f"server did not exit within {SHUTDOWN_TIMEOUT}s of SIGTERM")
        elif rc != 0:
            problems.append(f"server exited with code {rc} (expected 0)")
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in err:
                problems.append(f"stderr contains {marker!r}")
        if problems:
            problems.append("--- stderr tail ---\n" + err[-4000:])
        return problems

    def stdout(self):
        try:
            return self.stdout_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- connections --------------------------------------------------------
    @property
    def host(self):
        return f"localhost:{self.https_port}"

    def tls_context(self, **kw):
        return client_context(self.ca_path, **kw)

    def connect_tls(self, ctx=None, timeout=5.0, source_ip=None, alpn=None):
        if ctx is None:
            ctx = self.tls_context(alpn=alpn or ["http/1.1"])
        src = (source_ip, 0) if source_ip else None
        try:
            raw = socket.create_connection(("127.0.0.1", self.https_port),
                                           timeout=timeout, source_address=src)
        except ConnectionRefusedError:
            self._raise_if_dead()
            raise
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        return Conn(s)

    def connect_plain(self, port=None, timeout=5.0):
        try:
            s = socket.create_connection(("127.0.0.1", port or self.http_port),
                                         timeout=timeout)
        except ConnectionRefusedError:
            self._raise_if_dead()
            raise
        return Conn(s)

    def _raise_if_dead(self):
        """Turn 'connection refused' into a clear report when the server
        process died (crash, sanitizer abort) rather than misbehaved."""
        if self._stopped or self.proc is None:
            return
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError(
                f"debate server process is gone (exit code {rc}); "
                f"stderr tail:\n{self.stderr()[-3000:]}")

    def raw(self, data, timeout=10.0, plain=False, source_ip=None):
        """Send raw bytes on a fresh connection and read one response."""
        conn = self.connect_plain() if plain else self.connect_tls(source_ip=source_ip)
        with conn:
            conn.send(data)
            return conn.read_response(timeout=timeout)

    def request(self, method, path, headers=None, body=b"", host=None,
                timeout=10.0, plain=False, source_ip=None):
        host = self.host if host is None else host
        return self.raw(build_request(method, path, host, headers, body),
                        timeout=timeout, plain=plain, source_ip=source_ip)

    def get(self, path, headers=None, **kw):
        return self.request("GET", path, headers=headers, **kw)

    def csrf_token(self):
        """Fetch a fresh CSRF token; returns (token, set_cookie_value)."""
        r = self.get("/api/v1/csrf")
        assert r.status == 200, r
        token = r.json().get("token")
        assert isinstance(token, str) and token, r
        return token, r.header("Set-Cookie")

    def csrf_headers(self, token=None):
        if token is None:
            token, _ = self.csrf_token()
        return [("Cookie", f"__Host-debate_csrf={token}"),
                ("X-CSRF-Token", token)]


def kill9(srv):
    """SIGKILL a DebateServer (a crash, as far as it can tell) and take it
    out of the clean-exit check at teardown."""
    srv.proc.kill()
    srv.proc.wait(10)
    srv._stopped = True
    for f in (srv._out, srv._err):
        f.close()


def _finish(servers, request=None):
    problems = []
    for srv in servers:
        for p in srv.stop():
            problems.append(f"[{srv.workdir.name}] {p}")
    if not problems:
        return
    text = "server teardown problems:\n" + "\n".join(problems)
    if request is not None and (request.session.shouldstop or request.session.shouldfail):
        # The session is already aborting (-x): pytest would turn a failure
        # raised now into an internal error, so report on stderr instead.
        sys.__stderr__.write("\n" + text + "\n")
        return
    pytest.fail(text, pytrace=False)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

SHARED_ENV = {
    "DEBATE_RATE_LIMIT": 100000,     # the shared server must never 429
    "DEBATE_RATE_WINDOW": 60,
    "DEBATE_MAX_BODY_BYTES": SHARED_MAX_BODY,
    "DEBATE_CORS_ORIGINS": SHARED_CORS_ORIGIN,
}


def _own_tmpdir(prefix):
    # Not pytest's tmp_path: its numbered base directories are pruned by
    # other pytest sessions running concurrently, which would delete the
    # server's log files under our feet.
    # Searchable by others (0711): as root, debate's embedded PostgreSQL runs
    # as the postgres user, which must reach DATA_DIR/pg through this path.
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o711)
    return d


def module_server(request, prefix, env, prepare=None):
    """A generator for a module's server fixture: a DebateServer in a work directory of
    its own, prepare(srv) run before it starts, stopped and checked (_finish) and its
    directory removed after the module's tests."""
    workdir = _own_tmpdir(prefix)
    srv = DebateServer(workdir, env)
    if prepare is not None:
        prepare(srv)
    srv.start()
    yield srv
    try:
        _finish([srv], request)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def server(request):
    """One server shared by the tests of a module (big rate limit)."""
    yield from module_server(request, "debate-shared-", SHARED_ENV)


@pytest.fixture
def debate_factory():
    """Start fresh servers: debate_factory(**env) -> DebateServer.

    All servers started are SIGTERMed at teardown; the test errors if one
    does not exit 0 within 15 s or printed sanitizer reports.
    """
    workdir = _own_tmpdir("debate-fresh-")
    started = []

    def make(**env):
        srv = DebateServer(workdir / f"srv{len(started)}", env)
        started.append(srv)
        return srv.start()

    yield make
    try:
        _finish(started)        # failure messages carry the stderr tail
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_csrf(server):
    """A valid CSRF token for the shared server."""
    token, _ = server.csrf_token()
    return token


@pytest.fixture
def scratch_dir():
    with tempfile.TemporaryDirectory(prefix="debate-check-") as d:
        yield Path(d)


# --------------------------------------------------------------------------
# PostgreSQL clusters for the database tests (tests/integration/test_db.py)
# --------------------------------------------------------------------------

def pg_bindir():
    """PostgreSQL server binaries: DEBATE_TEST_PG_BINDIR, else the newest
    /usr/lib/postgresql/N/bin with a pg_ctl."""
    env = os.environ.get("DEBATE_TEST_PG_BINDIR")
    if env:
        return Path(env)
    best = None
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for d in root.iterdir():
            if d.name.isdigit() and (d / "bin" / "pg_ctl").exists():
                if best is None or int(d.name) > int(best.name):
                    best = d
    if best is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql "
                    "(apt-get install postgresql-15)")
    return best / "bin"


PG_OS_USER = "postgres"   # PostgreSQL refuses to run as root


def as_pg_user(argv):
    """argv run as the postgres OS user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_OS_USER, "--"] + [str(a) for a in argv]
    return [str(a) for a in argv]


def _chown_pg(path):
    if os.geteuid() == 0:
        shutil.chown(str(path), PG_OS_USER, PG_OS_USER)


def postgres_pids(path_fragment):
    """Pids of live `postgres` postmasters whose command line mentions
    path_fragment (the postmaster runs as `postgres -D DATADIR ...`)."""
    frag = str(path_fragment).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", "rb") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if comm in (b"postgres", b"postmaster") and frag in cmdline and state != b"Z":
            pids.append(int(entry))
    return pids


def reap_postgres(path_fragment, timeout=10.0):
    """Stop (SIGQUIT, then SIGKILL) every postmaster under path_fragment.
    Returns the pids found. Used at teardown so no test leaks a cluster."""
    found = postgres_pids(path_fragment)
    for pid in found:
        try:
            os.kill(pid, signal.SIGQUIT)   # immediate shutdown
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while postgres_pids(path_fragment) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in postgres_pids(path_fragment):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def run_psql(conninfo, sql, timeout=30.0, check=True):
    """Runs SQL with psql (unaligned, tuples only); returns stdout stripped.
    With check, a failure raises AssertionError carrying psql's message."""
    p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-d", conninfo, "-c", sql],
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"psql failed ({p.returncode}) for {sql!r}: "
                             f"{p.stderr.strip()}")
    return p.stdout.strip() if p.returncode == 0 else None


class PsqlSession:
    """A psql process kept open, fed SQL on stdin: holds a transaction (and
    its locks) across test steps. close() ends it (rolling back)."""

    def __init__(self, conninfo):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)

    def send(self, sql):
        self.proc.stdin.write(sql.rstrip() + "\n")
        self.proc.stdin.flush()

    def close(self, timeout=10.0):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()    # EOF: psql exits, the transaction is rolled back
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        out = self.proc.stdout.read() if self.proc.stdout else ""
        if self.proc.stdout:
            self.proc.stdout.close()
        return out


class PgCluster:
    """An independent PostgreSQL cluster in a temp dir (0711): unix socket
    only (listen_addresses=''), trust authentication, superuser "debate",
    database "debate". Runs as the postgres OS user when we are root."""

    def __init__(self, root, max_connections=100):
        self.root = Path(root)
        self.datadir = self.root / "data"
        self.sockdir = self.root / "run"
        self.logdir = self.root / "log"
        self.logfile = self.logdir / "postgres.log"
        self.max_connections = max_connections
        self.bindir = pg_bindir()
        self.url = f"host={self.sockdir} dbname=debate user=debate"

    def url_for(self, dbname):
        return f"host={self.sockdir} dbname={dbname} user=debate"

    def _run(self, argv, timeout=120.0, check=True):
        p = subprocess.run(as_pg_user(argv), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} failed ({p.returncode}):\n"
                                 f"{p.stdout}{p.stderr}\n{self.log_tail()}")
        return p

    def init(self):
        for d in (self.datadir, self.sockdir, self.logdir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            _chown_pg(d)
        self.sockdir.chmod(0o755)
        self._run([self.bindir / "initdb", "-D", self.datadir, "-U", "debate",
                   "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
                   "--no-instructions"])
        self.start()
        self.psql("CREATE DATABASE debate", dbname="postgres")
        return self

    def start(self, timeout=60):
        opts = (f"-c listen_addresses='' -c unix_socket_directories='{self.sockdir}' "
                f"-c max_connections={self.max_connections} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off")
        self._run([self.bindir / "pg_ctl", "start", "-D", self.datadir, "-l", self.logfile,
                   "-w", "-t", str(timeout), "-o", opts], timeout=timeout + 30)

    def stop(self, mode="fast", timeout=60):
        self._run([self.bindir / "pg_ctl", "stop", "-D", self.datadir, "-m", mode,
                   "-w", "-t", str(timeout)], timeout=timeout + 30)

    def running(self):
        return self._run([self.bindir / "pg_ctl", "status", "-D", self.datadir],
                         check=False).returncode == 0

    def psql(self, sql, dbname="debate", timeout=30.0, check=True):
        return run_psql(self.url_for(dbname), sql, timeout=timeout, check=check)

    def session(self, dbname="debate"):
        return PsqlSession(self.url_for(dbname))

    def wait_for(self, sql, timeout=10.0, what=None):
        """Polls until `sql` returns 't'."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.psql(sql, check=False)
            if last == "t":
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for "
                             f"{what or sql!r} (last result {last!r})")

    def log_tail(self, n=4000):
        try:
            return "--- postgres log tail ---\n" + self.logfile.read_text("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def destroy(self):
        if self.datadir.exists() and (self.datadir / "postmaster.pid").exists():
            try:
                self.stop(mode="immediate", timeout=20)
            except Exception:  # noqa: BLE001 - reaped below
                pass
        reap_postgres(self.datadir)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pg_cluster():
    """A fresh, running PostgreSQL cluster of its own: .url (libpq conninfo),
    .stop(), .start(), .psql(sql), .session(); destroyed at teardown."""
    cluster = PgCluster(_own_tmpdir("debate-pg-"))
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.destroy()
