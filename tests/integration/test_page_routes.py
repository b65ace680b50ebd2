"""The web page's routes and the recipe editor's API, against a real server:
the page and its files from the binary (ETag, 304, gzip, HEAD, the page's
CSP), package completion from a package index placed in the server's cache,
and checking a recipe as debate hash does. Every JSON answer is also checked
against the OpenAPI document.
"""

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from apidoc import INDEX_DATE, REPO, check_answer, load_doc, make_index
from conftest import DebateServer, _finish, _own_tmpdir, build_request, debate_bin, module_server

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
WEB = REPO / "web"


@pytest.fixture(scope="module")
def doc():
    return load_doc()


@pytest.fixture(scope="module")
def page_server(request):
    """A server whose package cache holds one bookworm index (made here) and a trixie one."""
    def indexes(srv):
        srv.index_sha = make_index(srv.data_dir)
        make_index(srv.data_dir, codename="trixie", packages=[("trixie-only", "1", "not bookworm")])

    yield from module_server(request, "debate-page-", {"DEBATE_RATE_LIMIT": 100000, "DEBATE_WORKERS": 0,
                                                       "DEBATE_MAX_BODY_BYTES": 65536}, indexes)


def web_files():
    return sorted(p.name for p in WEB.iterdir() if p.is_file() and not p.name.startswith("."))


def worth_gzip(data):
    """The generator's rule: a gzip copy when it saves at least 10%."""
    return len(gzip.compress(data, 9, mtime=0)) <= len(data) * 0.9


# --------------------------------------------------------------------------
# the page and its files
# --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/builds/6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11", "/builds/no-such-build"])
def test_page_is_index_html_with_the_page_csp(page_server, path):
    r = page_server.get(path)
    assert r.status == 200, r
    body = (WEB / "index.html").read_bytes()
    assert r.body == body
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert r.header("ETag") == '"%s"' % hashlib.sha256(body).hexdigest()
    assert r.header_all("Cache-Control") == ["no-cache"]
    assert r.header_all("Content-Security-Policy") == [PAGE_CSP]
    assert r.header("X-Frame-Options") == "DENY"
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Strict-Transport-Security")


def test_api_answers_keep_the_strict_csp_and_no_store(page_server):
    r = page_server.get("/api/v1/builds/nope")
    assert r.status == 404
    assert r.header_all("Content-Security-Policy") == [API_CSP]
    assert r.header_all("Cache-Control") == ["no-store"]


def test_page_paths_that_are_not_the_page_are_json_404(page_server, doc):
    for path in ("/builds/a/b", "/builds/", "/assets/", "/index.html"):
        r = page_server.get(path)
        assert r.status == 404, (path, r)
        assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("name", web_files())
def test_every_web_file_is_an_asset(page_server, name):
    data = (WEB / name).read_bytes()
    r = page_server.get(f"/assets/{name}")
    assert r.status == 200, r
    assert r.body == data
    assert r.header("ETag") == '"%s"' % hashlib.sha256(data).hexdigest()
    assert r.header_all("Cache-Control") == ["no-cache"]
    assert r.header("Content-Encoding") is None
    if name.endswith((".js", ".css", ".html")):
        assert r.header("Content-Type").endswith("; charset=utf-8"), r.header("Content-Type")


@pytest.mark.parametrize("name", web_files())
def test_assets_go_out_compressed_when_accepted(page_server, name):
    data = (WEB / name).read_bytes()
    r = page_server.get(f"/assets/{name}", headers=[("Accept-Encoding", "br, gzip;q=0.8")])
    assert r.status == 200, r
    if not worth_gzip(data) or name.endswith((".png", ".webp", ".woff2")):
        assert r.header("Content-Encoding") is None
        return
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Vary") == "Accept-Encoding"
    assert gzip.decompress(r.body) == data
    assert r.header("ETag") == '"%s.gz"' % hashlib.sha256(data).hexdigest()
    refused = page_server.get(f"/assets/{name}", headers=[("Accept-Encoding", "gzip;q=0, *")])
    assert refused.header("Content-Encoding") is None and refused.body == data


