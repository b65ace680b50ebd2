"""Black-box integration tests for `debate serve` (HTTPS front end).

Everything here talks to a real server process over loopback, mostly with
raw bytes, and asserts what a client sees on the wire.
"""

import base64
import os
import random
import re
import shutil
import signal
import socket
import ssl
import string
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

# TLS 1.0/1.1 are deliberately used below to check that they are refused.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")

from conftest import (
    SHARED_CORS_ORIGIN,
    SHARED_MAX_BODY,
    NoResponse,
    ResponseTimeout,
    build_request,
    clean_env,
    client_context,
    debate_bin,
    free_ports,
    metric_value,
)

CSRF_COOKIE = "__Host-debate_csrf"

SECURITY_HEADERS_EXACT = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _norm(v):
    return re.sub(r"\s+", " ", v.strip()).lower()


def assert_security_headers(r):
    problems = []
    for name, want in SECURITY_HEADERS_EXACT.items():
        vals = r.header_all(name)
        if len(vals) != 1:
            problems.append(f"{name}: expected exactly one, got {vals!r}")
        elif _norm(vals[0]) != _norm(want):
            problems.append(f"{name}: expected {want!r}, got {vals[0]!r}")
    csp = r.header_all("Content-Security-Policy")
    if len(csp) != 1:
        problems.append(f"Content-Security-Policy: expected exactly one, got {csp!r}")
    elif "frame-ancestors 'none'" not in csp[0]:
        problems.append(f"Content-Security-Policy lacks frame-ancestors 'none': {csp[0]!r}")
    rid = r.header_all("X-Request-Id")
    if len(rid) != 1 or not rid[0].strip():
        problems.append(f"X-Request-Id: expected one non-empty value, got {rid!r}")
    assert not problems, f"status {r.status}: " + "; ".join(problems)


def assert_json_error(r, status, code):
    assert r.status == status, r
    ctype = (r.header("Content-Type") or "").lower()
    assert ctype.startswith("application/json"), f"Content-Type {ctype!r}: {r!r}"
    doc = r.json()
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), doc
    assert doc["error"].get("code") == code, doc
    msg = doc["error"].get("message")
    assert isinstance(msg, str) and msg, f"error.message missing/empty: {doc!r}"


def csrf_pair(token):
    return [("Cookie", f"{CSRF_COOKIE}={token}"), ("X-CSRF-Token", token)]


def json_post_headers(token):
    return csrf_pair(token) + [("Content-Type", "application/json")]


# ==========================================================================
# Plain HTTP -> HTTPS redirect
# ==========================================================================

@pytest.mark.parametrize("path", ["/", "/health", "/some/deep/path"])
@pytest.mark.parametrize("host_name", ["localhost", "127.0.0.1"])
def test_plain_http_redirects_to_https(server, path, host_name):
    r = server.request("GET", path, host=f"{host_name}:{server.http_port}",
                       plain=True)
    assert r.status == 301, r
    assert r.header("Location") == f"https://{host_name}:{server.https_port}{path}", r
    assert_security_headers(r)


def test_plain_http_post_is_redirected_not_processed(server):
    # Even an unsafe method on the plain port only gets the redirect.
    r = server.request("POST", "/api/v1/builds", body=b"{}",
                       headers=[("Content-Type", "application/json")],
                       host=f"localhost:{server.http_port}", plain=True)
    assert r.status == 301, r
    assert r.header("Location") == f"https://localhost:{server.https_port}/api/v1/builds"
    assert_security_headers(r)


def test_plain_http_no_open_redirect_to_untrusted_host(server):
    r = server.request("GET", "/", host="evil.example", plain=True)
    # Either refused outright, or redirected somewhere other than evil.example.
    assert r.status in (301, 400), r
    if r.status == 301:
        assert "evil.example" not in (r.header("Location") or ""), \
            f"redirects to an untrusted Host: {r.header('Location')!r}"
    assert_security_headers(r)


# ==========================================================================
# TLS versions and ALPN
# ==========================================================================

def _client_can_speak(server, version):
    """Check that *this* client can do `version` at all, using a throwaway
    local TLS server with the debate server's own cert (so a refusal by
    debate is really debate's doing)."""
    tls_dir = server.data_dir / "tls"
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(tls_dir / "server.pem"), str(tls_dir / "server.key"))
    sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    sctx.minimum_version = version
    sctx.maximum_version = version
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(5)

    def serve_one():
        try:
            c, _ = lsock.accept()
            with sctx.wrap_socket(c, server_side=True):
                pass
        except Exception:
            pass

    t = threading.Thread(target=serve_one, daemon=True)
    t.start()
    try:
        cctx = client_context(None, minimum=version, maximum=version,
                              seclevel0=True, verify=False)
        with socket.create_connection(lsock.getsockname(), timeout=5) as raw:
            with cctx.wrap_socket(raw, server_hostname="localhost") as s:
                return s.version()
    except Exception:
        return None
    finally:
        t.join(5)
        lsock.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=["tls1_0", "tls1_1"])
def test_legacy_tls_refused(server, version):
    if _client_can_speak(server, version) is None:
        pytest.skip(f"local OpenSSL cannot negotiate {version.name} at all")
    ctx = client_context(server.ca_path, minimum=version, maximum=version,
                         seclevel0=True)
    try:
        conn = server.connect_tls(ctx=ctx)
    except (ssl.SSLError, OSError):
        return  # handshake refused: what we want
    with conn:
        negotiated = conn.sock.version()
    pytest.fail(f"server accepted a {negotiated} handshake")


