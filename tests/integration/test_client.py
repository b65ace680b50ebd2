"""The client commands (docs/client.md): submit, status, logs, list, cancel,
download, as a user runs them, with what they print and their exit status.

Two kinds of server:

* small fake servers in this process (plain http on loopback), for what a
  real server will not do on demand: a stream that drops and must be
  resumed with Last-Event-ID, a download cut in the middle, an ISO that is
  not the one of its record, endless heads and bodies;
* the real `debate serve` with its embedded PostgreSQL and a build worker
  (as test_service.py starts them, sharing its package cache; root only),
  for examples/tiny.json submitted, followed, downloaded, found in the
  cache, listed, logged, cancelled, and TLS with the right and a wrong CA.
"""

import atexit
import fcntl
import hashlib
import http.server
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_MARKERS, clean_env, debate_bin, free_ports
from test_service import (BUILD_TIMEOUT, FIRST_BUILD_TIMEOUT, TINY, Api, Service, cache_dir,  # noqa: F401
                          tails, tiny_with_hook)

COMMANDS = ("submit", "status", "logs", "list", "cancel", "download")
BUILD_ID = "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# A data directory without a CA in it: the client then trusts the system's CAs.
EMPTY_DATA_DIR = tempfile.mkdtemp(prefix="debate-client-data-")
atexit.register(shutil.rmtree, EMPTY_DATA_DIR, True)


def run(*args, env=None, cwd=None, timeout=120, input=""):
    """Runs `debate ARGS` with a clean environment (an empty data directory
    unless env names one) and input on its standard input; fails on a
    sanitizer report."""
    base = {"DEBATE_DATA_DIR": EMPTY_DATA_DIR}
    base.update(env or {})
    p = subprocess.run([debate_bin(), *args], capture_output=True, text=True, env=clean_env(base), cwd=cwd,
                       timeout=timeout, input=input)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, f"debate {' '.join(args)}: sanitizer report:\n{p.stderr[-4000:]}"
    return p


def build_object(status="succeeded", **extra):
    b = {"id": BUILD_ID, "status": status, "stage": "done", "progress": 100, "error": None,
         "iso_sha256": None, "iso_size": None, "iso_url": None, "manifest_url": None,
         "finished_at": "2026-11-30T03:00:00Z"}
    b.update(extra)
    return b


# --------------------------------------------------------------------------
# fake servers
# --------------------------------------------------------------------------

