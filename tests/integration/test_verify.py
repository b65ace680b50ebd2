"""debate verify, what it refuses before any rebuild: usage errors, an ISO
or a manifest that cannot be read or is no manifest, a lock that is not
valid, --diffoscope without diffoscope. Each is cheap (no build), so they
run in both the release and the sanitizer runs.

The verdicts on real images (match offline, differs naming the squashfs's
file, the boot catalog and the GRUB image) share the tiny build of
test_build.py; a build of a server with --build is in test_client.py.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SANITIZER_MARKERS, clean_env, debate_bin

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny.json"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="debate verify runs as root")


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="debate-verify-"))
    (d / "data").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def verify(work, *args):
    p = subprocess.run([debate_bin(), "verify", *map(str, args)], capture_output=True, text=True, timeout=60,
                       env=clean_env({"DEBATE_DATA_DIR": str(work / "data")}), stdin=subprocess.DEVNULL)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, f"debate verify: {marker}\n{p.stderr[-4000:]}"
    return p


def canonical_tiny():
    out = subprocess.run([debate_bin(), "hash", str(TINY)], capture_output=True, text=True, check=True).stdout
    canonical, config_hash = out.split("\n")[:2]
    return json.loads(canonical), config_hash


def write_manifest(work, doc, name="x.iso"):
    """An ISO (not a real one: these errors come before it is read) and doc as its manifest beside it."""
    iso = work / name
    iso.write_bytes(b"\0" * 4096)
    Path(f"{iso}.manifest.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return iso


def test_a_missing_iso_exits_2_naming_it(work):
    p = verify(work, work / "nothing.iso")
    assert p.returncode == 2, p.stderr
    assert p.stderr == f'debate verify: cannot read the ISO "{work}/nothing.iso": No such file or directory\n'
    assert p.stdout == ""


def test_a_missing_manifest_exits_2_naming_it(work):
    iso = work / "x.iso"
    iso.write_bytes(b"\0" * 4096)
    p = verify(work, iso)
    assert p.returncode == 2, p.stderr
    assert p.stderr == f'debate verify: cannot read the manifest "{iso}.manifest.json": No such file or directory\n'


@pytest.mark.parametrize("doc, words", [
    ("{not json", "is not JSON: line 1: "),
    ({"recipe": {}}, "is not a manifest of debate build (it wants format, recipe and lock)"),
    ({"format": 2, "recipe": {}, "lock": {}}, "has format 2; this debate reads format 1"),
])
def test_a_manifest_that_is_not_one_exits_2(work, doc, words):
    iso = write_manifest(work, doc)
    p = verify(work, iso)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f'debate verify: "{iso}.manifest.json" {words}'), p.stderr
    assert p.stdout == ""


def test_the_manifests_recipe_is_checked_as_a_recipe(work):
    recipe, config_hash = canonical_tiny()
    recipe["packages"] = "busybox-static"
    iso = write_manifest(work, {"format": 1, "recipe": recipe, "lock": {}, "config_hash": config_hash})
    p = verify(work, iso)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("debate verify: the manifest's recipe: packages: "), p.stderr


def test_a_config_hash_that_is_not_the_recipes_exits_2(work):
    recipe, config_hash = canonical_tiny()
    iso = write_manifest(work, {"format": 1, "recipe": recipe, "lock": {}, "config_hash": "0" * 64})
    p = verify(work, iso)
    assert p.returncode == 2, p.stderr
    assert p.stderr == f"debate verify: the manifest's config_hash {'0' * 64} is not its recipe's ({config_hash})\n"


def test_fields_it_does_not_know_are_ignored_and_the_lock_is_checked_before_the_rebuild(work):
    """A later debate may add fields to the manifest: they are no error. The lock is checked as debate build
    --lock checks it, before anything is downloaded or built (exit 2, and no work directory is left)."""
    recipe, config_hash = canonical_tiny()
    iso = write_manifest(work, {"format": 1, "recipe": recipe, "config_hash": config_hash, "lock": {"format": 1},
                                "a_field_of_tomorrow": {"x": [1, 2]}}, name="other.iso")
    p = verify(work, "--manifest", f"{iso}.manifest.json", iso)
    assert p.returncode == 2, p.stderr
    assert 'debate verify: rebuilding "tiny" from the manifest\'s lock\n' in p.stderr, p.stderr
    assert "debate verify: the rebuild: " in p.stderr and "lock" in p.stderr.split("the rebuild: ")[1], p.stderr
    assert p.stdout == ""
    assert list((work / "data" / "verify").iterdir()) == []


@pytest.mark.skipif(shutil.which("diffoscope") is not None, reason="diffoscope is installed here")
def test_diffoscope_that_is_not_installed_is_said_before_anything_else(work):
    p = verify(work, work / "nothing.iso", "--diffoscope", work / "report")
    assert p.returncode == 2, p.stderr
    assert p.stderr == "debate verify: --diffoscope needs diffoscope, which is not installed " \
                       "(apt-get install diffoscope)\n"
    assert not (work / "report").exists()


@pytest.mark.parametrize("args, problem", [
    ([], "the ISO is missing"),
    (["x.iso", "--build", "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11"], 'unexpected argument "x.iso"'),
    (["x.iso", "--server", "https://builds.example"], "--server and --cacert go with --build ID"),
    (["--build", "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11", "--manifest", "m.json"],
     "--manifest is for a local ISO; --build downloads the build's own"),
])
def test_usage_errors_exit_2_naming_the_problem(work, args, problem):
    p = verify(work, *args)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"debate verify: {problem}\n\nusage: debate verify "), p.stderr