def test_legacy_tls_refused_openssl_cli(server):
    """Same check with the openssl CLI, as an operator would run it."""
    p = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.https_port}",
         "-servername", "localhost", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        input=b"", capture_output=True, timeout=15)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, f"openssl -tls1_1 handshake succeeded:\n{out[-2000:]}"
    m = re.search(r"Cipher is (\S+)", out)
    assert m is None or m.group(1) == "(NONE)", out[-2000:]


@pytest.mark.parametrize("version,name", [
    (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
    (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
], ids=["tls1_2", "tls1_3"])
def test_modern_tls_accepted(server, version, name):
    ctx = client_context(server.ca_path, minimum=version, maximum=version,
                         alpn=["http/1.1"])
    with server.connect_tls(ctx=ctx) as conn:
        assert conn.sock.version() == name
        conn.send(build_request("GET", "/health", server.host))
        r = conn.read_response()
    assert r.status == 200, r


def test_alpn_h2_and_http11_selects_http11(server):
    ctx = server.tls_context(alpn=["h2", "http/1.1"])
    with server.connect_tls(ctx=ctx) as conn:
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
        conn.send(build_request("GET", "/health", server.host))
        r = conn.read_response()
    assert r.status == 200, r
    assert r.version == "HTTP/1.1"


def test_alpn_h2_only_is_not_negotiated(server):
    ctx = server.tls_context(alpn=["h2"])
    try:
        conn = server.connect_tls(ctx=ctx)
    except (ssl.SSLError, ConnectionResetError, OSError):
        return  # refusing the handshake (no_application_protocol) is fine
    with conn:
        assert conn.sock.selected_alpn_protocol() != "h2"


def test_generated_tls_material(server):
    """Generated CA/server cert/key files exist, keys are private (0600),
    and the server's certificate verifies against the CA for 'localhost'."""
    tls = server.data_dir / "tls"
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        assert (tls / name).is_file(), f"missing {tls / name}"
    secrets_ = [tls / "ca.key", tls / "server.key", server.data_dir / "csrf.key"]
    for path in secrets_:
        assert path.is_file(), f"missing {path}"
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} has mode {oct(mode)}, expected 0600"
    # connect_tls verifies the chain and the hostname; this must not raise.
    with server.connect_tls() as conn:
        cert = conn.sock.getpeercert()
    assert cert


# ==========================================================================
# Routes
# ==========================================================================

def test_health(server):
    r = server.get("/health")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("application/json")
    assert r.json().get("status") == "ok"
    assert_security_headers(r)


def test_metrics_exposition(server):
    server.get("/health")
    r = server.get("/metrics")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r
    text = r.text
    for needle in ('debate_http_requests_total{',
                   'debate_http_request_duration_seconds_bucket',
                   'debate_http_ratelimit_rejections_total',
                   'debate_http_open_connections'):
        assert needle in text, f"{needle!r} missing from /metrics"
    assert metric_value(text, "debate_http_requests_total",
                        route="/health", status="200") is not None, \
        'no debate_http_requests_total{route="/health",status="200"} sample'
    inf = metric_value(text, "debate_http_request_duration_seconds_bucket", le="+Inf")
    assert inf is not None and inf >= 1, "histogram lacks a le=\"+Inf\" bucket"
    assert_security_headers(r)


def test_csrf_endpoint_token_and_cookie(server):
    r = server.get("/api/v1/csrf")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("application/json")
    token = r.json().get("token")
    assert isinstance(token, str) and len(token) >= 16, r
    cookies = r.header_all("Set-Cookie")
    assert len(cookies) == 1, cookies
    parts = [p.strip() for p in cookies[0].split(";")]
    assert parts[0] == f"{CSRF_COOKIE}={token}", cookies[0]
    attrs = {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else None)
             for p in parts[1:]}
    assert attrs.get("path") == "/", cookies[0]
    assert "secure" in attrs, cookies[0]
    assert "httponly" in attrs, cookies[0]
    assert (attrs.get("samesite") or "").lower() == "strict", cookies[0]
    assert "domain" not in attrs, "__Host- cookies must not carry Domain"
    assert_security_headers(r)


def test_request_ids_are_unique(server):
    ids = {server.get("/health").header("X-Request-Id") for _ in range(5)}
    assert None not in ids and len(ids) == 5, ids


def test_not_found(server):
    r = server.get("/no/such/route")
    assert_json_error(r, 404, "not_found")
    assert_security_headers(r)


@pytest.mark.parametrize("method,path", [
    ("POST", "/health"),
    ("DELETE", "/api/v1/csrf"),
    ("PUT", "/metrics"),
])
def test_method_not_allowed(server, shared_csrf, method, path):
    # Unsafe methods are CSRF-checked first, so send a valid token.
    r = server.request(method, path, headers=json_post_headers(shared_csrf), body=b"{}")
    assert_json_error(r, 405, "method_not_allowed")
    allow = [m.strip().upper() for m in (r.header("Allow") or "").split(",")]
    assert "GET" in allow, f"Allow header {r.header('Allow')!r}"
    assert method not in allow
    assert_security_headers(r)


# ==========================================================================
# Every response carries the security header set
# ==========================================================================

def _big_header_request(server, size):
    return build_request("GET", "/health", server.host,
                         headers=[("X-Big", "a" * size)])


def _send_staged_and_read(server, parts, timeout=10.0):
    with server.connect_tls() as conn:
        conn.send_staged(parts)
        return conn.read_response(timeout=timeout)


