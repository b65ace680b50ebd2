"""A failed build through the API says why everywhere a client looks: the
build record carries the cause's stable code (docs/api.md) and message,
and the build's log, as plain text and as Server-Sent Events, ends with
the error as `debate build` prints it.

Uses the servers and the HTTP client of test_service.py (real PostgreSQL,
the real binary); the recipe names a package the mirror does not have, so
the build fails while resolving and nothing is built.
"""
import os

import pytest

from test_service import Api, Service, cache_dir, tiny_unique  # noqa: F401 - cache_dir is a fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the build service runs builds as root")

UNKNOWN = "no-such-package-zz"
MESSAGE = f'unknown package "{UNKNOWN}" in debian trixie'


@pytest.fixture
def service(request, cache_dir):  # noqa: F811 - the fixture imported above
    s = Service(request, cache_dir)
    yield s
    s.close()


def test_a_failed_build_s_log_ends_with_its_error(service):
    api = Api(service.server(DEBATE_WORKERS=1))
    recipe = tiny_unique(packages=["busybox-static", "linux-image-amd64", UNKNOWN])
    bid = api.submit_ok(recipe)["id"]
    build = api.wait_end(bid, timeout=300)
    assert build["status"] == "failed", build
    assert build["error"] == {"code": "unknown_package", "message": MESSAGE}, build

    text = api.get(f"/api/v1/builds/{bid}/log")
    assert text.status == 200, text
    lines = text.body.decode().splitlines()
    assert lines[-1] == f"error: {MESSAGE}", lines[-5:]

    _, events, _ = api.sse(bid, timeout=60)
    assert events[-1].event == "end", events[-3:]
    logs = [e for e in events if e.event == "log"]
    assert logs and logs[-1].data == f"error: {MESSAGE}", events[-5:]
    assert events[-2] is logs[-1], f"the error is not the last event before end: {events[-3:]}"