class Fake:
    """A plain-http server on loopback whose answers the test writes: handler(req) is called with the
    BaseHTTPRequestHandler of each request, its body read into req.body; requests are recorded as
    (method, path, headers)."""

    def __init__(self, handler, host="127.0.0.1", tls=None):
        self.requests = []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                fake.requests.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length)      # read, so that the next request on the connection parses
                try:
                    handler(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET

        self.httpd = http.server.ThreadingHTTPServer((host, 0), H)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    made = []

    def make(handler, **kw):
        f = Fake(handler, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def send_json(h, status, doc, headers=()):
    body = json.dumps(doc).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers:
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def sse_head(h):
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Connection", "close")
    h.end_headers()


def sse(h, event, data, eid=None):
    text = (f"id: {eid}\n" if eid is not None else "") + f"event: {event}\ndata: {data}\n\n"
    h.wfile.write(text.encode())
    h.wfile.flush()


# --------------------------------------------------------------------------
# usage, arguments, unreachable servers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_of_every_client_command(cmd):
    p = run(cmd, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"usage: debate {cmd} "), p.stdout
    for opt in ("--server URL", "--cacert FILE", "--help"):
        assert opt in p.stdout, (opt, p.stdout)
    assert "exit status: 0 done; 1 the build failed; 2 a usage error" in p.stdout, p.stdout
    # And in the list of commands.
    h = run("help")
    assert re.search(rf"^  {cmd} +\S", h.stdout, re.M), h.stdout


@pytest.mark.parametrize("args,problem", [
    (("submit",), "the recipe is missing"),
    (("status",), "the build id is missing"),
    (("status", BUILD_ID, "extra"), 'unexpected argument "extra"'),
    (("cancel", BUILD_ID), "--token is required"),
    (("download", BUILD_ID), "-o FILE is required"),
    (("list", "--limit", "0"), '--limit wants a whole number from 1 to 10000 (got "0")'),
    (("logs", "--bogus", BUILD_ID), "unrecognized option '--bogus'"),
])
def test_usage_errors_exit_2_naming_the_problem(args, problem):
    p = run(*args)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert p.stderr.startswith(f"debate {args[0]}: {problem}\n"), p.stderr
    assert f"usage: debate {args[0]} " in p.stderr, p.stderr


def test_a_malformed_build_id_is_refused_before_any_request(fake):
    srv = fake(lambda h: send_json(h, 200, build_object()))
    p = run("status", "../../csrf", "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == 'debate status: "../../csrf" is not a build id (a UUID, as debate submit prints it)\n'
    assert srv.requests == []


TOKEN = "Tok3n_-" + "a" * 36        # the shape of a cancel token: 43 characters of base64url


def csrf_then(answer):
    """A fake API: the CSRF token for GET /api/v1/csrf, answer(h) for the rest."""
    def handler(h):
        if h.path == "/api/v1/csrf":
            return send_json(h, 200, {"token": "csrf-token"})
        return answer(h)
    return handler


@pytest.mark.parametrize("token", ["\udcff" * 43, "a" * 42, "a" * 44, "a" * 42 + "=", "t"])
def test_a_token_that_cannot_be_a_cancel_token_is_refused_before_any_request(fake, token):
    srv = fake(csrf_then(lambda h: send_json(h, 200, {"build": build_object(status="cancelled")})))
    p = subprocess.run([debate_bin(), "cancel", BUILD_ID, "--token", token.encode("utf-8", "surrogateescape"),
                        "--server", srv.url], capture_output=True, text=True, timeout=60,
                       env=clean_env({"DEBATE_DATA_DIR": EMPTY_DATA_DIR}))
    assert p.returncode == 2, p.stderr
    assert p.stderr == "debate cancel: the cancel token must be the 43 characters of A-Z, a-z, 0-9, - and _ " \
                       "that debate submit printed\n", p.stderr
    assert srv.requests == []


def test_cancel_reads_the_token_from_standard_input(fake):
    def answer(h):
        assert json.loads(h.body) == {"cancel_token": TOKEN}
        send_json(h, 200, {"build": build_object(status="cancelled")})

    srv = fake(csrf_then(answer))
    p = run("cancel", BUILD_ID, "--token", "-", "--server", srv.url, input=TOKEN + "\n")
    assert p.returncode == 0, p.stderr
    assert p.stderr == f"debate cancel: build {BUILD_ID}: cancelled\n"
    assert [r[:2] for r in srv.requests] == [("GET", "/api/v1/csrf"), ("POST", f"/api/v1/builds/{BUILD_ID}/cancel")]
    p = run("cancel", BUILD_ID, "--token", "-", "--server", srv.url, input="")
    assert p.returncode == 2 and p.stderr == "debate cancel: --token -: no token on standard input\n", p.stderr


def test_an_unreachable_server_exits_3_naming_the_url():
    port = free_ports(1)[0]
    p = run("status", BUILD_ID, "--server", f"https://127.0.0.1:{port}")
    assert p.returncode == 3, p.stderr
    assert p.stderr.startswith(f'debate status: cannot reach "https://127.0.0.1:{port}/api/v1/builds/{BUILD_ID}": '), \
        p.stderr
    assert "onnect" in p.stderr, p.stderr     # curl's reason: "Couldn't connect to server"


def test_a_server_that_is_no_url_is_a_usage_error():
    p = run("list", "--server", "localhost:8443")
    assert p.returncode == 2, p.stderr
    assert p.stderr == 'debate list: "localhost:8443" is not an http or https URL (such as https://localhost:8443)\n'


def test_debate_server_in_the_environment_is_the_default_server(fake):
    srv = fake(lambda h: send_json(h, 200, build_object()))
    p = run("status", BUILD_ID, "--json", env={"DEBATE_SERVER": srv.url})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["id"] == BUILD_ID
    assert srv.requests[0][:2] == ("GET", f"/api/v1/builds/{BUILD_ID}")
    # --server wins over the variable.
    other = fake(lambda h: send_json(h, 200, build_object(status="failed")))
    p = run("status", BUILD_ID, "--server", other.url, env={"DEBATE_SERVER": srv.url})
    assert p.returncode == 0 and "status    failed\n" in p.stdout, (p.stdout, p.stderr)


def test_a_misspelt_debate_server_is_refused():
    p = run("list", env={"DEBATE_SERVR": "https://localhost:8443"})
    assert p.returncode == 2, p.stderr
    assert 'unknown setting "DEBATE_SERVR" (did you mean "DEBATE_SERVER"?)' in p.stderr, p.stderr


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    """A CA of the test's own and a certificate it signed for 127.0.0.1, 127.0.0.2 and localhost."""
    d = tmp_path_factory.mktemp("ca")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=test CA",
            "-days", "1", "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=fake",
            "-keyout", "key.pem", "-out", "req.pem")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n")
    openssl("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
            "-extfile", "ext", "-out", "cert.pem")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return type("CA", (), {"pem": d / "ca.pem", "context": ctx})


@pytest.mark.parametrize("host,named,code", [("127.0.0.2", False, 3), ("127.0.0.2", True, 0),
                                             ("127.0.0.1", False, 0)])
def test_the_data_dir_ca_vouches_only_for_this_machine_or_a_named_data_dir(fake, test_ca, tmp_path, host, named,
                                                                           code):
    """A data/tls/ca.pem that lies in the working directory is trusted for a server on this machine; for
    another server only when the data directory was named ($DEBATE_DATA_DIR)."""
    srv = fake(lambda h: send_json(h, 200, build_object()), host=host, tls=test_ca.context)
    (tmp_path / "data" / "tls").mkdir(parents=True)
    shutil.copy(test_ca.pem, tmp_path / "data" / "tls" / "ca.pem")
    env = clean_env({"DEBATE_DATA_DIR": tmp_path / "data"} if named else {})
    p = subprocess.run([debate_bin(), "status", BUILD_ID, "--server", srv.url], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == code, p.stderr
    if code == 3:
        assert p.stderr.startswith(f'debate status: TLS with "{srv.url}/api/v1/builds/{BUILD_ID}" failed: '), \
            p.stderr
        assert srv.requests == []
    else:
        assert "status    succeeded\n" in p.stdout, p.stdout


# --------------------------------------------------------------------------
# the server's errors and hostile answers
# --------------------------------------------------------------------------

def test_the_servers_json_error_is_printed_with_its_code(fake):
    err = {"error": {"code": "not_found", "message": "no build with this id"}}
    srv = fake(lambda h: send_json(h, 404, err))
    p = run("status", BUILD_ID, "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "debate status: no build with this id (not_found)\n"


def test_a_5xx_exits_3(fake):
    err = {"error": {"code": "db_unavailable", "message": "the database is unavailable"}}
    srv = fake(lambda h: send_json(h, 503, err, [("Retry-After", "30")]))
    p = run("list", "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert p.stderr == "debate list: the database is unavailable (db_unavailable)\n"


def test_429_with_a_short_retry_after_is_retried(fake):
    answers = [(429, {"error": {"code": "rate_limited", "message": "slow down"}})] * 2 + \
              [(200, {"builds": [build_object()], "next": None})]

    def handler(h):
        status, doc = answers.pop(0)
        send_json(h, status, doc, [("Retry-After", "1")])

    srv = fake(handler)
    p = run("list", "--json", "--server", srv.url)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["builds"][0]["id"] == BUILD_ID
    assert len(srv.requests) == 3


def test_the_field_the_server_blamed_is_printed_after_the_code(fake):
    err = {"error": {"code": "invalid_lock", "message": "no such package in the lock", "field": "lock.packages"}}
    srv = fake(csrf_then(lambda h: send_json(h, 400, err)))
    p = run("submit", str(TINY), "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "debate submit: no such package in the lock (invalid_lock, field lock.packages)\n", p.stderr


@pytest.mark.parametrize("answer", [{"build": {"status": "queued"}, "cache": "miss"},
                                    {"build": {"id": "../../x", "status": "queued"}},
                                    {"cache": "miss"}])
def test_an_answer_that_names_no_build_exits_3(fake, answer):
    srv = fake(csrf_then(lambda h: send_json(h, 201, answer)))
    p = run("submit", str(TINY), "--wait", "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert p.stderr == "debate submit: the server's answer names no build\n", p.stderr
    assert p.stdout == ""
    assert [r[0] for r in srv.requests] == ["GET", "POST"], srv.requests


def test_a_redirect_names_where_it_points(fake):
    def handler(h):
        h.send_response(308)
        h.send_header("Location", "https://builds.example/api/v1/builds")
        h.send_header("Content-Length", "0")
        h.end_headers()

    srv = fake(handler)
    p = run("list", "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert p.stderr == f'debate list: "{srv.url}/api/v1/builds?limit=20" answered 308, a redirect to ' \
                       '"https://builds.example/api/v1/builds", which the client does not follow; if that is the ' \
                       "server, name it with --server (no error code)\n", p.stderr
    assert len(srv.requests) == 1


def test_an_error_body_over_64_kib_is_read_for_its_status_and_retried(fake):
    answers = [503, 200]

    def handler(h):
        status = answers.pop(0)
        if status == 200:
            return send_json(h, 200, {"builds": [build_object()], "next": None})
        body = json.dumps({"error": {"code": "busy", "message": "x" * 100000}}).encode()
        h.send_response(503)
        h.send_header("Retry-After", "1")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    srv = fake(handler)
    p = run("list", "--json", "--server", srv.url)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["builds"][0]["id"] == BUILD_ID
    assert len(srv.requests) == 2


def test_an_endless_head_is_cut_off(fake):
    def handler(h):
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(100000):
            h.wfile.write(f"X-Filler-{i}: {'a' * 100}\r\n".encode())

    srv = fake(handler)
    p = run("status", BUILD_ID, "--server", srv.url, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "has a head over 65536 bytes" in p.stderr, p.stderr


def test_an_endless_body_is_cut_off(fake):
    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        chunk = b"[" * 65536
        for _ in range(1000):              # 64 MiB, far past the 8 MiB a JSON answer may have
            h.wfile.write(chunk)

    srv = fake(handler)
    p = run("status", BUILD_ID, "--server", srv.url, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "is over 8388608 bytes" in p.stderr, p.stderr


def test_an_endless_event_is_cut_off(fake):
    def handler(h):
        sse_head(h)
        h.wfile.write(b"data: ")
        for _ in range(100):
            h.wfile.write(b"x" * 65536)

    srv = fake(handler)
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "has a line over 1048576 bytes" in p.stderr, p.stderr


def test_an_unknown_build_on_the_stream_is_not_found(fake):
    def handler(h):
        sse_head(h)
        sse(h, "end", json.dumps({"error": {"code": "not_found", "message": "no build with this id"}}))

    srv = fake(handler)
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "debate logs: no build with this id (not_found)\n"


def test_an_end_event_that_is_no_build_exits_3(fake):
    def handler(h):
        sse_head(h)
        sse(h, "end", "{\"what\": 1}")

    srv = fake(handler)
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert p.stderr == f'debate logs: the end event of "{srv.url}/api/v1/builds/{BUILD_ID}/log" is neither a build ' \
                       "nor an error\n"
    assert len(srv.requests) == 1


# --------------------------------------------------------------------------
# the event stream: drops, Last-Event-ID, the build's end as the exit status
# --------------------------------------------------------------------------

def stream_that_drops(final):
    """First connection: two events, then the server goes away (no end). Second: what follows event 2."""
    def handler(h):
        sse_head(h)
        if h.headers.get("Last-Event-ID") is None:
            sse(h, "log", "I: one", 1)
            sse(h, "progress", json.dumps({"stage": "rootfs", "progress": 16, "message": "installing"}), 2)
            h.wfile.write(b": the server is stopping; reconnect with Last-Event-ID\n\n")
            return
        if h.headers["Last-Event-ID"] != "2":
            return          # the test sees the wrong id among the requests
        sse(h, "log", "I: three", 3)
        sse(h, "end", json.dumps(final))
    return handler


@pytest.mark.parametrize("status,code", [("succeeded", 0), ("failed", 1), ("cancelled", 4)])
def test_logs_follow_resumes_after_a_drop_and_exits_as_the_build_ended(fake, status, code):
    error = None if status == "succeeded" else {"code": "hook_failed" if status == "failed" else "cancelled",
                                                "message": "hook \"10-x\" failed with exit code 3"}
    srv = fake(stream_that_drops(build_object(status=status, error=error)))
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url)
    assert p.returncode == code, p.stderr
    assert p.stdout == "I: one\n[rootfs 16%] installing\nI: three\n", p.stdout
    resumes = [r[2].get("Last-Event-ID") for r in srv.requests]
    assert resumes == [None, "2"], resumes
    assert all(r[2].get("Accept") == "text/event-stream" for r in srv.requests)
    if status == "failed":
        assert p.stderr == f'debate logs: build {BUILD_ID} failed: hook "10-x" failed with exit code 3 (hook_failed)\n'
    if status == "cancelled":
        assert p.stderr == f"debate logs: build {BUILD_ID} was cancelled\n"


def test_a_drop_in_the_middle_of_an_event_loses_nothing(fake):
    """The stream breaks after event 2's id and data but before its blank line: the event is incomplete, so the
    client resumes from event 1 and is sent event 2 again."""
    def handler(h):
        sse_head(h)
        last = h.headers.get("Last-Event-ID")
        if last is None:
            sse(h, "log", "I: one", 1)
            h.wfile.write(b"id: 2\nevent: log\ndata: two\n")
            h.wfile.flush()
            return
        if last != "1":
            return
        sse(h, "log", "I: two", 2)
        sse(h, "end", json.dumps(build_object()))

    srv = fake(handler)
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "I: one\nI: two\n", p.stdout
    assert [r[2].get("Last-Event-ID") for r in srv.requests] == [None, "1"]


def test_a_stream_that_never_opened_is_not_retried(fake):
    err = {"error": {"code": "unavailable", "message": "the server is stopping"}}
    srv = fake(lambda h: send_json(h, 503, err))
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert p.stderr == "debate logs: the server is stopping (unavailable)\n", p.stderr
    assert len(srv.requests) == 1
    port = free_ports(1)[0]
    p = run("logs", BUILD_ID, "--follow", "--server", f"http://127.0.0.1:{port}")
    assert p.returncode == 3, p.stderr
    assert p.stderr.startswith(f'debate logs: cannot reach "http://127.0.0.1:{port}/api/v1/builds/{BUILD_ID}/log": '), \
        p.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_a_follow_that_reconnects_exits_128_plus_the_signal(fake, sig, code):
    srv = fake(lambda h: (sse_head(h), sse(h, "log", "I: one", 1)))
    port = srv.url.rsplit(":", 1)[1]
    # Give the client a little while to reconnect, then take the server away for good.
    proc = subprocess.Popen([debate_bin(), "logs", BUILD_ID, "--follow", "--server", srv.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env({"DEBATE_DATA_DIR": EMPTY_DATA_DIR}))
    deadline = time.monotonic() + 10
    while len(srv.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.close()
    proc.send_signal(sig)         # it stops waiting at once
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert err.endswith("debate logs: interrupted\n"), err
    assert out.startswith("I: one\n"), out
    assert len(srv.requests) >= 2, f"no reconnection to port {port}"


def proc_state(pid, key):
    """A line of /proc/PID/status ("SigCgt"), or of /proc/PID/wchan when key is "wchan"; "" once it has gone."""
    try:
        if key == "wchan":
            return Path(f"/proc/{pid}/wchan").read_text()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split()[1]
    except OSError:
        pass
    return ""


def wait_for(what, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while not what() and time.monotonic() < deadline:
        time.sleep(0.02)
    return what()


def test_ctrl_c_while_the_log_waits_for_its_reader_exits_130(fake):
    """The log goes to a pipe nobody reads: the write blocks, and SIGINT breaks it off. That is an interruption
    (130), not a file that cannot be written (3)."""
    body = b"I: a line of the log\n" * 200000

    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    srv = fake(handler)
    # A pipe full to the last byte: the command's first write blocks before it has written anything.
    rd, wr = os.pipe()
    os.set_blocking(wr, False)
    for chunk in (4096, 1):
        try:
            while True:
                os.write(wr, b"x" * chunk)
        except BlockingIOError:
            pass
    os.set_blocking(wr, True)
    proc = subprocess.Popen([debate_bin(), "logs", BUILD_ID, "--server", srv.url], stdout=wr,
                            stderr=subprocess.PIPE, env=clean_env({"DEBATE_DATA_DIR": EMPTY_DATA_DIR}))
    os.close(wr)
    try:
        assert wait_for(lambda: "pipe" in proc_state(proc.pid, "wchan")), "the write never blocked"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(rd)
    assert proc.returncode == 130, err
    assert err == b"debate logs: interrupted\n", err


def test_a_second_ctrl_c_stops_a_step_that_does_not_look(fake, tmp_path):
    """Hashing a part of many GiB does not look at the flag the first Ctrl-C sets; the second kills the command."""
    size = 16 << 30
    record = build_object(iso_sha256=ISO_SHA, iso_size=size, iso_url=f"/api/v1/builds/{BUILD_ID}/iso",
                          manifest_url=f"/api/v1/builds/{BUILD_ID}/manifest")
    srv = fake(lambda h: send_json(h, 200, record) if h.path.endswith(BUILD_ID) else send_json(h, 404, {}))
    part = tmp_path / "x.iso.part"
    with open(part, "wb") as f:
        f.truncate(size)           # sparse: all there, nothing on disk, all to hash
    proc = subprocess.Popen([debate_bin(), "download", BUILD_ID, "-o", str(tmp_path / "x.iso"), "--server", srv.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env({"DEBATE_DATA_DIR": EMPTY_DATA_DIR}))
    sigint = 1 << (signal.SIGINT - 1)

    def hashing():
        try:
            return any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(part) for fd in os.listdir(f"/proc/{proc.pid}/fd"))
        except OSError:
            return False

    try:
        assert wait_for(hashing), "the part was never opened"
        proc.send_signal(signal.SIGINT)
        # The first has been handled once the handler is no longer installed (SA_RESETHAND).
        wait_for(lambda: not int(proc_state(proc.pid, "SigCgt") or "0", 16) & sigint, 5)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGINT, proc.returncode


# --------------------------------------------------------------------------
# on a terminal: printable server text, a bar that fits
# --------------------------------------------------------------------------

ESC = "\x1b]0;owned\x07\x1b[2J"       # retitles the window, clears the screen


def run_on_terminal(*args, columns=80, on="stderr"):
    """Runs `debate ARGS` with standard error (or standard output) on a pseudo-terminal `columns` wide; returns
    (returncode, what the terminal got, what the other stream got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, on: slave}
    proc = subprocess.Popen([debate_bin(), *args], env=clean_env({"DEBATE_DATA_DIR": EMPTY_DATA_DIR}),
                            stdin=subprocess.DEVNULL, **streams)
    os.close(slave)
    other = proc.stdout if on == "stderr" else proc.stderr
    got, rest = b"", b""
    while True:
        ready, _, _ = select.select([master, other], [], [], 60)
        assert ready, "debate wrote nothing for 60 s"
        if master in ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:      # EIO: the last writer has gone
                chunk = b""
            got += chunk
            if not chunk:
                break
        if other in ready:
            rest += other.read1(65536)
    rest += other.read()
    proc.wait(timeout=60)
    os.close(master)
    for marker in SANITIZER_MARKERS:
        assert marker.encode() not in got + rest, (got + rest).decode(errors="replace")
    return proc.returncode, got.decode("utf-8"), rest.decode("utf-8")    # strict: a cut inside a character fails


def test_server_text_reaches_a_terminal_printable(fake):
    err = {"error": {"code": "not_found", "message": f"no build {ESC}here"}}
    srv = fake(lambda h: send_json(h, 404, err))
    code, tty, _ = run_on_terminal("status", BUILD_ID, "--server", srv.url)
    assert code == 2, tty
    assert tty == "debate status: no build ?]0;owned??[2Jhere (not_found)\r\n", repr(tty)


def test_log_lines_reach_a_terminal_printable_and_a_pipe_as_they_are(fake):
    def handler(h):
        if h.headers.get("Accept") == "text/plain":
            body = f"I: plain {ESC}\ttab\n".encode()
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            return h.wfile.write(body)
        sse_head(h)
        sse(h, "log", f"I: {ESC}\ttab", 1)
        sse(h, "progress", json.dumps({"stage": "rootfs", "progress": 16, "message": f"m{ESC}"}), 2)
        sse(h, "end", json.dumps(build_object()))

    srv = fake(handler)
    code, tty, _ = run_on_terminal("logs", BUILD_ID, "--follow", "--server", srv.url, on="stdout")
    assert code == 0, tty
    assert tty == "I: ?]0;owned??[2J\ttab\r\n[rootfs 16%] m?]0;owned??[2J\r\n", repr(tty)
    code, tty, _ = run_on_terminal("logs", BUILD_ID, "--server", srv.url, on="stdout")
    assert code == 0, tty
    assert tty == "I: plain ?]0;owned??[2J\ttab\r\n", repr(tty)
    p = run("logs", BUILD_ID, "--follow", "--server", srv.url)
    assert p.returncode == 0 and p.stdout.startswith(f"I: {ESC}\ttab\n"), repr(p.stdout)
    p = run("logs", BUILD_ID, "--server", srv.url)
    assert p.returncode == 0 and p.stdout == f"I: plain {ESC}\ttab\n", repr(p.stdout)


def test_the_bar_fits_a_narrow_terminal_and_cuts_between_characters(fake):
    stages = [("rootfs", 16), ("rootfs", 40), ("squashfs", 72), ("done", 100)]

    def handler(h):
        if h.path == "/api/v1/csrf":
            return send_json(h, 200, {"token": "csrf-token"})
        if h.command == "POST":
            return send_json(h, 201, {"build": build_object(status="queued"), "cache": "miss"})
        sse_head(h)
        for i, (stage, pct) in enumerate(stages):
            message = ESC + "é" * 30 + "ü" * 30
            sse(h, "progress", json.dumps({"stage": stage, "progress": pct, "message": message}), i + 1)
        sse(h, "end", json.dumps(build_object()))

    srv = fake(handler)
    for columns in (40, 80):
        code, tty, out = run_on_terminal("submit", str(TINY), "--wait", "--server", srv.url, columns=columns)
        assert code == 0, tty
        assert out == f"{BUILD_ID}\n"
        drawn = [seg for line in tty.split("\r\n") for seg in line.split("\r\x1b[K")[1:]]
        assert len(drawn) == len(stages), repr(tty)
        for seg in drawn:
            assert len(seg) <= columns - 1, (columns, seg)
            assert "\x1b" not in seg, repr(seg)
        # Each stage keeps its line: the first rootfs line is redrawn on the same line, the others start anew.
        assert len([line for line in tty.split("\r\n") if "\x1b[K" in line]) == 3, repr(tty)
        assert drawn[-1].startswith("[") and "100% done" in drawn[-1], drawn[-1]


# --------------------------------------------------------------------------
# downloads against a fake server: resumed, checked, atomic
# --------------------------------------------------------------------------

ISO = bytes((i * 7 + i // 251) % 256 for i in range(3 * 1024 * 1024 + 17))
ISO_SHA = hashlib.sha256(ISO).hexdigest()
MANIFEST = {"iso_sha256": ISO_SHA, "iso_size": len(ISO), "config_hash": "0" * 64}


def iso_server(iso=ISO, cut_first=False, etag=ISO_SHA, iso_error=None):
    """Serves a succeeded build whose ISO is iso (the record always says ISO) with etag as its ETag; the first
    ISO transfer stops after a third when cut_first; iso_error (status, code) answers the ISO's GET."""
    state = {"cut": cut_first}

    def handler(h):
        path = h.path
        if path.endswith("/iso") and iso_error is not None:
            return send_json(h, iso_error[0], {"error": {"code": iso_error[1], "message": "no ISO here"}})
        if path == f"/api/v1/builds/{BUILD_ID}":
            return send_json(h, 200, build_object(iso_sha256=ISO_SHA, iso_size=len(ISO),
                                                  iso_url=f"/api/v1/builds/{BUILD_ID}/iso",
                                                  manifest_url=f"/api/v1/builds/{BUILD_ID}/manifest"))
        if path.endswith("/manifest"):
            return send_json(h, 200, MANIFEST)
        rng = h.headers.get("Range")
        start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
        h.send_response(206 if rng else 200)
        h.send_header("ETag", f'"{etag}"')
        h.send_header("Content-Length", str(len(iso) - start))
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{len(iso) - 1}/{len(iso)}")
        h.end_headers()
        if state["cut"]:
            state["cut"] = False
            h.wfile.write(iso[start:len(iso) // 3])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(iso[start:])
    return handler


def test_download_resumes_after_a_drop_and_checks_the_iso(fake, tmp_path):
    srv = fake(iso_server(cut_first=True))
    out = tmp_path / "x.iso"
    p = run("download", BUILD_ID, "-o", str(out), "--server", srv.url)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{ISO_SHA}  {out}\n"
    assert f'resumed the download in "{out}.part" at byte {len(ISO) // 3}' in p.stderr, p.stderr
    assert out.read_bytes() == ISO
    assert json.loads((tmp_path / "x.iso.manifest.json").read_text()) == MANIFEST
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.iso", "x.iso.manifest.json"]
    ranges = [r[2].get("Range") for r in srv.requests if r[1].endswith("/iso")]
    assert ranges == [None, f"bytes={len(ISO) // 3}-"], ranges


def test_download_resumes_a_part_left_by_an_earlier_run(fake, tmp_path):
    srv = fake(iso_server())
    out = tmp_path / "x.iso"
    (tmp_path / "x.iso.part").write_bytes(ISO[:1000000])
    p = run("download", BUILD_ID, "-o", str(out), "--server", srv.url)
    assert p.returncode == 0, p.stderr
    assert f'resumed the download in "{out}.part" at byte 1000000' in p.stderr, p.stderr
    assert out.read_bytes() == ISO
    assert not (tmp_path / "x.iso.part").exists()


def test_a_part_of_another_iso_is_fetched_again_whole(fake, tmp_path):
    srv = fake(iso_server())
    out = tmp_path / "x.iso"
    (tmp_path / "x.iso.part").write_bytes(b"\xff" * 1000000)
    p = run("download", BUILD_ID, "-o", str(out), "--server", srv.url)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == ISO
    ranges = [r[2].get("Range") for r in srv.requests if r[1].endswith("/iso")]
    assert ranges == ["bytes=1000000-", None], ranges


def test_an_etag_that_is_not_the_records_leaves_a_resumed_part_alone(fake, tmp_path):
    srv = fake(iso_server(etag="0" * 64))
    out = tmp_path / "x.iso"
    (tmp_path / "x.iso.part").write_bytes(ISO[:1000000])
    p = run("download", BUILD_ID, "-o", str(out), "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert "is not the build's: its ETag is" in p.stderr, p.stderr
    assert (tmp_path / "x.iso.part").read_bytes() == ISO[:1000000]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.iso.part"]


def test_a_refused_iso_leaves_no_empty_part(fake, tmp_path):
    srv = fake(iso_server(iso_error=(404, "artifact_gone")))
    p = run("download", BUILD_ID, "-o", str(tmp_path / "x.iso"), "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "debate download: no ISO here (artifact_gone)\n", p.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_iso_that_is_not_the_records_never_reaches_out(fake, tmp_path):
    bad = bytearray(ISO)
    bad[12345] ^= 1
    srv = fake(iso_server(iso=bytes(bad)))
    out = tmp_path / "x.iso"
    p = run("download", BUILD_ID, "-o", str(out), "--server", srv.url)
    assert p.returncode == 3, p.stderr
    assert f"has SHA-256 {hashlib.sha256(bad).hexdigest()}, its build record says {ISO_SHA}" in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == [], "a wrong ISO (or its part) was left behind"


@pytest.mark.parametrize("cmd", ["download", "submit"])
@pytest.mark.parametrize("what", ["fifo", "directory", "fifo.part", "fifo.manifest"])
def test_output_over_a_file_that_is_not_regular_is_refused_before_any_request(fake, tmp_path, cmd, what):
    srv = fake(iso_server())
    out = tmp_path / "x.iso"
    victim = {"fifo": out, "directory": out, "fifo.part": tmp_path / "x.iso.part",
              "fifo.manifest": tmp_path / "x.iso.manifest.json"}[what]
    if what == "directory":
        victim.mkdir()
    else:
        os.mkfifo(victim)
    first = [BUILD_ID] if cmd == "download" else [str(TINY)]
    p = run(cmd, *first, "-o", str(out), "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == f'debate {cmd}: "{victim}" exists and is not a regular file\n', p.stderr
    assert srv.requests == []
    assert victim.is_dir() if what == "directory" else victim.is_fifo()


@pytest.mark.parametrize("cmd", ["download", "submit"])
def test_an_output_directory_that_is_missing_is_refused_before_any_request(fake, cmd):
    srv = fake(iso_server())
    first = [BUILD_ID] if cmd == "download" else [str(TINY)]
    p = run(cmd, *first, "-o", "/nonexistent/x.iso", "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == f'debate {cmd}: cannot write to "/nonexistent/x.iso": the directory "/nonexistent" is ' \
                       "missing or not writable\n", p.stderr
    assert srv.requests == []


@pytest.mark.parametrize("status,code,words", [("failed", 1, "failed: "), ("cancelled", 4, "was cancelled"),
                                               ("running", 2, "has not ended (running)")])
def test_download_of_a_build_without_an_iso(fake, tmp_path, status, code, words):
    b = build_object(status=status, error={"code": "hook_failed", "message": "hook failed"})
    if status == "running":
        b["finished_at"] = None
    srv = fake(lambda h: send_json(h, 200, b))
    p = run("download", BUILD_ID, "-o", str(tmp_path / "x.iso"), "--server", srv.url)
    assert p.returncode == code, p.stderr
    assert words in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# verify --build against a fake server: what it refuses before a rebuild
# --------------------------------------------------------------------------

needs_root_to_verify = pytest.mark.skipif(os.geteuid() != 0, reason="debate verify rebuilds as root")


@needs_root_to_verify
def test_verify_downloads_the_build_and_refuses_a_manifest_that_is_not_one(fake):
    """The ISO and the manifest come through the API as debate download fetches them; a manifest without a
    recipe and a lock cannot be rebuilt (exit 2), and the download leaves nothing behind."""
    srv = fake(iso_server())
    p = run("verify", "--build", BUILD_ID, "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr == f"debate verify: the manifest of build {BUILD_ID} is not a manifest of debate build " \
                       "(it wants format, recipe and lock)\n", p.stderr
    assert [r[1] for r in srv.requests] == [f"/api/v1/builds/{BUILD_ID}", f"/api/v1/builds/{BUILD_ID}/iso",
                                            f"/api/v1/builds/{BUILD_ID}/manifest"], srv.requests
    assert list(Path(EMPTY_DATA_DIR, "verify").iterdir()) == []


@needs_root_to_verify
@pytest.mark.parametrize("status, words", [("failed", f"build {BUILD_ID} failed: hook failed (hook_failed)"),
                                           ("cancelled", f"build {BUILD_ID} was cancelled"),
                                           ("running", f"build {BUILD_ID} has not ended (running)")])
def test_verify_of_a_build_without_an_iso_exits_2(fake, status, words):
    b = build_object(status=status, error={"code": "hook_failed", "message": "hook failed"})
    if status == "running":
        b["finished_at"] = None
    srv = fake(lambda h: send_json(h, 200, b))
    p = run("verify", "--build", BUILD_ID, "--server", srv.url)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"debate verify: {words}"), p.stderr
    assert len(srv.requests) == 1


# --------------------------------------------------------------------------
# the real server
# --------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the build service runs builds as root")


@pytest.fixture(scope="module")
def real(request, cache_dir):  # noqa: F811 - the fixture imported from test_service
    s = Service(request, cache_dir)
    srv = s.server(DEBATE_WORKERS=1, DEBATE_SUBMIT_LIMIT=1000, DEBATE_SUBMIT_WINDOW=3600)
    api = Api(srv)
    url = f"https://localhost:{srv.https_port}"
    yield type("Real", (), {"srv": srv, "api": api, "url": url, "service": s,
                            "env": {"DEBATE_DATA_DIR": str(srv.data_dir)}})
    s.close()


def client(real, *args, timeout=BUILD_TIMEOUT, **kw):
    """debate ARGS against the real server: its URL given, its CA found in the data directory."""
    return run(*args, "--server", real.url, env=real.env, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def tiny_submitted(real):
    """examples/tiny.json submitted with --wait -o from a directory of its own (removed after the module)."""
    work = Path(tempfile.mkdtemp(prefix="debate-client-out-"))
    p = client(real, "submit", str(TINY), "--wait", "-o", "tiny.iso", cwd=work, timeout=FIRST_BUILD_TIMEOUT)
    yield type("Tiny", (), {"p": p, "work": work})
    shutil.rmtree(work, ignore_errors=True)


@needs_root
def test_submit_wait_downloads_the_iso_and_its_manifest(real, tiny_submitted):
    p, work = tiny_submitted.p, tiny_submitted.work
    assert p.returncode == 0, f"{p.stderr[-4000:]}\n{tails(real.srv)}"
    bid, line2 = p.stdout.splitlines()
    assert UUID_RE.match(bid), p.stdout
    b = real.api.build(bid)
    assert b["status"] == "succeeded", b
    iso = (work / "tiny.iso").read_bytes()
    assert hashlib.sha256(iso).hexdigest() == b["iso_sha256"] and len(iso) == b["iso_size"]
    assert line2 == f"{b['iso_sha256']}  tiny.iso"
    manifest = json.loads((work / "tiny.iso.manifest.json").read_text())
    assert manifest["iso_sha256"] == b["iso_sha256"] and manifest["config_hash"] == b["config_hash"]
    assert sorted(f.name for f in work.iterdir()) == ["tiny.iso", "tiny.iso.manifest.json"]
    assert f"debate submit: build {bid}: " in p.stderr and "(cache miss)" in p.stderr, p.stderr
    assert re.search(r"^debate submit: cancel token [A-Za-z0-9_-]{43} \(shown once", p.stderr, re.M), p.stderr
    # Not a terminal: whole progress lines by stage, ending at done.
    stages = re.findall(r"^debate submit: +\d+% (\w+) ", p.stderr, re.M)
    assert "rootfs" in stages and stages[-1] == "done", stages


@needs_root
def test_the_same_submission_again_is_a_cache_hit(real, tiny_submitted, tmp_path):
    assert tiny_submitted.p.returncode == 0
    bid = tiny_submitted.p.stdout.split()[0]
    work = tmp_path
    p = client(real, "submit", str(TINY), "-o", str(work / "again.iso"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[0] == bid
    assert p.stderr.startswith(f"debate submit: build {bid}: cache hit, the ISO is built already\n"), p.stderr
    assert "cancel token" not in p.stderr
    assert (work / "again.iso").read_bytes() == (tiny_submitted.work / "tiny.iso").read_bytes()
    # --json: the server's answer, then the final build, one line each.
    p = client(real, "submit", str(TINY), "--json", "--wait")
    assert p.returncode == 0, p.stderr
    answer, final = [json.loads(line) for line in p.stdout.splitlines()]
    assert answer["cache"] == "hit" and answer["build"]["id"] == bid and final["id"] == bid
    assert p.stderr == ""


@needs_root
def test_status_list_and_logs(real, tiny_submitted):
    bid = tiny_submitted.p.stdout.split()[0]
    p = client(real, "status", bid)
    assert p.returncode == 0, p.stderr
    assert f"id        {bid}\n" in p.stdout and "status    succeeded\n" in p.stdout, p.stdout
    p = client(real, "status", bid, "--json")
    assert json.loads(p.stdout) == real.api.build(bid)
    p = client(real, "list", "--status", "succeeded", "--json")
    assert p.returncode == 0, p.stderr
    assert bid in [b["id"] for b in json.loads(p.stdout)["builds"]]
    p = client(real, "list")
    assert p.returncode == 0 and re.search(rf"^{bid}  succeeded  done ", p.stdout, re.M), p.stdout
    p = client(real, "list", "--status", "finished")
    assert p.returncode == 2 and p.stderr.startswith("debate list: ") and "status" in p.stderr, p.stderr
    p = client(real, "logs", bid)
    assert p.returncode == 0, p.stderr
    assert "[rootfs " in p.stdout and p.stdout.rstrip().endswith(real.api.build(bid)["iso_sha256"]), p.stdout[-500:]
    p = client(real, "status", "00000000-0000-4000-8000-000000000000")
    assert p.returncode == 2 and p.stderr.endswith("(not_found)\n"), p.stderr


@needs_root
def test_download_resumes_a_partial_iso_from_the_server(real, tiny_submitted, tmp_path):
    bid = tiny_submitted.p.stdout.split()[0]
    iso = (tiny_submitted.work / "tiny.iso").read_bytes()
    work = tmp_path
    (work / "d.iso.part").write_bytes(iso[:1 << 20])
    p = client(real, "download", bid, "-o", "d.iso", cwd=work)
    assert p.returncode == 0, p.stderr
    assert 'resumed the download in "d.iso.part" at byte 1048576' in p.stderr, p.stderr
    assert (work / "d.iso").read_bytes() == iso
    assert sorted(f.name for f in work.iterdir()) == ["d.iso", "d.iso.manifest.json"]


@needs_root
def test_an_invalid_recipe_exits_2_naming_the_field(real, tmp_path):
    recipe = json.loads(TINY.read_text())
    recipe["packages"] = ["busybox-static", 7]
    (tmp_path / "bad.json").write_text(json.dumps(recipe))
    p = client(real, "submit", str(tmp_path / "bad.json"))
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("debate submit: packages[1]: ") and \
        p.stderr.endswith(" (invalid_recipe, field recipe.packages[1])\n"), p.stderr
    (tmp_path / "broken.json").write_text("{")
    p = client(real, "submit", str(tmp_path / "broken.json"))
    assert p.returncode == 2 and p.stderr.startswith(f'debate submit: "{tmp_path}/broken.json": line '), p.stderr


@needs_root
def test_the_ca_comes_from_the_data_dir_and_a_wrong_ca_is_a_tls_failure(real, tiny_submitted, tmp_path):
    bid = tiny_submitted.p.stdout.split()[0]
    # Defaults only: $DEBATE_SERVER and DATA_DIR/tls/ca.pem.
    p = run("status", bid, env={"DEBATE_DATA_DIR": str(real.srv.data_dir), "DEBATE_SERVER": real.url})
    assert p.returncode == 0 and "status    succeeded" in p.stdout, p.stderr
    # A data directory without a CA: the system's CAs, which do not know the server's.
    p = run("status", bid, env={"DEBATE_SERVER": real.url})
    assert p.returncode == 3, p.stderr
    assert p.stderr.startswith(f'debate status: TLS with "{real.url}/api/v1/builds/{bid}" failed: '), p.stderr
    # Another CA named outright.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=another CA", "-days", "1", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "ca.pem")], check=True, capture_output=True)
    p = client(real, "status", bid, "--cacert", str(tmp_path / "ca.pem"))
    assert p.returncode == 3 and "TLS with" in p.stderr, p.stderr
    p = client(real, "status", bid, "--cacert", str(tmp_path / "nosuch.pem"))
    assert p.returncode == 2, p.stderr
    assert p.stderr == f'debate status: --cacert "{tmp_path}/nosuch.pem": No such file or directory\n'


@needs_root
def test_cancel_a_running_build_that_submit_and_logs_follow(real, tiny_submitted, tmp_path):
    assert tiny_submitted.p.returncode == 0      # the package cache is warm
    recipe = tiny_with_hook("20-wait", "#!/bin/sh\nsleep 300\n")
    (tmp_path / "slow.json").write_text(json.dumps(recipe))
    env = clean_env({"DEBATE_DATA_DIR": str(real.srv.data_dir)})
    base = [debate_bin()]
    submit = subprocess.Popen(base + ["submit", str(tmp_path / "slow.json"), "--json", "--wait", "--server", real.url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    follow = None
    try:
        answer = json.loads(submit.stdout.readline())
        bid, token = answer["build"]["id"], answer["cancel_token"]
        real.api.wait(bid, lambda b: b["status"] == "running" and b["stage"] == "customizing", BUILD_TIMEOUT,
                      "running its hooks")
        follow = subprocess.Popen(base + ["logs", bid, "--follow", "--server", real.url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        p = client(real, "cancel", bid, "--token", "A" * 43)
        assert p.returncode == 2, p.stderr
        assert p.stderr.endswith("(bad_cancel_token)\n"), p.stderr
        assert real.api.build(bid)["status"] == "running"
        p = client(real, "cancel", bid, "--token", token)
        assert p.returncode == 0, p.stderr
        assert p.stderr.startswith(f"debate cancel: build {bid}: "), p.stderr
        out, err = submit.communicate(timeout=120)
        assert submit.returncode == 4, err
        assert err.endswith(f"debate submit: build {bid} was cancelled\n"), err
        assert json.loads(out.splitlines()[-1])["status"] == "cancelled", out
        fout, ferr = follow.communicate(timeout=120)
        assert follow.returncode == 4, ferr
        assert "[customizing " in fout, fout[-2000:]
        # Cancelling what has ended is refused as asked.
        p = client(real, "cancel", bid, "--token", token)
        assert p.returncode == 2 and p.stderr.endswith("(already_finished)\n"), p.stderr
    finally:
        for proc in (submit, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------
# bash completion
# --------------------------------------------------------------------------

COMPLETION = Path(__file__).resolve().parents[2] / "deploy" / "bash-completion" / "debate"


def complete(*words, cwd=None):
    """What the completion offers for `debate WORDS` (the last word being completed)."""
    words = ["debate", *words]
    script = (f"source {COMPLETION}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
              f"COMP_CWORD={len(words) - 1}; _debate; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return sorted(w for w in p.stdout.split("\n") if w)


def test_bash_completion_offers_every_command_and_every_long_option():
    listed = [line.split()[0] for line in run("help").stdout.splitlines() if line.startswith("  ")]
    assert set(listed) <= set(complete("")), (listed, complete(""))
    for cmd in listed:
        usage = run(cmd, "--help").stdout
        options = sorted(set(re.findall(r"^ +(?:-\w, )?(--[a-z-]+)", usage, re.M)))
        assert complete(cmd, "--") == options, f"debate {cmd}: completion {complete(cmd, '--')}, usage {options}"
    assert complete("list", "--status", "s") == ["succeeded"]
    assert complete("sub") == ["submit"]


def test_bash_completion_of_option_values(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.json").write_text("{}")
    t = str(tmp_path)
    # -n takes a number in list, and nothing in serve (it is --check there).
    assert complete("list", "-n", "") == []
    assert complete("serve", "-n", "--") == ["--check", "--config", "--help"]
    # --in is a directory; --output, --lock, --config a file.
    assert complete("sandbox", "--in", f"{t}/") == [f"{t}/dir"]
    assert complete("submit", "--lock", f"{t}/f") == [f"{t}/file.json"]
    # --opt=value, split at "=" as bash does, or whole.
    assert complete("submit", "--output", "=", f"{t}/f") == [f"{t}/file.json"]
    assert complete("submit", "--output", "=", cwd=tmp_path) == ["dir", "file.json"]
    assert complete("submit", f"--output={t}/f") == [f"--output={t}/file.json"]
    assert complete("list", "--status", "=", "s") == ["succeeded"]
    assert complete("list", "--status=s") == ["--status=succeeded"]
    assert complete("sandbox", f"--in={t}/") == [f"--in={t}/dir"]


# The rebuild verify makes is a second tiny build: once, in the release run.
heavy_verify = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                                  reason="a rebuild to compare with, once, in the release run")


@needs_root
@heavy_verify
def test_verify_rebuilds_a_build_of_the_server_and_says_match(real, tiny_submitted):
    assert tiny_submitted.p.returncode == 0
    bid = tiny_submitted.p.stdout.split()[0]
    # The server's cache holds the lock's packages: the rebuild downloads nothing.
    p = run("verify", "--build", bid, "--server", real.url, timeout=BUILD_TIMEOUT,
            env=dict(real.env, DEBATE_CACHE_DIR=real.service.cache_dir))
    assert p.returncode == 0, p.stderr[-4000:]
    assert p.stdout == f"match  {real.api.build(bid)['iso_sha256']}  {bid}\n"
    assert "0 packages downloaded" in p.stderr, p.stderr[-4000:]
    assert list(Path(real.srv.data_dir, "verify").iterdir()) == []


@needs_root
def test_a_boot_check_is_asked_for_shown_and_cached(real, tiny_submitted):
    """tiny was built without a boot check (tiny_submitted): asking for one is
    not answered by that build but by a new one that boots the ISO; its
    verdict is in the API's build object and in debate status, its console
    at boot_log_url; asking again is a hit with it."""
    bid = tiny_submitted.p.stdout.split()[0]
    plain = real.api.build(bid)
    assert plain["boot_check"] is False and plain["boot_verdict"] is None and plain["boot_log_url"] is None
    p = client(real, "submit", str(TINY), "--boot-check", "--wait", timeout=FIRST_BUILD_TIMEOUT)
    assert p.returncode == 0, p.stderr
    checked_id = p.stdout.split()[0]
    assert checked_id != bid, "a build never boot-checked answered a submission that asks for a check"
    b = real.api.build(checked_id)
    assert b["status"] == "succeeded" and b["iso_sha256"] == plain["iso_sha256"], b
    assert b["boot_check"] is True
    assert b["boot_verdict"]["result"] == "pass", b["boot_verdict"]
    assert b["boot_verdict"]["bios"] == "pass" and b["boot_verdict"]["uefi"] == "pass"
    assert b["boot_log_url"] == f"/api/v1/builds/{checked_id}/boot-log"
    log = real.api.get(b["boot_log_url"])
    assert log.status == 200 and log.header("Content-Type").startswith("text/plain")
    assert "marker: DEBATE-TINY-BOOTED" in log.body.decode() and "debate tiny image" in log.body.decode()
    assert real.api.get(f"/api/v1/builds/{bid}/boot-log").status == 404
    p = client(real, "status", checked_id)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^boot +pass \(bios pass, uefi pass, \d+ s; console: /api/v1/builds/.*/boot-log\)$",
                     p.stdout, re.M), p.stdout
    # The artifact store keeps the manifest of the build that stored the ISO first (the plain one).
    assert real.api.get(b["manifest_url"]).status == 200
    again = real.api.submit(json.loads(TINY.read_text()), boot_check=True)
    assert again.status == 200 and again.json()["cache"] == "hit", again
    assert again.json()["build"]["id"] == checked_id


@needs_root
def test_a_boot_check_of_a_recipe_without_a_serial_console_is_refused(real, tmp_path):
    doc = json.loads(TINY.read_text())
    doc["boot"]["cmdline"] = "console=tty0"
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(doc))
    r = real.api.submit(doc, boot_check=True)
    assert r.status == 400, r
    assert r.json()["error"]["field"] == "boot_check"
    assert "console=ttyS0" in r.json()["error"]["message"]
    assert real.api.submit(doc, boot_check="yes").status == 400
    p = client(real, "submit", str(recipe), "--boot-check")
    assert p.returncode != 0 and "console=ttyS0" in p.stderr, p.stderr