def _header_case(name):
    def run(server, token):
        if name == "health":
            return 200, server.get("/health")
        if name == "metrics":
            return 200, server.get("/metrics")
        if name == "csrf":
            return 200, server.get("/api/v1/csrf")
        if name == "not_found":
            return 404, server.get("/nope")
        if name == "method_not_allowed":
            return 405, server.request("POST", "/health",
                                       headers=json_post_headers(token), body=b"{}")
        if name == "untrusted_host":
            return 400, server.get("/health", host="evil.example")
        if name == "csrf_failed":
            return 403, server.request("POST", "/api/v1/builds", body=b"{}",
                                       headers=[("Content-Type", "application/json")])
        if name == "unsupported_media_type":
            return 415, server.request("POST", "/api/v1/builds", body=b"a=b",
                                       headers=csrf_pair(token) + [("Content-Type", "text/plain")])
        if name == "body_too_large":
            body = b"x" * (SHARED_MAX_BODY * 2)
            head = build_request("POST", "/api/v1/builds", server.host,
                                 headers=json_post_headers(token) +
                                 [("Content-Length", str(len(body)))])
            return 413, _send_staged_and_read(server, [head, body])
        if name == "headers_too_large":
            data = _big_header_request(server, 20 * 1024)
            return 431, _send_staged_and_read(
                server, [data[i:i + 4096] for i in range(0, len(data), 4096)])
        if name == "redirect":
            return 301, server.request("GET", "/", host=f"localhost:{server.http_port}",
                                       plain=True)
        if name == "bad_request":
            return 400, server.raw(
                f"POST /api/v1/builds HTTP/1.1\r\nHost: {server.host}\r\n"
                f"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".encode())
        if name == "cors_preflight":
            return 204, server.request("OPTIONS", "/api/v1/csrf", headers=[
                ("Origin", SHARED_CORS_ORIGIN),
                ("Access-Control-Request-Method", "GET")])
        if name == "cors_denied":
            return 403, server.request("OPTIONS", "/api/v1/csrf", headers=[
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "GET")])
        raise AssertionError(name)
    return run


HEADER_CASES = ["health", "metrics", "csrf", "not_found", "method_not_allowed",
                "untrusted_host", "csrf_failed", "unsupported_media_type", "body_too_large",
                "headers_too_large", "redirect", "bad_request",
                "cors_preflight", "cors_denied"]


@pytest.mark.parametrize("case", HEADER_CASES)
def test_security_headers_on_every_response(server, shared_csrf, case):
    status, r = _header_case(case)(server, shared_csrf)
    assert r.status == status, r
    assert_security_headers(r)


# ==========================================================================
# CSRF
# ==========================================================================

def _forge_like(token, seed):
    """Random token of the same length and shape (alnum chars replaced,
    separators such as '.', '-', '_' kept)."""
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    while True:
        out = "".join(rnd.choice(alphabet) if c.isalnum() else c for c in token)
        if out != token:
            return out


def _tamper(token):
    i = len(token) // 2
    while not token[i].isalnum():
        i += 1
    c = token[i]
    repl = "A" if c != "A" else "B"
    return token[:i] + repl + token[i + 1:]


def _random_b64_same_length(token):
    raw = base64.urlsafe_b64encode(os.urandom(len(token))).decode()
    return raw[:len(token)]


CSRF_BAD_CASES = {
    "missing_cookie": lambda good, other: [("X-CSRF-Token", good)],
    "missing_header": lambda good, other: [("Cookie", f"{CSRF_COOKIE}={good}")],
    "missing_both": lambda good, other: [],
    "mismatched": lambda good, other: [("Cookie", f"{CSRF_COOKIE}={good}"),
                                       ("X-CSRF-Token", other)],
    "forged_same_shape": lambda good, other: csrf_pair(_forge_like(good, 1)),
    "forged_random_base64": lambda good, other: csrf_pair(_random_b64_same_length(good)),
    "tampered": lambda good, other: csrf_pair(_tamper(good)),
    "empty": lambda good, other: csrf_pair(""),
    "wrong_cookie_name": lambda good, other: [("Cookie", f"debate_csrf={good}"),
                                              ("X-CSRF-Token", good)],
}


@pytest.mark.parametrize("case", list(CSRF_BAD_CASES))
def test_csrf_rejections(server, case):
    good, _ = server.csrf_token()
    other, _ = server.csrf_token()
    headers = CSRF_BAD_CASES[case](good, other) + [("Content-Type", "application/json")]
    r = server.request("POST", "/api/v1/builds", headers=headers, body=b"{}")
    assert_json_error(r, 403, "csrf_failed")
    assert_security_headers(r)


def test_csrf_token_from_other_instance_rejected(server, debate_factory):
    other_server = debate_factory()
    foreign, _ = other_server.csrf_token()
    # sanity: that token is valid where it was minted
    r = other_server.request("POST", "/api/v1/builds",
                             headers=json_post_headers(foreign), body=b"{}")
    assert r.status != 403, r
    r = server.request("POST", "/api/v1/builds",
                       headers=json_post_headers(foreign), body=b"{}")
    assert_json_error(r, 403, "csrf_failed")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/api/v1/builds", "/no/such/route", "/health"])
def test_csrf_checked_before_routing(server, method, path):
    r = server.request(method, path, body=b"{}",
                       headers=[("Content-Type", "application/json")])
    assert_json_error(r, 403, "csrf_failed")


VALID_CSRF_VARIANTS = {
    "plain": lambda t: json_post_headers(t),
    "extra_cookies": lambda t: [("Cookie", f"a=b; {CSRF_COOKIE}={t}; c=d"),
                                ("X-CSRF-Token", t),
                                ("Content-Type", "application/json")],
    "same_origin_fetch": lambda t: json_post_headers(t) + [("Sec-Fetch-Site", "same-origin")],
    "json_charset": lambda t: csrf_pair(t) + [("Content-Type",
                                              "application/json; charset=utf-8")],
}