def test_if_none_match_gives_304(page_server):
    first = page_server.get("/")
    etag = first.header("ETag")
    r = page_server.get("/", headers=[("If-None-Match", f'"other", {etag}')])
    assert r.status == 304, r
    assert r.body == b""
    assert r.header("ETag") == etag
    assert r.header_all("Content-Security-Policy") == [PAGE_CSP]
    stale = page_server.get("/", headers=[("If-None-Match", '"0000"')])
    assert stale.status == 200 and stale.body == first.body
    # The weak comparison (RFC 9110): a weak tag with the same opaque part matches ...
    weak = page_server.get("/", headers=[("If-None-Match", f"W/{etag}")])
    assert weak.status == 304, weak
    # ... but the opaque part is compared exactly, case included.
    upper = page_server.get("/", headers=[("If-None-Match", etag.upper())])
    assert upper.status == 200 and upper.body == first.body
    gz = page_server.get("/assets/index.html", headers=[("Accept-Encoding", "gzip")])
    if gz.header("Content-Encoding") == "gzip":
        again = page_server.get("/assets/index.html", headers=[("Accept-Encoding", "gzip"),
                                                               ("If-None-Match", gz.header("ETag"))])
        assert again.status == 304
        # The identity copy's tag is not the compressed copy's: a cache holding one cannot pass for the other.
        other = page_server.get("/assets/index.html", headers=[("If-None-Match", gz.header("ETag"))])
        assert other.status == 200


def test_head_sends_the_headers_alone(page_server):
    for path in ("/", "/assets/index.html", "/api/v1/openapi.json"):
        with page_server.connect_tls() as conn:
            conn.send(build_request("HEAD", path, page_server.host))
            r = conn.read_response(head_request=True)
            assert conn.read_until_close()[0] == b"", "a body followed the head"
        assert r.status == 200, (path, r)
        full = page_server.get(path)
        assert r.header("Content-Length") == str(len(full.body))
        assert r.header("ETag") == full.header("ETag")


def test_unknown_asset_is_a_json_404(page_server, doc):
    for name in ("nope.js", "..%2Fsrc%2Fmain.c", "%00", "openapi.json"):
        r = page_server.get(f"/assets/{name}")
        assert r.status == 404, (name, r)
        assert r.header("Content-Type") == "application/json"
        assert r.json()["error"]["code"] == "not_found"
    check_answer(doc, "/assets/{name}", "GET", page_server.get("/assets/nope.js"))


def test_assets_are_exempt_from_the_rate_limit_but_the_page_is_not(debate_factory):
    srv = debate_factory(DEBATE_RATE_LIMIT=3, DEBATE_RATE_WINDOW=60, DEBATE_WORKERS=0)
    for _ in range(6):
        r = srv.get("/assets/index.html")
        assert r.status == 200, r
        assert r.header("RateLimit-Limit") is None
    statuses = [srv.get("/").status for _ in range(4)]
    assert statuses == [200, 200, 200, 429], statuses


def test_page_is_served_by_the_sanitizer_build_too():
    """Both variants embed the same table: the asan binary holds web/index.html's tag (its SHA-256)."""
    asan = REPO / "build" / "asan" / "debate"
    if not asan.exists():
        pytest.skip("build/asan/debate is not built")
    tag = hashlib.sha256((WEB / "index.html").read_bytes()).hexdigest()
    assert b'"%s"' % tag.encode() in asan.read_bytes()


def test_editor_leftovers_in_web_are_not_embedded():
    with tempfile.TemporaryDirectory(prefix="debate-embed-") as tmp:
        check_embed_skips_leftovers(Path(tmp))


def check_embed_skips_leftovers(tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html>\n")
    for litter in ("app.js~", ".#app.js", "#app.js#", ".app.js.swp"):
        (web / litter).write_text("old\n")
    out = tmp_path / "assets.c"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "embed-assets.py"), str(out), str(web),
                          str(REPO / "docs" / "openapi.json")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    names = re.findall(r'^    \{"([^"]*)", web_', out.read_text(), re.M)
    assert names == ["index.html"]


