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


# ---- suites and components: what a current-format lock resolves from ----

def packages_index(data_dir, inrelease_sha256):
    """name -> version of the signed Packages.xz that resolution kept for a
    suite (the highest version when the index lists several)."""
    import lzma
    path = data_dir / "cache" / "indexes" / inrelease_sha256 / "Packages.xz"
    versions = {}
    for stanza in lzma.decompress(path.read_bytes()).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if "Package" in fields and (fields["Package"] not in versions
                                    or newer(fields["Version"], versions[fields["Package"]])):
            versions[fields["Package"]] = fields["Version"]
    return versions


def newer(a, b):
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0


def lock_of(data_dir, tmp, recipe, *args):
    path = Path(tmp) / "recipe.json"
    path.write_text(json.dumps(recipe))
    return debate(data_dir, "lock", str(path), *args)


def security_fix(security, release, prefer):
    """A package the security suite has in a version newer than the
    release's: one of prefer when there is one, else the first by name."""
    fixes = sorted(n for n, v in security.items() if n in release and newer(v, release[n]))
    assert fixes, "the security suite has no fix newer than the release: nothing to check"
    return next((n for n in prefer if n in fixes), fixes[0])


def test_a_trixie_lock_takes_the_security_suite_s_newer_versions(data_dir, tmp_path):
    # The tiny example's lock, as the build makes it; its suites' indexes
    # are then in the cache.
    r = debate(data_dir, "lock", str(ROOT / "examples" / "tiny.json"))
    assert r.returncode == 0, r.stderr
    lock = json.loads(r.stdout)
    assert lock["format"] == 2 and lock["release"] == "trixie"
    suites = {s["suite"]: s for s in lock["suites"]}
    assert set(suites) == {"trixie", "trixie-updates", "trixie-security"}
    assert suites["trixie-security"]["mirror"].endswith("/debian-security")
    security = packages_index(data_dir, suites["trixie-security"]["inrelease_sha256"])
    release = packages_index(data_dir, suites["trixie"]["inrelease_sha256"])
    from_security = [p["name"] for p in lock["packages"] if p["suite"] == "trixie-security"]
    if not from_security:
        # The tiny image has no package the security suite fixes today:
        # resolve one that it does fix.
        name = security_fix(security, release, ["tzdata", "libssl3t64", "openssl", "libc6"])
        r = lock_of(data_dir, tmp_path, {"name": "fix", "variant": "busybox", "packages": [name]})
        assert r.returncode == 0, r.stderr
        lock = json.loads(r.stdout)
        from_security = [p["name"] for p in lock["packages"] if p["suite"] == "trixie-security"]
    assert from_security, lock["packages"]
    for p in lock["packages"]:
        if p["name"] in security and p["name"] in release and newer(security[p["name"]], release[p["name"]]):
            # apt's rule: the highest version wins, and the lock says where it came from.
            assert p["suite"] == "trixie-security" and p["version"] == security[p["name"]], p
            assert p["filename"].startswith("pool/updates/"), p


def test_a_firmware_package_comes_from_non_free_firmware(data_dir, tmp_path):
    recipe = {"name": "fw", "variant": "busybox", "packages": ["firmware-realtek"],
              "components": ["main", "non-free-firmware"]}
    r = lock_of(data_dir, tmp_path, recipe)
    assert r.returncode == 0, r.stderr
    lock = json.loads(r.stdout)
    assert lock["components"] == ["main", "non-free-firmware"]
    fw = next(p for p in lock["packages"] if p["name"] == "firmware-realtek")
    assert fw["component"] == "non-free-firmware", fw
    assert fw["filename"].startswith("pool/non-free-firmware/"), fw
    # Without the component the package is not there at all.
    del recipe["components"]
    r = lock_of(data_dir, tmp_path, recipe)
    assert r.returncode == 1
    assert 'unknown package "firmware-realtek" in debian trixie' in r.stderr, r.stderr


def test_an_unreachable_security_mirror_fails_unless_security_is_off(data_dir, tmp_path):
    recipe = {"name": "sec", "variant": "busybox", "packages": ["busybox-static"]}
    closed = "http://127.0.0.1:9/debian-security"
    r = lock_of(data_dir, tmp_path, recipe, "--security-mirror", closed)
    assert r.returncode == 1
    assert f"debate lock: the mirror is unreachable ({closed} trixie-security): " in r.stderr, r.stderr
    r = lock_of(data_dir, tmp_path, dict(recipe, security=False), "--security-mirror", closed)
    assert r.returncode == 0, r.stderr
    lock = json.loads(r.stdout)
    assert [s["suite"] for s in lock["suites"]] == ["trixie", "trixie-updates"]
    assert {p["suite"] for p in lock["packages"]} <= {"trixie", "trixie-updates"}


def test_a_format_1_recipe_locks_as_it_always_did(data_dir):
    r = debate(data_dir, "lock", str(ROOT / "examples" / "tiny-bookworm.json"))
    assert r.returncode == 0, r.stderr
    lock = json.loads(r.stdout)
    # The lock of before suites existed: no suites, components or per-package suite.
    assert sorted(lock) == ["architecture", "date", "format", "inrelease_sha256", "mirror", "packages", "release"]
    assert lock["format"] == 1 and lock["release"] == "bookworm"
    assert sorted(lock["packages"][0]) == ["architecture", "filename", "name", "sha256", "size", "version"]
    r = debate(data_dir, "hash", str(ROOT / "examples" / "tiny-bookworm.json"))
    assert "debate hash: recipe format 1 (an earlier one, read as it always was): debian bookworm" in r.stderr


def test_lock_against_an_older_lock_or_manifest_names_what_changed(data_dir, tmp_path):
    tiny = str(ROOT / "examples" / "tiny.json")
    r = debate(data_dir, "lock", tiny)
    assert r.returncode == 0, r.stderr
    now = json.loads(r.stdout)
    # An older lock: one package at another version from another suite, one
    # the new lock no longer has, one it did not have yet.
    old = json.loads(r.stdout)
    changed, added = old["packages"][0], old["packages"][1]
    was = dict(changed, version=changed["version"] + "~old", suite="trixie-updates")
    old["packages"] = [was] + old["packages"][2:] + [dict(changed, name="zz-gone", version="1")]
    (tmp_path / "old.lock").write_text(json.dumps(old))
    (tmp_path / "old.manifest.json").write_text(json.dumps({"recipe": {"name": "tiny"}, "lock": old}))
    for against in ("old.lock", "old.manifest.json"):
        path = str(tmp_path / against)
        r = debate(data_dir, "lock", tiny, "--against", path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == now
        assert f'debate lock: 3 packages changed since "{path}":' in r.stderr, r.stderr
        assert (f"  changed  {changed['name']} {was['version']} (trixie-updates) -> "
                f"{changed['version']} ({changed['suite']})") in r.stderr, r.stderr
        assert f"  added    {added['name']} {added['version']} ({added['suite']})" in r.stderr, r.stderr
        assert f"  removed  zz-gone 1 ({changed['suite']})" in r.stderr, r.stderr
    r = debate(data_dir, "lock", tiny, "--against", str(tmp_path / "nosuch.lock"))
    assert r.returncode == 1 and r.stdout == ""
    assert f'debate lock: --against cannot read "{tmp_path / "nosuch.lock"}": No such file or directory' in r.stderr