@pytest.mark.parametrize("variant", list(VALID_CSRF_VARIANTS))
def test_csrf_valid_token_passes(server, variant):
    token, _ = server.csrf_token()
    r = server.request("POST", "/api/v1/builds",
                       headers=VALID_CSRF_VARIANTS[variant](token), body=b"{}")
    assert r.status != 403, r
    assert r.status < 500, r
    # Past the CSRF check, the build route itself refuses the empty submission.
    assert_json_error(r, 400, "invalid_request")


SIMPLE_CONTENT_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "TEXT/PLAIN",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----x",
]


@pytest.mark.parametrize("ctype", SIMPLE_CONTENT_TYPES)
def test_csrf_simple_content_types_without_token_refused(server, ctype):
    # What a cross-site HTML form sends: no token, so a forgery, whatever the body.
    r = server.request("POST", "/api/v1/builds",
                       headers=[("Content-Type", ctype)], body=b"a=b")
    assert_json_error(r, 403, "csrf_failed")
    assert_security_headers(r)


@pytest.mark.parametrize("ctype", SIMPLE_CONTENT_TYPES + [
    "application/xml",
    "application/jsonp",
    "application/json-seq",
])
def test_non_json_content_type_is_unsupported_media_type(server, ctype):
    token, _ = server.csrf_token()
    r = server.request("POST", "/api/v1/builds",
                       headers=csrf_pair(token) + [("Content-Type", ctype)], body=b"a=b")
    assert_json_error(r, 415, "unsupported_media_type")
    assert "application/json" in r.json()["error"]["message"], r
    assert_security_headers(r)


@pytest.mark.parametrize("path", ["/api/v1/builds", "/api/v1/builds/x/cancel", "/no/such/route"])
def test_non_json_content_type_never_reaches_a_route(server, path):
    token, _ = server.csrf_token()
    r = server.request("POST", path, headers=csrf_pair(token) + [("Content-Type", "text/plain")],
                       body=b'{"recipe": {}}')
    assert_json_error(r, 415, "unsupported_media_type")


def test_csrf_cross_site_fetch_refused(server):
    token, _ = server.csrf_token()
    r = server.request("POST", "/api/v1/builds", body=b"{}",
                       headers=json_post_headers(token) + [("Sec-Fetch-Site", "cross-site")])
    assert_json_error(r, 403, "csrf_failed")


# ==========================================================================
# Host header
# ==========================================================================

@pytest.mark.parametrize("host_tpl", [
    "localhost", "localhost:{port}", "127.0.0.1", "127.0.0.1:{port}",
    "[::1]:{port}", "localhost:1",
])
def test_trusted_host_accepted(server, host_tpl):
    r = server.get("/health", host=host_tpl.format(port=server.https_port))
    assert r.status == 200, r


@pytest.mark.parametrize("host_tpl", [
    "evil.example", "evil.example:{port}", "localhost.evil.example",
    "localhostx", "evil.localhost", "127.0.0.2",
])
def test_untrusted_host_rejected(server, host_tpl):
    r = server.get("/health", host=host_tpl.format(port=server.https_port))
    assert_json_error(r, 400, "untrusted_host")
    assert_security_headers(r)


def test_missing_or_empty_host_rejected(server):
    r = server.raw(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert r.status == 400, r
    r = server.raw(b"GET /health HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n")
    assert r.status == 400, r


def test_duplicate_host_rejected(server):
    r = server.raw(f"GET /health HTTP/1.1\r\nHost: {server.host}\r\n"
                   f"Host: evil.example\r\nConnection: close\r\n\r\n".encode())
    assert r.status == 400, r


# ==========================================================================
# Body and header size limits
# ==========================================================================

def test_content_length_over_limit_413(server, shared_csrf):
    body = b"x" * (SHARED_MAX_BODY + 1)
    head = build_request("POST", "/api/v1/builds", server.host,
                         headers=json_post_headers(shared_csrf) +
                         [("Content-Length", str(len(body)))])
    r = _send_staged_and_read(server, [head, body])
    assert_json_error(r, 413, "body_too_large")
    assert_security_headers(r)


def test_huge_content_length_413(server, shared_csrf):
    head = build_request("POST", "/api/v1/builds", server.host,
                         headers=json_post_headers(shared_csrf) +
                         [("Content-Length", "1000000000000")])
    r = _send_staged_and_read(server, [head])
    assert_json_error(r, 413, "body_too_large")


def test_chunked_body_over_limit_413(server, shared_csrf):
    head = build_request("POST", "/api/v1/builds", server.host,
                         headers=json_post_headers(shared_csrf) +
                         [("Transfer-Encoding", "chunked")])
    chunk = b"x" * 512
    one = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    parts = [head] + [one] * 4 + [b"0\r\n\r\n"]        # 2048 bytes > 1024
    r = _send_staged_and_read(server, parts)
    assert_json_error(r, 413, "body_too_large")
    assert_security_headers(r)


def test_body_at_limit_accepted(server, shared_csrf):
    body = b"x" * SHARED_MAX_BODY
    r = server.request("POST", "/api/v1/builds", body=body,
                       headers=json_post_headers(shared_csrf))
    # accepted by the front door, then refused by the route: it is not JSON
    assert_json_error(r, 400, "invalid_json")


def test_chunked_body_under_limit_accepted(server, shared_csrf):
    head = build_request("POST", "/api/v1/builds", server.host,
                         headers=json_post_headers(shared_csrf) +
                         [("Transfer-Encoding", "chunked")])
    r = server.raw(head + b"2\r\n{}\r\n0\r\n\r\n")
    assert_json_error(r, 400, "invalid_request")  # the route read the whole body: {} has no recipe


def test_header_under_limit_accepted(server):
    r = server.raw(_big_header_request(server, 8 * 1024))
    assert r.status == 200, r


@pytest.mark.parametrize("case", ["one_20k_header", "one_70k_header", "many_small_headers"])
def test_headers_over_limit_431(server, case):
    if case == "one_20k_header":
        data = _big_header_request(server, 20 * 1024)
    elif case == "one_70k_header":
        data = _big_header_request(server, 70 * 1024)
    else:
        # 80 headers of ~256 bytes: over the byte limit, under any sane
        # header-count limit.
        data = build_request("GET", "/health", server.host,
                             headers=[(f"X-H{i}", "v" * 250) for i in range(80)])
    parts = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    try:
        r = _send_staged_and_read(server, parts)
    except NoResponse:
        pytest.fail("connection closed without a 431 response")
    assert_json_error(r, 431, "headers_too_large")
    assert_security_headers(r)


def test_too_many_headers_refused(server):
    """150 tiny headers (~1.5 KB, far below the byte limit): more than the
    100 fields h2o's parser holds, so the parser refuses the head itself
    (bare 400, docs/security.md); it is never processed."""
    data = build_request("GET", "/health", server.host,
                         headers=[(f"X-H{i}", "v") for i in range(150)])
    assert_refused_and_closed(server, data, want_json=False)


MALFORMED_HEADS = {
    "header_without_colon": "GET /health HTTP/1.1\r\nHost: {host}\r\nBadHeader\r\n\r\n",
    "space_in_header_name": "GET /health HTTP/1.1\r\nHost: {host}\r\nX A: b\r\n\r\n",
    "space_before_colon": "GET /health HTTP/1.1\r\nHost: {host}\r\nX-A : b\r\n\r\n",
    "bad_http_version": "GET /health HTTP/9.9\r\nHost: {host}\r\n\r\n",
    "control_char_in_target": "GET /he\x01alth HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "nul_in_header_value": "GET /health HTTP/1.1\r\nHost: {host}\r\nX-A: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED_HEADS))