# --------------------------------------------------------------------------
# GET /api/v1/packages
# --------------------------------------------------------------------------

def test_packages_prefix_first_then_contains(page_server, doc):
    r = page_server.get("/api/v1/packages?release=bookworm&q=vim&limit=10")
    assert r.status == 200, r
    check_answer(doc, "/api/v1/packages", "GET", r)
    body = r.json()
    assert body["release"] == "bookworm"
    assert body["index"] == page_server.index_sha
    assert body["date"] == INDEX_DATE
    assert [p["name"] for p in body["packages"]] == ["vim", "vim-tiny", "neovim"]
    assert body["packages"][0] == {"name": "vim", "version": "2:9.0.1378-2",
                                   "description": "Vi IMproved - enhanced vi editor"}


def test_packages_defaults_and_limit(page_server):
    # The default release is the current recipe format's: trixie.
    r = page_server.get("/api/v1/packages")
    assert r.status == 200, r
    assert r.json()["release"] == "trixie"
    assert [p["name"] for p in r.json()["packages"]] == ["trixie-only"]
    r = page_server.get("/api/v1/packages?release=bookworm")
    names = [p["name"] for p in r.json()["packages"]]
    assert names == sorted(names) and len(names) == 5 and "trixie-only" not in names
    r = page_server.get("/api/v1/packages?release=bookworm&q=VIM&limit=1")
    assert [p["name"] for p in r.json()["packages"]] == ["vim"]


@pytest.mark.parametrize("query,field", [
    ("release=sid", "release"),
    ("release=buster", "release"),
    ("q=" + "a" * 65, "q"),
    ("q=%3Cscript%3E", "q"),
    ("q=vim%00", "q"),
    ("q=vim&q=vi", "q"),
    ("q=%zz", "q"),
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("limit=ten", "limit"),
    ("limit=-1", "limit"),
    ("limit=+5", "limit"),
    ("sort=name", "sort"),
])
def test_packages_bad_input_names_the_parameter(page_server, doc, query, field):
    r = page_server.get(f"/api/v1/packages?{query}")
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert err["field"] == field, err
    check_answer(doc, "/api/v1/packages", "GET", r)


def test_packages_without_an_index_say_how_to_get_one(debate_factory, doc):
    srv = debate_factory(DEBATE_WORKERS=0)
    r = srv.get("/api/v1/packages?q=vim")
    for _ in range(50):  # the loader's first pass may still be running
        if r.status != 503 or r.json()["error"]["code"] != "index_loading":
            break
        assert r.header("Retry-After") == "1"
        time.sleep(0.1)
        r = srv.get("/api/v1/packages?q=vim")
    assert r.status == 503, r
    err = r.json()["error"]
    assert err["code"] == "index_unavailable"
    assert "debate lock" in err["message"] and "first build" in err["message"]
    check_answer(doc, "/api/v1/packages", "GET", r)


def test_packages_with_an_index_date_that_is_not_utf8_is_a_500(request):
    """An answer that cannot be made JSON is the server's fault: a 500, and the server goes on."""
    workdir = _own_tmpdir("debate-page-")
    srv = DebateServer(workdir, {"DEBATE_WORKERS": 0})
    try:
        make_index(srv.data_dir, date="Sat, 11 Jul 2026 10:16:37 UTC \udce9")
        srv.start()
        r = srv.get("/api/v1/packages?release=bookworm&q=vim")
        for _ in range(50):  # the loader's first pass may still be running
            if r.status != 503:
                break
            time.sleep(0.1)
            r = srv.get("/api/v1/packages?release=bookworm&q=vim")
        assert r.status == 500, r
        assert r.json()["error"]["code"] == "internal_error"
        assert srv.get("/health").status == 200
    finally:
        try:
            _finish([srv], request)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------
# POST /api/v1/recipes/validate
# --------------------------------------------------------------------------

def post_json(srv, path, body, token):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return srv.request("POST", path, body=data, headers=srv.csrf_headers(token) +
                       [("Content-Type", "application/json")])


