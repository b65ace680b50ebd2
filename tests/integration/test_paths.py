"""debate build with the paths a user types: a recipe, an output and a lock
relative to the directory the command starts in (`-o tiny.iso`,
`-o ./x.iso`, `-o rel/x.iso`, `--lock rel.lock`) give the same ISO, with its
manifest beside it, as a build with absolute paths; an output whose
directory does not exist is refused at once, saying so.

Each build runs with a temporary directory as its working directory.
DEBATE_DATA_DIR is absolute. The package cache is shared by the module
(DEBATE_TEST_CACHE_DIR names one to reuse across runs), so only the first
build downloads anything.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import file_sha256

ROOT = Path(__file__).resolve().parents[2]
DEBATE = os.environ.get("DEBATE_BIN", str(ROOT / "build" / "debate"))
TINY = ROOT / "examples" / "tiny.json"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="debate build runs as root")




@pytest.fixture(scope="module")
def env():
    """The environment of every command: an absolute data directory, one cache for the module."""
    data = Path(tempfile.mkdtemp(prefix="debate-paths-data-"))
    e = dict(os.environ, DEBATE_DATA_DIR=str(data))
    keep = os.environ.get("DEBATE_TEST_CACHE_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        e["DEBATE_CACHE_DIR"] = str(Path(keep).resolve())
    yield e
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def cwd():
    """A fresh working directory holding a copy of examples/tiny.json."""
    d = Path(tempfile.mkdtemp(prefix="debate-paths-cwd-"))
    shutil.copy(TINY, d / "tiny.json")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def debate(env, cwd, *args, timeout=900):
    return subprocess.run([DEBATE, *args], cwd=str(cwd), capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def reference(env):
    """The ISO's SHA-256 from a build with absolute paths only (fills the cache)."""
    d = Path(tempfile.mkdtemp(prefix="debate-paths-ref-"))
    try:
        out = d / "tiny.iso"
        r = debate(env, "/", "build", str(TINY), "-o", str(out))
        assert r.returncode == 0, r.stderr
        return file_sha256(out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def assert_built(r, cwd, output, reference):
    """The ISO at output (as typed, relative to cwd), its manifest beside it, nothing else left behind."""
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    iso = cwd / output
    assert r.stdout.splitlines()[-1] == f"{reference}  {output}", r.stdout[-500:]
    assert file_sha256(iso) == reference
    manifest = json.loads(Path(f"{iso}.manifest.json").read_text())
    assert manifest["iso_sha256"] == reference
    leftovers = list(iso.parent.glob(".debate-build-*"))
    assert not leftovers, f"work directories left behind: {leftovers}"


@pytest.mark.parametrize("output", ["tiny.iso", "./x.iso", "rel/x.iso"])
def test_relative_recipe_and_output(env, cwd, reference, output):
    (cwd / "rel").mkdir()
    r = debate(env, cwd, "build", "tiny.json", "-o", output)
    assert_built(r, cwd, output, reference)


def test_relative_lock(env, cwd, reference):
    r = debate(env, cwd, "lock", "tiny.json")
    assert r.returncode == 0, r.stderr
    (cwd / "rel.lock").write_text(r.stdout)
    r = debate(env, cwd, "build", "tiny.json", "--lock", "rel.lock", "-o", "locked.iso")
    assert 'using the lock "rel.lock"' in r.stdout, r.stdout[-2000:]
    assert_built(r, cwd, "locked.iso", reference)


def test_an_output_directory_that_does_not_exist_is_named(env, cwd):
    r = debate(env, cwd, "build", "tiny.json", "-o", "nosuch/x.iso")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == 'debate build: the output\'s directory "nosuch" does not exist', r.stderr
    assert not (cwd / "nosuch").exists()
    assert "resolving" not in r.stdout, "it went on to resolve the packages"