def test_malformed_head_refused_and_closed(server, case):
    """Heads h2o's parser cannot read: 400 (505 allowed for an unknown
    version), the connection closed, nothing pipelined behind answered."""
    head = MALFORMED_HEADS[case].format(host=server.host).encode("latin-1")
    statuses = (400, 505) if case == "bad_http_version" else (400,)
    assert_refused_and_closed(server, head, want_json=False, statuses=statuses)


# ==========================================================================
# Slow client (slowloris)
# ==========================================================================

def test_slow_client_disconnected_others_served(debate_factory):
    srv = debate_factory(DEBATE_REQUEST_TIMEOUT=2)
    req = build_request("GET", "/health", srv.host)
    t0 = time.monotonic()
    conn = srv.connect_tls()
    closed_at = None
    received = b""
    health_latency = None
    i = 0
    try:
        while time.monotonic() - t0 < 9.0:
            if conn.readable(0.5):                 # also paces at 1 byte / 0.5 s
                data, closed = conn.read_until_close(timeout=0.2)
                received += data
                if closed:
                    closed_at = time.monotonic()
                    break
            if i < len(req):
                if not conn.send(req[i:i + 1]):
                    closed_at = time.monotonic()
                    break
                i += 1
            if health_latency is None and time.monotonic() - t0 > 1.0:
                h0 = time.monotonic()
                r = srv.get("/health", timeout=5)
                health_latency = time.monotonic() - h0
                assert r.status == 200, r
    finally:
        conn.close()
    assert closed_at is not None, \
        f"slow connection still open after 9 s ({i} bytes dribbled)"
    elapsed = closed_at - t0
    assert 1.0 <= elapsed <= 5.5, f"slow client closed after {elapsed:.2f}s"
    assert i < len(req), "whole request was accepted from a slow client"
    assert not re.match(rb"HTTP/1\.[01] 2", received), received[:200]
    assert health_latency is not None and health_latency < 1.0, \
        f"/health took {health_latency}s while a slow client was connected"


# ==========================================================================
# Request smuggling / malformed framing
# ==========================================================================

