"""The project's own checking tools: scripts/check-layers.py on trees with a
planted violation, and tests/run.py's counting of passed, failed and skipped
tests (a test that did not run is never a pass)."""
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK_LAYERS = ROOT / "scripts" / "check-layers.py"

# A tree every layer of which includes what it may.
CLEAN_TREE = {
    "util.h": "#include <stddef.h>\n",
    "util.c": '#include "util.h"\n#include "log.h"\n',
    "log.h": '#include "util.h"\n',
    "db/store.h": '#include "util.h"\n',
    "db/store.c": '#include "db/store.h"\n#include "store.h"\n#include <libpq-fe.h>\n',
    "engine/recipe.h": '#include "digest.h"\n',
    "engine/engine.c": '#include "engine/recipe.h"\n#include "recipe.h"\n#include "config.h"\n',
    "service/worker.h": '#include "db/store.h"\n#include "engine/recipe.h"\n',
    "service/worker.c": '#include "service/worker.h"\n#include "engine/recipe.h"\n',
    "http/server.h": '#include "db/store.h"\n#include "service/worker.h"\n',
    "http/server.c": textwrap.dedent('''\
        #include "http/server.h"
        #include "server.h"
        /* #include "engine/recipe.h" in a comment is no include,
        #include "engine/recipe.h" nor on the comment's next line */
        // #include "engine/recipe.h"
        #include <h2o.h>
        '''),
    "cmd/build.c": '#include "engine/recipe.h"\n#include "http/server.h"\n#include "db/store.h"\n',
    "main.c": '#include "engine/recipe.h"\n#include "http/server.h"\n#include "service/worker.h"\n',
}


def make_tree(base, files):
    src = base / "src"
    for rel, text in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in ("digest.h", "config.h"):
        (src / rel).write_text("")
    return src


def check_layers(src):
    return subprocess.run([sys.executable, str(CHECK_LAYERS), str(src)], capture_output=True, text=True,
                          timeout=60)


def test_a_clean_tree_passes(tmp_path):
    r = check_layers(make_tree(tmp_path, CLEAN_TREE))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("check-layers: ") and "every include within its layer" in r.stdout, r.stdout


# (file, its text, the violation reported)
PLANTED = [
    ("http/routes.c", '#include "http/server.h"\n#include "engine/recipe.h"\n',
     'src/http/routes.c:2: includes "engine/recipe.h": http/ may not include engine/ headers'),
    ("http/routes.c", '#include <engine/recipe.h>\n',
     'src/http/routes.c:1: includes "engine/recipe.h": http/ may not include engine/ headers'),
    ("http/routes.c", '#include "../engine/recipe.h"\n',
     'src/http/routes.c:1: includes "../engine/recipe.h": http/ may not include engine/ headers'),
    ("db/pool.c", '#include "util.h"\n#include "service/worker.h"\n',
     'src/db/pool.c:2: includes "service/worker.h": db/ may not include service/ headers'),
    ("db/pool.c", '#include "engine/recipe.h"\n',
     'src/db/pool.c:1: includes "engine/recipe.h": db/ may not include engine/ headers'),
    ("db/pool.h", '#include "http/server.h"\n',
     'src/db/pool.h:1: includes "http/server.h": db/ may not include http/ headers'),
    ("engine/stages.c", '#include "db/store.h"\n',
     'src/engine/stages.c:1: includes "db/store.h": engine/ may not include db/ headers'),
    ("engine/stages.c", '#include "service/worker.h"\n',
     'src/engine/stages.c:1: includes "service/worker.h": engine/ may not include service/ headers'),
    ("engine/stages.c", '  #  include "http/server.h"\n',
     'src/engine/stages.c:1: includes "http/server.h": engine/ may not include http/ headers'),
    ("http/routes.c", 'static const char *g = "dir/*";\n#include "engine/recipe.h"\n/* end */\n',
     'src/http/routes.c:2: includes "engine/recipe.h": http/ may not include engine/ headers'),
    ("config.c", '#include "util.h"\n\n#include "db/store.h"\n',
     'src/config.c:3: includes "db/store.h": top-level may not include db/ headers'),
    ("proc.h", '#include "engine/recipe.h"\n',
     'src/proc.h:1: includes "engine/recipe.h": top-level may not include engine/ headers'),
    ("plugins/x.c", '#include "util.h"\n',
     'src/plugins/x.c: no layering rule for src/plugins/'),
]


@pytest.mark.parametrize("rel,text,expected", PLANTED, ids=[f"{p[0]}-{i}" for i, p in enumerate(PLANTED)])
def test_a_planted_violation_fails_and_is_named(tmp_path, rel, text, expected):
    r = check_layers(make_tree(tmp_path, dict(CLEAN_TREE, **{rel: text})))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), r.stdout
    assert "check-layers: 1 layering violation(s)" in r.stderr, r.stderr


