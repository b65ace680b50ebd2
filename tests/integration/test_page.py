"""The web page in a real browser (docs/web.md): Debian's Chromium, driven
by tests/browser/page.mjs (playwright-core), against `debate serve` with its
worker and PostgreSQL, building examples/tiny.json for real.

The browser script composes tiny.json by typing into the form, checks the
page's config_hash against `debate hash`, puts a bad package name in and
finds its error beside its input, submits, follows the stages to the end,
downloads the ISO through the page's link, reloads the build's URL, uses the
package completion with the keyboard, cancels a build whose hook sleeps,
watches a build whose hook prints markup fail, and uses the history, the
skip link and the export. Throughout, no console error, uncaught exception
or CSP violation may occur, and axe-core must find no serious or critical
violation. This side then checks what the browser saw against the server:
the downloaded ISO's SHA-256 and size against the build record, and the
cancelled and failed builds' records.

DEBATE_SCREENSHOTS=DIR keeps the screenshots of the compose view and the
finished build there (docs/images/ for the documentation). The package
cache is shared as in test_service.py (DEBATE_TEST_CACHE_DIR to keep one).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import file_sha256, _own_tmpdir, debate_bin
from test_service import (FIRST_BUILD_TIMEOUT, TINY, Api, cache_dir, service, tails,  # noqa: F401 - fixtures
                          tiny_with_hook)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the build service runs builds as root")

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def browser_missing():
    """Why the browser test cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (Node.js 18 or later: scripts/install-deps.sh)"
    for package in ("playwright-core", "axe-core"):
        if not (BROWSER_DIR / "node_modules" / package / "package.json").is_file():
            return f"tests/browser has no {package}: run scripts/install-deps.sh --test"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def config_hash(path):
    p = subprocess.run([debate_bin(), "hash", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()[-1]


def write_json(path, doc):
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return str(path)




def run_browser(config, srv):
    """Runs page.mjs; returns its result object, or fails with its steps."""
    p = subprocess.run(["node", str(BROWSER_DIR / "page.mjs"), config], cwd=str(BROWSER_DIR),
                       capture_output=True, text=True, timeout=3 * FIRST_BUILD_TIMEOUT + 600,
                       stdin=subprocess.DEVNULL)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0, (f"the browser test failed (exit {p.returncode}):\n{p.stdout[-8000:]}\n"
                               f"--- node stderr ---\n{p.stderr[-3000:]}\n{tails(srv)}")
    return json.loads(lines[-1])


# The browser drives the same handlers that test_page_routes.py checks under
# the sanitizers; the browser itself (two minutes under ASan) runs once.
@pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                    reason="the browser run is made once, in the release run")
def test_the_page_in_a_browser(service):  # noqa: F811 - the fixture imported above
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    srv = service.server()
    api = Api(srv)
    page = api.get("/")
    assert page.status == 200 and page.header("Content-Type").startswith("text/html"), page
    assert page.header("Content-Security-Policy") == CSP, page

    work = _own_tmpdir("debate-page-")
    try:
        config = write_json(work / "config.json", {
            "base": f"https://localhost:{srv.https_port}",
            "config_hash": config_hash(TINY),
            "cancel_recipe": write_json(work / "sleeps.json",
                                        tiny_with_hook("20-sleep", "#!/bin/sh\nsleep 4242002\n")),
            "failing_recipe": write_json(work / "fails.json", tiny_with_hook(
                "30-fail", "#!/bin/sh\necho 'MARKUP-BEGIN <img src=x onerror=alert(1)><script>alert(2)</script>'\n"
                           "exit 3\n")),
            "work": str(work),
            "screenshots": os.path.abspath(shots) if (shots := os.environ.get("DEBATE_SCREENSHOTS")) else None,
            "first_build_timeout": FIRST_BUILD_TIMEOUT,
        })
        seen = run_browser(config, srv)

        built = api.build(seen["build_id"])
        assert built["status"] == "succeeded", built
        assert built["config_hash"] == config_hash(TINY), built
        assert seen["iso_sha256_shown"] == built["iso_sha256"], (seen, built)
        assert file_sha256(seen["iso"]) == built["iso_sha256"], "the ISO downloaded through the page"
        assert os.path.getsize(seen["iso"]) == built["iso_size"], built

        cancelled = api.build(seen["cancel_id"])
        assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "cancelled", cancelled
        failed = api.build(seen["failed_id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "hook_failed", failed
    finally:
        shutil.rmtree(work, ignore_errors=True)