def _smuggling_cases():
    def post(framing, body):
        def build(host, token):
            return (f"POST /api/v1/builds HTTP/1.1\r\nHost: {host}\r\n"
                    f"Cookie: {CSRF_COOKIE}={token}\r\nX-CSRF-Token: {token}\r\n"
                    f"Content-Type: application/json\r\n{framing}\r\n").encode() + body
        return build

    def raw(tpl):
        def build(host, token):
            return tpl.format(host=host).encode()
        return build

    chunked0 = b"0\r\n\r\n"
    return [
        # id, builder, JSON bad_request required
        ("te_and_cl", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunked0), True),
        ("cl_and_te", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", chunked0), True),
        ("duplicate_cl_equal", post("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), True),
        ("duplicate_cl_list", post("Content-Length: 5, 5\r\n", b"hello"), True),
        ("conflicting_cl", post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), True),
        ("cl_plus_sign", post("Content-Length: +5\r\n", b"hello"), True),
        ("cl_minus_sign", post("Content-Length: -5\r\n", b"hello"), True),
        ("cl_inner_space", post("Content-Length: 5 5\r\n", b"hello"), True),
        ("cl_hex", post("Content-Length: 0x5\r\n", b"hello"), True),
        ("cl_empty", post("Content-Length: \r\n", b"hello"), True),
        ("bare_lf_request", raw("GET /health HTTP/1.1\nHost: {host}\n\n"), True),
        ("bare_lf_in_header", raw("GET /health HTTP/1.1\r\nHost: {host}\r\n"
                                  "X-A: 1\nX-B: 2\r\n\r\n"), True),
        ("obs_fold_space", raw("GET /health HTTP/1.1\r\nHost: {host}\r\n"
                               "X-A: 1\r\n folded\r\n\r\n"), True),
        ("obs_fold_tab", raw("GET /health HTTP/1.1\r\nHost: {host}\r\n"
                             "X-A: 1\r\n\tfolded\r\n\r\n"), True),
        ("te_gzip_chunked", post("Transfer-Encoding: gzip, chunked\r\n", chunked0), True),
        ("te_chunked_chunked", post("Transfer-Encoding: chunked, chunked\r\n", chunked0), True),
        ("te_two_headers", post("Transfer-Encoding: chunked\r\n"
                                "Transfer-Encoding: chunked\r\n", chunked0), True),
        ("te_xchunked", post("Transfer-Encoding: xchunked\r\n", chunked0), True),
        ("te_space_before_colon", post("Transfer-Encoding : chunked\r\n", chunked0), False),
        ("chunk_size_invalid", post("Transfer-Encoding: chunked\r\n",
                                    b"zz\r\nhello\r\n0\r\n\r\n"), False),
        ("chunk_size_overflow", post("Transfer-Encoding: chunked\r\n",
                                     b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), True),
    ]


SMUGGLING = _smuggling_cases()
SMUGGLED_TAIL = "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"


def assert_refused_and_closed(server, payload, want_json, statuses=(400,)):
    """A second, "smuggled" request rides behind the payload; it must never be
    answered, because after a framing error the connection must close.
    want_json False: h2o's parser refuses the head before debate sees it and
    answers a bare 400 (docs/security.md), so only status and closing count."""
    payload += SMUGGLED_TAIL.format(host=server.host).encode()
    with server.connect_tls() as conn:
        conn.send(payload)
        try:
            r = conn.read_response(timeout=5.0)
        except NoResponse:
            return  # closed without answering: acceptable
        except ResponseTimeout:
            pytest.fail("server neither answered nor closed within 5 s")
        assert r.status in statuses, f"expected {statuses}, got {r!r}"
        if want_json:
            assert_json_error(r, r.status, "bad_request")
            assert_security_headers(r)
        rest, closed = conn.read_until_close(timeout=3.0)
    assert b"HTTP/1." not in rest, f"smuggled request was answered: {rest[:300]!r}"
    assert closed, "connection kept open after a framing error"


@pytest.mark.parametrize("builder,want_json", [(b, j) for _, b, j in SMUGGLING],
                         ids=[i for i, _, _ in SMUGGLING])
def test_request_smuggling_rejected(server, shared_csrf, builder, want_json):
    assert_refused_and_closed(server, builder(server.host, shared_csrf), want_json)


# ==========================================================================
# Rate limiting
# ==========================================================================

RATE_ENV = {"DEBATE_RATE_LIMIT": 5, "DEBATE_RATE_WINDOW": 60}


def _metrics_from_other_client(srv):
    """Fetch /metrics from another loopback source address (127.0.0.2), so
    that this client's exhausted budget cannot hide the metrics."""
    try:
        return srv.get("/metrics", source_ip="127.0.0.2")
    except OSError:
        return srv.get("/metrics")


def test_rate_limit_exhaustion(debate_factory):
    srv = debate_factory(**RATE_ENV)
    for n in range(5):
        r = srv.get("/api/v1/csrf")
        assert r.status == 200, f"request {n + 1} of 5: {r!r}"
    r = srv.get("/api/v1/csrf")
    assert_json_error(r, 429, "rate_limited")
    assert_security_headers(r)
    retry = r.header("Retry-After")
    assert retry is not None and re.fullmatch(r"\d+", retry.strip()), retry
    assert 1 <= int(retry) <= 60, retry
    assert (r.header("RateLimit-Limit") or "").strip().split(",")[0].split(";")[0] == "5", \
        r.header("RateLimit-Limit")
    assert (r.header("RateLimit-Remaining") or "").strip() == "0", r.header("RateLimit-Remaining")
    reset = (r.header("RateLimit-Reset") or "").strip()
    assert re.fullmatch(r"\d+", reset) and 0 <= int(reset) <= 60, reset

    # /health is never rate limited
    for _ in range(3):
        h = srv.get("/health")
        assert h.status == 200, h

    m = _metrics_from_other_client(srv)
    assert m.status == 200, m
    rejections = metric_value(m.text, "debate_http_ratelimit_rejections_total")
    assert rejections is not None and rejections >= 1, rejections


def test_rate_limit_ignores_xff_from_untrusted_peer(debate_factory):
    srv = debate_factory(**RATE_ENV)
    for n in range(5):
        r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", f"203.0.113.{n + 1}")])
        assert r.status == 200, f"request {n + 1}: {r!r}"
    for xff in ("198.51.100.7", "127.0.0.2", "203.0.113.1, 10.0.0.1"):
        r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", xff)])
        assert r.status == 429, f"XFF {xff!r} from an untrusted peer changed identity: {r!r}"
    r = srv.get("/api/v1/csrf", headers=[("X-Real-IP", "198.51.100.8")])
    assert r.status == 429, r


def test_rate_limit_per_client_address(debate_factory):
    srv = debate_factory(**RATE_ENV)
    for _ in range(6):
        last = srv.get("/api/v1/csrf")
    assert last.status == 429, last
    try:
        r = srv.get("/api/v1/csrf", source_ip="127.0.0.2")
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 as a source address")
    assert r.status == 200, r


def test_rate_limit_trusted_proxy_uses_xff(debate_factory):
    srv = debate_factory(DEBATE_TRUSTED_PROXIES="127.0.0.1", **RATE_ENV)
    xff = [("X-Forwarded-For", "203.0.113.5")]
    for n in range(5):
        r = srv.get("/api/v1/csrf", headers=xff)
        assert r.status == 200, f"request {n + 1}: {r!r}"
    r = srv.get("/api/v1/csrf", headers=xff)
    assert r.status == 429, r
    # A different client behind the same trusted proxy has its own budget.
    r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", "198.51.100.9")])
    assert r.status == 200, r
    # The client cannot escape by prepending a spoofed address: the proxy
    # appends the real one, and the right-most untrusted entry is the client.
    r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", "192.0.2.77, 203.0.113.5")])
    assert r.status == 429, f"spoofed left-most XFF entry was believed: {r!r}"


def test_rate_limit_trusted_proxy_reads_every_xff_line(debate_factory):
    # A proxy may add its hop as a header line of its own, after the one the
    # client sent: the lines together are one list, and the client's own
    # line (the first) must not be taken for the proxy's.
    srv = debate_factory(DEBATE_TRUSTED_PROXIES="127.0.0.1", **RATE_ENV)
    for n in range(5):
        r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", f"192.0.2.{n + 1}"),
                                             ("X-Forwarded-For", "203.0.113.5")])
        assert r.status == 200, f"request {n + 1}: {r!r}"
    r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", "192.0.2.99"),
                                         ("X-Forwarded-For", "203.0.113.5")])
    assert r.status == 429, f"a forged first X-Forwarded-For line was believed: {r!r}"
    r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", "203.0.113.5")])
    assert r.status == 429, r


