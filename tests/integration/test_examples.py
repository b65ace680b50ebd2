"""Every recipe in examples/ parses (`debate hash`) and resolves against the
mirror (`debate lock`): a misspelt or missing package fails here in
seconds, before anyone waits for a build. Building each example for real is
test_build.py's release-only work."""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import clean_env, debate_bin

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3, EXAMPLES


@pytest.fixture(scope="module")
def data_dir():
    # Shared by the module: the signed indexes are fetched once. Searchable
    # by others, as the embedded tools may run as another user.
    d = Path(tempfile.mkdtemp(prefix="debate-examples-"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def debate(data_dir, *args, timeout=300):
    return subprocess.run([debate_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          env=clean_env({"DEBATE_DATA_DIR": str(data_dir)}), stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("recipe", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_parses_and_locks(data_dir, recipe):
    r = debate(data_dir, "hash", str(recipe))
    assert r.returncode == 0, f"debate hash {recipe.name}: {r.stderr}"
    canonical, config_hash = r.stdout.split("\n")[:2]
    assert len(config_hash) == 64, r.stdout
    wanted = json.loads(canonical)["packages"]

    r = debate(data_dir, "lock", str(recipe))
    assert r.returncode == 0, f"debate lock {recipe.name}: {r.stderr}"
    lock = json.loads(r.stdout)
    names = {p["name"] for p in lock["packages"]}
    missing = sorted(set(wanted) - names)
    assert not missing, f"{recipe.name}: the lock lacks {missing}"
    assert f"debate lock: {len(lock['packages'])} packages, lock_hash " in r.stderr, r.stderr