@pytest.fixture(scope="module")
def token(page_server):
    return page_server.csrf_token()[0]


def debate_hash(recipe, tmp):
    path = Path(tmp) / "recipe.json"
    path.write_text(json.dumps(recipe))
    # errors="replace": a message that cuts a character is shown with U+FFFD, as the server sends it.
    return subprocess.run([debate_bin(), "hash", str(path)], capture_output=True, text=True, errors="replace")


def test_validate_a_good_recipe_gives_debate_hash_s_answer(page_server, doc, token, tmp_path):
    recipe = json.loads((REPO / "examples" / "tiny.json").read_text())
    r = post_json(page_server, "/api/v1/recipes/validate", {"recipe": recipe}, token)
    assert r.status == 200, r
    check_answer(doc, "/api/v1/recipes/validate", "POST", r)
    body = r.json()
    canonical, config_hash = debate_hash(recipe, tmp_path).stdout.splitlines()
    assert body["valid"] is True
    assert body["config_hash"] == config_hash
    assert body["canonical"] == json.loads(canonical)


@pytest.mark.parametrize("recipe", [
    {"name": "x", "packages": ["vim", "Bad Name"]},
    {"name": "x", "release": "sid"},
    {"name": "x", "colour": "blue"},
    {"name": "x", "overlays": [{"path": "relative", "content": "x"}]},
    {"name": "a" + "\u00e9" * 40},          # a message that quotes a cut multi-byte character
    {"name": "<script>alert(1)</script>"},
    {},
])
def test_validate_a_bad_recipe_gives_debate_hash_s_error(page_server, doc, token, tmp_path, recipe):
    r = post_json(page_server, "/api/v1/recipes/validate", {"recipe": recipe}, token)
    assert r.status == 200, r
    check_answer(doc, "/api/v1/recipes/validate", "POST", r)
    body = r.json()
    assert body["valid"] is False
    assert len(body["errors"]) == 1
    err = body["errors"][0]
    cli = debate_hash(recipe, tmp_path)
    assert cli.returncode != 0
    # debate hash prints "debate hash: PATH: MESSAGE".
    want = cli.stderr.strip().split(": ", 2)[2]
    assert err["message"] == want
    if err["field"]:
        assert err["message"].startswith(err["field"] + ": ")


@pytest.mark.parametrize("body,code,field", [
    (b"{not json", "invalid_json", None),
    (b'{"recipe": {"name": "x", "name": "y"}}', "invalid_json", None),
    (b"[]", "invalid_request", None),
    (b'{"recipe": []}', "invalid_request", "recipe"),
    (b'{"recipe": {"name": "x"}, "lock": {}}', "invalid_request", "lock"),
    (b"", "invalid_json", None),
])
def test_validate_malformed_bodies_are_400(page_server, doc, token, body, code, field):
    r = post_json(page_server, "/api/v1/recipes/validate", body, token)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == code
    assert err.get("field") == field
    check_answer(doc, "/api/v1/recipes/validate", "POST", r)


def test_validate_needs_the_csrf_token_and_json(page_server, doc, token):
    r = page_server.request("POST", "/api/v1/recipes/validate", body=b'{"recipe": {"name": "x"}}',
                            headers=[("Content-Type", "application/json")])
    assert r.status == 403 and r.json()["error"]["code"] == "csrf_failed"
    check_answer(doc, "/api/v1/recipes/validate", "POST", r)
    r = page_server.request("POST", "/api/v1/recipes/validate", body=b"recipe=x",
                            headers=page_server.csrf_headers(token) + [("Content-Type", "text/plain")])
    assert r.status == 415
    check_answer(doc, "/api/v1/recipes/validate", "POST", r)


def test_validate_writes_nothing(page_server, token):
    before = page_server.get("/api/v1/builds").json()["builds"]
    recipe = json.loads((REPO / "examples" / "tiny.json").read_text())
    assert post_json(page_server, "/api/v1/recipes/validate", {"recipe": recipe}, token).status == 200
    assert page_server.get("/api/v1/builds").json()["builds"] == before