def test_rate_limit_trusted_proxy_range(debate_factory):
    # trusted_proxies takes address ranges: 127.0.0.0/8 holds the test's peer.
    srv = debate_factory(DEBATE_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.0/8", **RATE_ENV)
    xff = [("X-Forwarded-For", "203.0.113.5")]
    for n in range(5):
        r = srv.get("/api/v1/csrf", headers=xff)
        assert r.status == 200, f"request {n + 1}: {r!r}"
    assert srv.get("/api/v1/csrf", headers=xff).status == 429
    r = srv.get("/api/v1/csrf", headers=[("X-Forwarded-For", "198.51.100.9")])
    assert r.status == 200, f"a client behind a proxy in a trusted range shares another's budget: {r!r}"


# ==========================================================================
# Metrics and logs
# ==========================================================================

def test_metrics_count_requests(server):
    def health_count():
        r = server.get("/metrics")
        assert r.status == 200, r
        return metric_value(r.text, "debate_http_requests_total",
                            route="/health", status="200") or 0.0

    before = health_count()
    n = 4
    for _ in range(n):
        assert server.get("/health").status == 200
    after = health_count()
    assert after - before >= n, (before, after)
    assert after >= n


def test_metrics_open_connections_gauge(server):
    idle = [server.connect_tls() for _ in range(3)]
    try:
        time.sleep(0.2)
        r = server.get("/metrics")
        value = metric_value(r.text, "debate_http_open_connections")
        assert value is not None and value >= 3, value
    finally:
        for c in idle:
            c.close()


def _find_log_line(srv, request_id, timeout=3.0):
    deadline = time.monotonic() + timeout
    pat = re.compile(r'\bid="?' + re.escape(request_id) + r'"?(\s|$)')
    while True:
        for line in srv.stderr().splitlines():
            if pat.search(line):
                return line
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def _log_field(line, key):
    m = re.search(r'(?:^|\s)' + re.escape(key) + r'=("(?:[^"\\]|\\.)*"|\S*)', line)
    if not m:
        return None
    v = m.group(1)
    return v[1:-1] if v.startswith('"') else v


def test_access_log_line(server):
    r = server.get("/health")
    assert r.status == 200
    rid = r.header("X-Request-Id")
    line = _find_log_line(server, rid)
    assert line is not None, \
        f"no log line with id={rid}; stderr tail:\n{server.stderr()[-2000:]}"
    assert _log_field(line, "method") == "GET", line
    assert _log_field(line, "path") == "/health", line
    assert _log_field(line, "status") == "200", line
    assert "127.0.0.1" in (_log_field(line, "peer") or ""), line
    assert re.fullmatch(r"\d+", _log_field(line, "bytes") or ""), line
    assert re.fullmatch(r"\d+(\.\d+)?", _log_field(line, "dur_ms") or ""), line


def test_access_log_for_errors(server):
    r = server.get("/nope")
    assert r.status == 404
    line = _find_log_line(server, r.header("X-Request-Id"))
    assert line is not None, server.stderr()[-2000:]
    assert _log_field(line, "status") == "404", line
    assert _log_field(line, "path") == "/nope", line


# ==========================================================================
# CORS
# ==========================================================================

def test_cors_preflight_allowed(server):
    r = server.request("OPTIONS", "/api/v1/csrf", headers=[
        ("Origin", SHARED_CORS_ORIGIN), ("Access-Control-Request-Method", "GET")])
    assert r.status == 204, r
    assert r.header_all("Access-Control-Allow-Origin") == [SHARED_CORS_ORIGIN], r
    vary = ",".join(r.header_all("Vary")).lower()
    assert "origin" in [v.strip() for v in vary.split(",")], r
    assert_security_headers(r)


@pytest.mark.parametrize("origin", [
    "https://evil.example", "https://app.example.evil.com", "http://app.example",
    "https://app.example:8443", "null",
])
def test_cors_preflight_denied(server, origin):
    r = server.request("OPTIONS", "/api/v1/csrf", headers=[
        ("Origin", origin), ("Access-Control-Request-Method", "GET")])
    assert_json_error(r, 403, "cors_denied")
    assert r.header("Access-Control-Allow-Origin") is None, r


def test_cors_simple_get(server):
    r = server.get("/health", headers=[("Origin", SHARED_CORS_ORIGIN)])
    assert r.status == 200
    assert r.header_all("Access-Control-Allow-Origin") == [SHARED_CORS_ORIGIN], r
    r = server.get("/health", headers=[("Origin", "https://evil.example")])
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") is None, r
    r = server.get("/health")
    assert r.header("Access-Control-Allow-Origin") is None, r


# ==========================================================================
# serve --check and startup output
# ==========================================================================

def _run_check(workdir, **env):
    https_port, http_port = free_ports(2)
    base = {"DEBATE_DATA_DIR": str(workdir / "data"),
            "DEBATE_HTTPS_PORT": https_port, "DEBATE_HTTP_PORT": http_port}
    base.update(env)
    return subprocess.run([debate_bin(), "serve", "--check"], env=clean_env(base),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=15)


def test_check_valid_config(scratch_dir):
    p = _run_check(scratch_dir, DEBATE_RATE_LIMIT=50, DEBATE_THREADS=2,
                   DEBATE_CORS_ORIGINS="https://a.example,https://b.example")
    assert p.returncode == 0, p.stderr.decode(errors="replace")


@pytest.mark.parametrize("var,value,expect", [
    ("DEBATE_RATE_LIMIT", "abc", "DEBATE_RATE_LIMIT"),
    ("DEBATE_RATE_LIMIT", "-5", "DEBATE_RATE_LIMIT"),
    ("DEBATE_HTTPS_PORT", "70000", "DEBATE_HTTPS_PORT"),
    ("DEBATE_HTTP_PORT", "8o80", "DEBATE_HTTP_PORT"),
    ("DEBATE_RATE_WINDOW", "abc", "DEBATE_RATE_WINDOW"),
    ("DEBATE_MAX_BODY_BYTES", "12x", "DEBATE_MAX_BODY_BYTES"),
    ("DEBATE_REQUEST_TIMEOUT", "soon", "DEBATE_REQUEST_TIMEOUT"),
    # cert without key: the message must name the key setting (as
    # DEBATE_TLS_KEY or its config-file name tls_key)
    ("DEBATE_TLS_CERT", "/nonexistent/cert.pem", "TLS_KEY"),
])
def test_check_invalid_config(scratch_dir, var, value, expect):
    p = _run_check(scratch_dir, **{var: value})
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, f"{var}={value} accepted; stderr: {err!r}"
    assert expect.lower() in err.lower(), f"stderr does not name {expect}: {err!r}"


def test_startup_banner(debate_factory):
    srv = debate_factory()
    problems = srv.stop()
    assert not problems, problems
    out = srv.stdout()
    assert re.search(r"https://[^\s:/]+:%d\b" % srv.https_port, out), out
    assert re.search(r"http://[^\s:/]+:%d\b" % srv.http_port, out), out
    assert str(srv.ca_path) in out or "tls/ca.pem" in out, out


# ==========================================================================
# Graceful shutdown
# ==========================================================================

def _new_connection_served(srv):
    """True if a brand-new client gets an HTTP response."""
    try:
        conn = srv.connect_tls(timeout=1.5)
    except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError,
            socket.timeout, OSError):
        return False
    with conn:
        conn.send(build_request("GET", "/health", srv.host))
        try:
            conn.read_response(timeout=1.5)
            return True
        except (NoResponse, ResponseTimeout, AssertionError):
            return False


