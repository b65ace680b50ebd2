"""The OpenAPI document (docs/openapi.json, served at /api/v1/openapi.json):
served as built, valid by Redocly CLI's lint (tests/openapi pins it), and
true: every route's success and error answers, as a real server gives
them, match the document's schemas. That every route is described and
every described operation is a route is checked against the routing table
itself, in tests/unit/test_openapi.c.
"""

import hashlib
import json
import os
import subprocess

import pytest

from apidoc import REPO, check_answer, load_doc, make_index

OPENAPI_DIR = REPO / "tests" / "openapi"


@pytest.fixture(scope="module")
def doc():
    return load_doc()


def test_served_document_is_docs_openapi_json(server):
    r = server.get("/api/v1/openapi.json")
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    data = (REPO / "docs" / "openapi.json").read_bytes()
    assert r.body == data
    assert r.header("ETag") == '"%s"' % hashlib.sha256(data).hexdigest()
    assert json.loads(r.body)["openapi"] == "3.1.0"
    again = server.get("/api/v1/openapi.json", headers=[("If-None-Match", r.header("ETag"))])
    assert again.status == 304


def test_document_lints_clean_with_redocly():
    cli = OPENAPI_DIR / "node_modules" / ".bin" / "redocly"
    if not cli.exists():
        pytest.skip("Redocly CLI is not installed: scripts/install-deps.sh --test (npm ci in tests/openapi)")
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_COLOR="1")
    p = subprocess.run([str(cli), "lint", "--config", str(OPENAPI_DIR / "redocly.yaml"),
                        str(REPO / "docs" / "openapi.json")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "valid" in (p.stdout + p.stderr)


# --------------------------------------------------------------------------
# every route's answers against the document
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(request):
    """A server without workers (builds stay queued) and with a package index."""
    from conftest import DebateServer, _finish, _own_tmpdir
    import shutil
    workdir = _own_tmpdir("debate-apidoc-")
    srv = DebateServer(workdir, {"DEBATE_RATE_LIMIT": 100000, "DEBATE_WORKERS": 0,
                                 "DEBATE_MAX_BODY_BYTES": 65536})
    make_index(srv.data_dir)
    srv.start()
    srv.token = srv.csrf_token()[0]
    yield srv
    try:
        _finish([srv], request)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def post(srv, path, body, token=None, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = (srv.csrf_headers(token or srv.token) if token is not False else []) + [("Content-Type", ctype)]
    return srv.request("POST", path, body=data, headers=headers)


def answer(doc, srv, template, method, r, status):
    assert r.status == status, (method, template, r)
    check_answer(doc, template, method, r)
    return r


@pytest.fixture(scope="module")
def submitted(api, doc):
    recipe = json.loads((REPO / "examples" / "tiny.json").read_text())
    r = answer(doc, api, "/api/v1/builds", "POST", post(api, "/api/v1/builds", {"recipe": recipe}), 202)
    return r.json()


def test_operations_answers_match(api, doc):
    answer(doc, api, "/health", "GET", api.get("/health"), 200)
    answer(doc, api, "/health", "GET", api.get("/health", host="evil.example"), 400)
    r = api.get("/ready")
    answer(doc, api, "/ready", "GET", r, r.status)
    answer(doc, api, "/api/v1/health/db", "GET", api.get("/api/v1/health/db"), 200)
    answer(doc, api, "/metrics", "GET", api.get("/metrics"), 200)
    answer(doc, api, "/api/v1/csrf", "GET", api.get("/api/v1/csrf"), 200)
    answer(doc, api, "/api/v1/openapi.json", "GET", api.get("/api/v1/openapi.json"), 200)


def test_submit_answers_match(api, doc, submitted):
    assert submitted["cache"] == "miss" and "cancel_token" in submitted
    recipe = json.loads((REPO / "examples" / "tiny.json").read_text())
    merged = answer(doc, api, "/api/v1/builds", "POST", post(api, "/api/v1/builds", {"recipe": recipe}), 202)
    assert merged.json()["merged"] is True
    for body, status in ((b"{x", 400), ({"recipe": {"name": "BAD"}}, 400), ({"recipe": recipe, "x": 1}, 400),
                         ({"recipe": recipe, "lock": {"format": 9}}, 400)):
        answer(doc, api, "/api/v1/builds", "POST", post(api, "/api/v1/builds", body), status)
    answer(doc, api, "/api/v1/builds", "POST", post(api, "/api/v1/builds", {"recipe": recipe}, token=False), 403)
    answer(doc, api, "/api/v1/builds", "POST", post(api, "/api/v1/builds", b"a=b", ctype="text/plain"), 415)
    answer(doc, api, "/api/v1/builds", "POST", post(api, "/api/v1/builds", b"x" * 70000), 413)


def test_build_reading_answers_match(api, doc, submitted):
    bid = submitted["build"]["id"]
    answer(doc, api, "/api/v1/builds", "GET", api.get("/api/v1/builds?limit=5"), 200)
    answer(doc, api, "/api/v1/builds", "GET", api.get("/api/v1/builds?status=nope"), 400)
    answer(doc, api, "/api/v1/builds", "GET", api.get("/api/v1/builds?limit=0"), 400)
    answer(doc, api, "/api/v1/builds/{id}", "GET", api.get(f"/api/v1/builds/{bid}"), 200)
    answer(doc, api, "/api/v1/builds/{id}", "GET", api.get("/api/v1/builds/nope"), 404)
    answer(doc, api, "/api/v1/builds/{id}/log", "GET", api.get(f"/api/v1/builds/{bid}/log"), 200)
    answer(doc, api, "/api/v1/builds/{id}/log", "GET", api.get("/api/v1/builds/nope/log"), 404)
    answer(doc, api, "/api/v1/builds/{id}/iso", "GET", api.get(f"/api/v1/builds/{bid}/iso"), 404)
    answer(doc, api, "/api/v1/builds/{id}/manifest", "GET", api.get(f"/api/v1/builds/{bid}/manifest"), 404)
    answer(doc, api, "/api/v1/builds/{id}/manifest", "GET", api.get("/api/v1/builds/nope/manifest"), 404)


def test_cancel_answers_match(api, doc, submitted):
    bid = submitted["build"]["id"]
    path = f"/api/v1/builds/{bid}/cancel"
    answer(doc, api, "/api/v1/builds/{id}/cancel", "POST", post(api, path, {"cancel_token": "x" * 43}), 403)
    answer(doc, api, "/api/v1/builds/{id}/cancel", "POST", post(api, path, {"nope": 1}), 400)
    answer(doc, api, "/api/v1/builds/{id}/cancel", "POST",
           post(api, "/api/v1/builds/00000000-0000-0000-0000-000000000000/cancel", {"cancel_token": "x"}), 404)
    ok = answer(doc, api, "/api/v1/builds/{id}/cancel", "POST",
                post(api, path, {"cancel_token": submitted["cancel_token"]}), 202)
    assert ok.json()["build"]["status"] == "cancelled"
    answer(doc, api, "/api/v1/builds/{id}/cancel", "POST",
           post(api, path, {"cancel_token": submitted["cancel_token"]}), 409)
    finished = answer(doc, api, "/api/v1/builds/{id}", "GET", api.get(f"/api/v1/builds/{bid}"), 200)
    assert finished.json()["status"] == "cancelled"


def test_editor_answers_match(api, doc):
    answer(doc, api, "/api/v1/packages", "GET", api.get("/api/v1/packages?release=bookworm&q=vi"), 200)
    answer(doc, api, "/api/v1/packages", "GET", api.get("/api/v1/packages?q=%3C"), 400)
    recipe = json.loads((REPO / "examples" / "tiny.json").read_text())
    answer(doc, api, "/api/v1/recipes/validate", "POST", post(api, "/api/v1/recipes/validate", {"recipe": recipe}), 200)
    answer(doc, api, "/api/v1/recipes/validate", "POST",
           post(api, "/api/v1/recipes/validate", {"recipe": {"name": "-"}}), 200)
    answer(doc, api, "/api/v1/recipes/validate", "POST", post(api, "/api/v1/recipes/validate", b"[1]"), 400)


def test_page_answers_match(api, doc):
    answer(doc, api, "/", "GET", api.get("/"), 200)
    answer(doc, api, "/builds/{id}", "GET", api.get("/builds/x"), 200)
    answer(doc, api, "/assets/{name}", "GET", api.get("/assets/index.html"), 200)
    answer(doc, api, "/assets/{name}", "GET", api.get("/assets/nope.css"), 404)


def test_rate_limited_answers_match(debate_factory, doc):
    srv = debate_factory(DEBATE_RATE_LIMIT=2, DEBATE_RATE_WINDOW=60, DEBATE_WORKERS=0)
    for _ in range(2):
        srv.get("/api/v1/packages")
    r = srv.get("/api/v1/packages")
    answer(doc, srv, "/api/v1/packages", "GET", r, 429)
    assert r.header("Retry-After")