def test_every_violation_is_listed(tmp_path):
    files = dict(CLEAN_TREE)
    files["http/a.c"] = '#include "engine/recipe.h"\n'
    files["engine/b.c"] = '#include "db/store.h"\n#include "http/server.h"\n'
    r = check_layers(make_tree(tmp_path, files))
    assert r.returncode == 1
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["src/engine/b.c", "src/engine/b.c",
                                                                       "src/http/a.c"], r.stdout


# --------------------------------------------------------------------------
# tests/run.py: passed, failed and skipped
# --------------------------------------------------------------------------

def load_runner():
    spec = importlib.util.spec_from_file_location("debate_test_runner", ROOT / "tests" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runner():
    return load_runner()


def test_unit_skips_are_counted_with_their_reason(runner):
    tally = runner.Tally()
    out = ("PASS a\nSKIP b: needs root\nFAIL c\nSKIP d: no \"qemu\" here\n"
           "1 passed, 1 failed, 2 skipped\n")
    runner.unit_results(tally, "release: test_x", 1, out, "test_x.c:3: check failed\n")
    assert (tally.passed, tally.failed) == (1, 1)
    assert tally.skips == [("release: test_x.b", "needs root"), ("release: test_x.d", 'no "qemu" here')]
    report = tally.report().splitlines()
    assert report[0] == "SKIPPED release: test_x.b: needs root"
    assert report[1] == 'SKIPPED release: test_x.d: no "qemu" here'
    assert report[2] == "FAILED release: test_x.c"
    assert report[-1] == "1 passed, 1 failed, 2 skipped"
    assert not tally.ok()


def test_a_binary_of_skips_alone_is_no_failure_and_no_pass(runner):
    tally = runner.Tally()
    runner.unit_results(tally, "asan: test_y", 1, "SKIP a: needs root\n0 passed, 0 failed, 1 skipped\n", "")
    assert (tally.passed, tally.failed, len(tally.skips)) == (0, 0, 1)
    assert tally.report().splitlines()[-1] == "0 passed, 0 failed, 1 skipped"
    assert not tally.ok(), "a run where nothing passed passes"


def test_a_silent_crash_is_a_failure(runner):
    tally = runner.Tally()
    runner.unit_results(tally, "asan: test_z", 1, "PASS a\nSKIP b: needs root\n", "AddressSanitizer: leak")
    assert tally.failed == 1 and tally.failures[0][0] == "asan: test_z", tally.failures


def test_pytest_skips_are_counted_with_their_message(runner, tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text(textwrap.dedent('''\
        <?xml version="1.0" encoding="utf-8"?>
        <testsuites><testsuite name="pytest">
        <testcase classname="tests.integration.test_a" name="test_ok" time="0.1"/>
        <testcase classname="tests.integration.test_a" name="test_heavy" time="0.0">
          <skipped type="pytest.skip" message="the live image is built once, in the release run">x</skipped>
        </testcase>
        <testcase classname="tests.integration.test_a" name="test_bad" time="0.1">
          <failure message="assert 1 == 2">trace</failure>
        </testcase>
        </testsuite></testsuites>
        '''))
    tally = runner.Tally()
    runner.junit_results(tally, "release", str(xml))
    assert (tally.passed, tally.failed) == (1, 1)
    assert tally.skips == [("release: tests.integration.test_a.test_heavy",
                            "the live image is built once, in the release run")]
    assert tally.report().splitlines()[-1] == "1 passed, 1 failed, 1 skipped"


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a unit test binary as user nobody")
def test_root_only_unit_tests_are_skipped_as_another_user(runner):
    """The sandbox's unit tests need root: run as nobody they are skipped,
    and the runner counts them as such, not as passes."""
    binary = Path(os.environ.get("DEBATE_BIN", ROOT / "build" / "debate")).parent / "tests" / "test_sandbox"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: make unit", pytrace=False)
    p = subprocess.run(["runuser", "-u", "nobody", "--", str(binary)], capture_output=True, text=True,
                       timeout=120, cwd="/")
    tally = runner.Tally()
    last = runner.unit_results(tally, "test_sandbox", p.returncode, p.stdout, p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    assert ("test_sandbox.payload_exit_code_is_reported", "sandbox_run needs root") in tally.skips, p.stdout
    assert last == f"{tally.passed} passed, 0 failed, {len(tally.skips)} skipped"
    assert tally.passed >= 1 and len(tally.skips) >= 5, p.stdout


def test_plain_make_builds_the_binary():
    """README: `make` builds build/debate (a dry run, as if src/main.c had changed)."""
    p = subprocess.run(["make", "-n", "-W", "src/main.c"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "-o build/debate " in p.stdout, p.stdout