def test_sigterm_drains_inflight_request(debate_factory):
    srv = debate_factory(DEBATE_DRAIN_TIMEOUT=10)
    token, _ = srv.csrf_token()
    head = build_request("POST", "/api/v1/builds", srv.host,
                         headers=json_post_headers(token) + [("Content-Length", "10")])
    conn = srv.connect_tls()
    try:
        assert conn.send(head + b"{\"a\":"), conn.send_error
        time.sleep(0.3)                      # let the server read the head
        srv.signal(signal.SIGTERM)
        t_term = time.monotonic()
        time.sleep(0.5)
        assert srv.proc.poll() is None, "server exited with a request in flight"
        assert not _new_connection_served(srv), "new connection served after SIGTERM"
        assert conn.send(b" 1} \n"), f"in-flight connection closed: {conn.send_error!r}"
        r = conn.read_response(timeout=10)
    finally:
        conn.close()
    assert r.status < 500, r
    assert r.status == 400, r                # the route read the whole body: {"a": 1} is no submission
    rc = srv.wait_exit(timeout=5)
    assert rc == 0, f"exit code {rc} ({time.monotonic() - t_term:.1f}s after SIGTERM)"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.https_port), timeout=2).close()


def test_a_port_another_server_holds_is_refused(debate_factory):
    """SO_REUSEPORT must not let a second server share a port: the kernel
    would split the first one's connections between the two."""
    first = debate_factory()
    workdir = Path(tempfile.mkdtemp(prefix="debate-port-"))
    workdir.chmod(0o711)
    try:
        env = clean_env({"DEBATE_DATA_DIR": str(workdir / "data"), "DEBATE_LISTEN": "127.0.0.1",
                         "DEBATE_HTTPS_PORT": first.https_port, "DEBATE_HTTP_PORT": free_ports(1)[0],
                         "DEBATE_THREADS": 2})
        p = subprocess.run([debate_bin(), "serve"], env=env, cwd=str(workdir), capture_output=True,
                           text=True, timeout=120)
        assert p.returncode != 0, p.stdout
        assert f"port {first.https_port}: the port is in use by another program" in p.stderr, p.stderr
        assert first.get("/health").status == 200
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
