"""debate build: the tiny example built for real, offline, twice under a
hostile environment (same bytes), booted by the engine's boot check
(debate build --boot-check: QEMU with SeaBIOS and OVMF), on
trixie (the current recipe format) and on bookworm (a format 1 recipe), and
every way a build can fail leaving no ISO behind.

The package cache is shared by the module, so only the first build
downloads anything.
"""
import base64
import calendar
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import file_sha256

ROOT = Path(__file__).resolve().parents[2]
DEBATE = os.environ.get("DEBATE_BIN", str(ROOT / "build" / "debate"))
TINY = ROOT / "examples" / "tiny.json"
TINY_BOOKWORM = ROOT / "examples" / "tiny-bookworm.json"
MINIMAL = ROOT / "examples" / "minimal.json"
# The live example takes minutes to build and boot: tests/run.py runs it
# once, with the release binary (the sanitizer build runs the same tools).
heavy = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                           reason="the live image is built once, in the release run")

# debate verify's verdict on a changed copy is a second tiny build: once, in the release run.
heavy_verify = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                                  reason="a rebuild to compare with, once, in the release run")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="debate build runs as root")

# The tiny image on each release a recipe may name: trixie in both runs,
# bookworm (format 1: the meaning recipes had before format 2) once, in the
# release run.
TINY_OF = {"trixie": TINY, "bookworm": TINY_BOOKWORM}
RELEASES = ["trixie", pytest.param("bookworm", marks=heavy)]




@pytest.fixture(scope="module")
def data_dir():
    d = Path(tempfile.mkdtemp(prefix="debate-build-data-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def out_dir():
    d = Path(tempfile.mkdtemp(prefix="debate-build-out-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def build(data_dir, recipe, output, *args, env=None, wrap=(), timeout=600):
    e = dict(os.environ, DEBATE_DATA_DIR=str(data_dir))
    e.update(env or {})
    return subprocess.run(list(wrap) + [DEBATE, "build", str(recipe), "-o", str(output), *args],
                          capture_output=True, text=True, env=e, timeout=timeout)


def assert_no_iso(output):
    assert not Path(output).exists(), f"{output} exists after a failed build"
    assert not Path(f"{output}.manifest.json").exists()
    leftovers = list(Path(output).parent.glob(".debate-build-*"))
    assert not leftovers, f"work directories left behind: {leftovers}"


def write_recipe(tmp, **overrides):
    doc = json.loads(TINY.read_text())
    doc.update(overrides)
    path = Path(tmp) / "recipe.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def tiny_iso(data_dir):
    """The reference build of examples/tiny.json (fills the cache), boot-checked:
    the hostile build, without a boot check, must give the same bytes."""
    d = Path(tempfile.mkdtemp(prefix="debate-build-ref-"))
    out = d / "tiny.iso"
    r = build(data_dir, TINY, out, "--boot-check")
    assert r.returncode == 0, r.stderr
    assert "boot check: bios pass, uefi pass" in r.stdout
    yield out
    shutil.rmtree(d, ignore_errors=True)


def assert_same_bytes_when_hostile(data_dir, recipe, reference, out_dir, *args):
    deep = out_dir / "private" / "elsewhere"
    deep.mkdir(parents=True)
    (out_dir / "private").chmod(0o700)
    out = deep / reference.name
    r = hostile_build(data_dir, recipe, out, *args)
    assert r.returncode == 0, r.stderr
    assert file_sha256(out) == file_sha256(reference)
    return r


@pytest.fixture(scope="module")
def tiny_bookworm_iso(data_dir):
    """examples/tiny-bookworm.json, the format 1 recipe, built once."""
    d = Path(tempfile.mkdtemp(prefix="debate-build-ref-"))
    out = d / "tiny.iso"
    r = build(data_dir, TINY_BOOKWORM, out, "--boot-check")
    assert r.returncode == 0, r.stderr
    yield out
    shutil.rmtree(d, ignore_errors=True)


def tiny_built(request, release):
    return request.getfixturevalue("tiny_iso" if release == "trixie" else "tiny_bookworm_iso")


# The hostile and the overlay-change builds exercise the tools more than debate's own code, which the
# sanitizer run covers through every other build: once, in the release run.
once = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                          reason="a cold build under faketime and a boot check: once, in the release run")


@once
@pytest.mark.parametrize("release", RELEASES)
def test_tiny_is_byte_identical_under_a_hostile_environment(request, data_dir, out_dir, release):
    """Cold: the packages installed again, not taken from the base layer the first build kept."""
    r = assert_same_bytes_when_hostile(data_dir, TINY_OF[release], tiny_built(request, release), out_dir, "--cold")
    assert "installing the packages" in r.stdout and "reusing the base layer" not in r.stdout


def manifest_of(iso):
    return json.loads(Path(f"{iso}.manifest.json").read_text())


def test_a_rebuild_reuses_the_base_layer_and_gives_the_same_bytes(data_dir, tiny_iso, out_dir):
    out = out_dir / "again.iso"
    r = build(data_dir, TINY, out)
    assert r.returncode == 0, r.stderr
    key = manifest_of(tiny_iso)["base_layer"]["key"]
    assert f"reusing the base layer {key[:12]}: no package is installed" in r.stdout
    assert manifest_of(out)["base_layer"] == {"key": key, "reused": True}
    kernel = manifest_of(tiny_iso)["kernel_layer"]["key"]
    assert f"reusing the kernel layer {kernel[:12]}: the initramfs is not made again" in r.stdout
    assert manifest_of(out)["kernel_layer"] == {"key": kernel, "reused": True}
    assert file_sha256(out) == file_sha256(tiny_iso)
    # What the sandbox used at most is recorded, and does not grow from one build to the next.
    first, again = manifest_of(tiny_iso)["resources"], manifest_of(out)["resources"]
    assert 0 < again["memory_peak_bytes"] <= 4096 << 20 and 0 < again["disk_peak_bytes"]
    assert again["disk_peak_bytes"] <= first["disk_peak_bytes"] + (8 << 20)


@once
def test_an_overlay_change_reuses_the_base_boots_and_matches_its_cold_build(data_dir, tiny_iso, out_dir):
    """A recipe that differs from tiny only in an overlay: built on tiny's
    base layer (and boot-checked), then cold: the same bytes."""
    doc = json.loads(TINY.read_text())
    doc["overlays"] = doc.get("overlays", []) + [{"path": "/etc/debate-extra", "content": "only the overlay differs\n"}]
    recipe = out_dir / "overlay.json"
    recipe.write_text(json.dumps(doc))
    reused, cold = out_dir / "reused.iso", out_dir / "cold.iso"
    r = build(data_dir, recipe, reused, "--boot-check")
    assert r.returncode == 0, r.stderr
    key = manifest_of(tiny_iso)["base_layer"]["key"]
    assert f"reusing the base layer {key[:12]}" in r.stdout
    assert "boot check: bios pass, uefi pass" in r.stdout
    r = build(data_dir, recipe, cold, "--cold")
    assert r.returncode == 0, r.stderr
    assert "reusing the base layer" not in r.stdout
    assert manifest_of(cold)["base_layer"] == {"key": key, "reused": False}
    assert file_sha256(reused) == file_sha256(cold) != file_sha256(tiny_iso)


@pytest.mark.parametrize("entry,damaged", [("base_layer", "layer.tar.zst"), ("kernel_layer", "initrd.img")])
def test_a_damaged_layer_is_detected_and_made_again(data_dir, tiny_iso, out_dir, entry, damaged):
    """One flipped byte in a cached layer (the tree after the packages, or
    the busybox kernel stage's initramfs): found before use, removed, made
    again by the build, which still gives the same bytes."""
    key = manifest_of(tiny_iso)[entry]["key"]
    kind, what = {"base_layer": ("bases", "base layer"), "kernel_layer": ("kernels", "kernel layer")}[entry]
    path = data_dir / "cache" / kind / key / damaged
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.unlink(path)  # a new inode: builds holding a link to the old one keep their bytes
    path.write_bytes(bytes(data))
    out = out_dir / "after-damage.iso"
    r = build(data_dir, TINY, out)
    assert r.returncode == 0, r.stderr
    assert f"the {what} {key[:12]} is damaged (its SHA-256 differs)" in r.stdout
    assert f"reusing the {what}" not in r.stdout
    assert f"kept the {what} {key[:12]}" in r.stdout
    assert manifest_of(out)[entry] == {"key": key, "reused": False}
    assert file_sha256(out) == file_sha256(tiny_iso)
    sums = dict(line.split()[::-1] for line in (path.parent / "SHA256SUMS").read_text().splitlines())
    assert file_sha256(path) == sums[damaged]


def test_manifest_describes_the_build(data_dir, tiny_iso):
    m = json.loads(Path(f"{tiny_iso}.manifest.json").read_text())
    canonical, config_hash = subprocess.run([DEBATE, "hash", str(TINY)], capture_output=True, text=True,
                                            check=True).stdout.split("\n")[:2]
    assert m["config_hash"] == config_hash
    assert m["recipe"] == json.loads(canonical)
    assert m["iso_sha256"] == file_sha256(tiny_iso)
    assert m["iso_size"] == tiny_iso.stat().st_size
    lock_canonical = json.dumps(m["lock"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert hashlib.sha256(lock_canonical.encode()).hexdigest() == m["lock_hash"]
    names = {p["name"] for p in m["lock"]["packages"]}
    assert {"busybox-static", "linux-image-amd64"} <= names
    # trixie with its updates and security suites, each package from one of them.
    suites = [s["suite"] for s in m["lock"]["suites"]]
    assert suites == ["trixie", "trixie-updates", "trixie-security"]
    assert {p["suite"] for p in m["lock"]["packages"]} <= set(suites)
    assert m["security_mirror"] == m["lock"]["suites"][2]["mirror"]
    # SOURCE_DATE_EPOCH is the Date of the signed release file the lock pins.
    date = m["lock"]["date"]
    assert m["source_date_epoch"] == calendar.timegm(time.strptime(date, "%a, %d %b %Y %H:%M:%S UTC"))
    for tool in ("xorriso", "squashfs-tools", "mmdebstrap", "mtools", "dosfstools", "grub-efi-amd64-bin"):
        assert tool in m["tools"], tool
    assert len(m["squashfs_sha256"]) == 64


def boot(iso, firmware, markers=(b"DEBATE-BOOTED tiny", b"debate tiny image"), memory="512", timeout=300,
         drives=(), wrap=()):
    """Boots the ISO under QEMU (software emulation); returns the serial output
    once every marker has appeared on it, or fails. drives: more -drive
    values (test_cgroup2.py's test disk); wrap: a command QEMU runs under
    (nice). The live example's own marker comes after the boot check's
    (systemd's first status line), so it is booted here; the tiny image's
    boots are the engine's."""
    tmp = Path(tempfile.mkdtemp(prefix="debate-boot-"))
    fw = []
    if firmware == "uefi":
        shutil.copy("/usr/share/OVMF/OVMF_VARS_4M.fd", tmp / "vars.fd")
        fw = ["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
              "-drive", f"if=pflash,format=raw,unit=1,file={tmp / 'vars.fd'}"]
    more = [arg for d in drives for arg in ("-drive", d)]
    cmd = [*wrap, "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", memory, "-smp", "1", *fw,
           "-drive", f"file={iso},media=cdrom,if=ide,readonly=on,format=raw", *more, "-boot", "d",
           "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-net", "none"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(p.stdout.fileno(), False)
    try:
        while time.monotonic() < deadline and p.poll() is None:
            chunk = p.stdout.read()
            if chunk:
                out += chunk
                if all(m in out for m in markers):
                    return out.decode(errors="replace")
            time.sleep(0.2)
        pytest.fail(f"{firmware}: no boot marker within {timeout} s; console:\n"
                    + out.decode(errors="replace")[-3000:])
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def boot_console(iso, firmware):
    """The console of one firmware's boot in the engine's boot check log
    (ISO.boot.log: a "== FIRMWARE: VERDICT ... ==" line, then the console)."""
    log = Path(f"{iso}.boot.log").read_text(errors="replace")
    parts = re.split(r"^== (bios|uefi): ", log, flags=re.M)
    consoles = dict(zip(parts[1::2], parts[2::2]))
    assert firmware in consoles, log[-3000:]
    return consoles[firmware]


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_tiny_boots(request, release, firmware):
    iso = tiny_built(request, release)
    console = boot_console(iso, firmware)
    assert console.startswith("pass"), console[-3000:]
    assert "DEBATE-BOOTED tiny" in console
    # The hook ran inside the image, the overlay is there, the host name is the recipe's.
    assert "marker: DEBATE-TINY-BOOTED" in console
    assert "debate tiny image" in console
    verdict = json.loads(Path(f"{iso}.manifest.json").read_text())["boot_check"]
    assert verdict[firmware] == "pass" and verdict["result"] == "pass"
    assert verdict["seconds"] > 0


def test_a_build_without_boot_check_has_no_verdict(data_dir, tiny_iso, out_dir):
    """Same bytes without the check (the hostile build), and no verdict in its manifest."""
    out = out_dir / "plain.iso"
    r = build(data_dir, TINY, out)
    assert r.returncode == 0, r.stderr
    assert file_sha256(out) == file_sha256(tiny_iso)
    assert "boot_check" not in json.loads(Path(f"{out}.manifest.json").read_text())
    assert not Path(f"{out}.boot.log").exists()


def test_a_boot_check_needs_a_serial_console(data_dir, out_dir):
    recipe = write_recipe(out_dir, boot={"bios": True, "uefi": True, "cmdline": "console=tty0"})
    r = build(data_dir, recipe, out_dir / "x.iso", "--boot-check")
    assert r.returncode == 1
    assert "--boot-check: boot.cmdline:" in r.stderr and "console=ttyS0" in r.stderr
    assert_no_iso(out_dir / "x.iso")


def test_an_image_whose_init_exits_fails_its_boot_check(data_dir, tiny_iso, out_dir):
    """The ISO is built and published; the check fails, debate build exits 3
    with the console's last lines, which say why."""
    broken = "#!/bin/sh\nrm -f /sbin/init\nprintf '#!/bin/sh\\necho init: giving up\\nexit 1\\n' > /sbin/init\n" \
             "chmod 0755 /sbin/init\n"
    recipe = write_recipe(out_dir, name="broken", hooks=[{"name": "10-break-init", "script": broken}],
                          boot={"bios": True, "uefi": False, "cmdline": "console=ttyS0"})
    out = out_dir / "broken.iso"
    r = build(data_dir, recipe, out, "--boot-check")
    assert r.returncode == 3, r.stderr
    assert "boot check: bios fail, uefi skipped" in r.stdout
    assert "the boot check failed" in r.stderr and "Attempted to kill init" in r.stderr
    assert out.exists()
    m = json.loads(Path(f"{out}.manifest.json").read_text())
    assert m["boot_check"]["result"] == "fail"
    assert m["boot_check"]["bios"] == "fail" and m["boot_check"]["uefi"] == "skipped"
    console = boot_console(out, "bios")
    assert console.startswith('fail (')
    assert "init: giving up" in console
    assert "Attempted to kill init" in console
    assert "\nDEBATE-BOOTED broken" not in console  # (the verdict line names the marker it waited for)


def verify(data_dir, *args, wrap=(), timeout=600):
    return subprocess.run(list(wrap) + [DEBATE, "verify", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, DEBATE_DATA_DIR=str(data_dir)), timeout=timeout)


def test_verify_rebuilds_offline_from_the_manifest_and_says_match(data_dir, tiny_iso):
    """debate verify rebuilds from the manifest's lock as debate build --lock does: in a network namespace with
    no network at all, from the cache, the same SHA-256."""
    r = subprocess.run([DEBATE, "lock", "--fetch", str(TINY)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, DEBATE_DATA_DIR=str(data_dir)))
    assert r.returncode == 0, r.stderr
    assert "0 packages downloaded" in r.stderr
    # The lock debate lock prints is the one the manifest records.
    assert json.loads(r.stdout) == json.loads(Path(f"{tiny_iso}.manifest.json").read_text())["lock"]
    r = verify(data_dir, tiny_iso, wrap=("unshare", "--net"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"match  {file_sha256(tiny_iso)}  {tiny_iso}\n"
    assert "0 packages downloaded" in r.stderr, r.stderr
    assert list((data_dir / "verify").iterdir()) == [], "verify left its work directory"


def iso_layout(iso):
    """{path: (lba, blocks, size)} of the ISO's files, and the boot catalog's block (xorriso's report)."""
    out = subprocess.run(["xorriso", "-no_rc", "-indev", str(iso), "-report_el_torito", "plain", "-find", "/",
                          "-exec", "report_lba", "--"], capture_output=True, text=True, check=True).stdout
    files = {m[3]: (int(m[0]), int(m[1]), int(m[2]))
             for m in re.findall(r"^File data lba: +0 , +(\d+) , +(\d+) , +(\d+) , '(.*)'$", out, re.M)}
    return files, int(re.search(r"^El Torito catalog +: +(\d+) +\d+$", out, re.M)[1])


def change_squashfs_file(iso, epoch, path, content):
    """Makes the ISO's squashfs again with one file's content changed, with the options and times of the build
    (stages.c), and writes it over the old one in place: the ISO's tree stays as it was."""
    (lba, blocks, size) = iso_layout(iso)[0]["/live/filesystem.squashfs"]
    tmp = Path(tempfile.mkdtemp(prefix="debate-verify-sq-"))
    try:
        with open(iso, "rb") as f:
            f.seek(lba * 2048)
            (tmp / "old.squashfs").write_bytes(f.read(size))
        subprocess.run(["unsquashfs", "-q", "-n", "-d", str(tmp / "root"), str(tmp / "old.squashfs")], check=True)
        (tmp / "root" / path.lstrip("/")).write_bytes(content)
        # the recipe format's setting, as the old squashfs says it (format 3: level 9, 1 MiB blocks)
        info = subprocess.run(["unsquashfs", "-s", str(tmp / "old.squashfs")], capture_output=True, text=True,
                              check=True).stdout
        level = re.search(r"compression-level (\d+)", info)[1]
        block = re.search(r"^Block size (\d+)$", info, re.M)[1]
        subprocess.run(["mksquashfs", str(tmp / "root"), str(tmp / "new.squashfs"), "-comp", "zstd",
                        "-Xcompression-level", level, "-b", block, "-reproducible", "-mkfs-time", str(epoch),
                        "-all-time", str(epoch), "-noappend", "-no-progress", "-quiet"], check=True)
        new = (tmp / "new.squashfs").read_bytes()
        assert len(new) == size, "the squashfs changed size: the ISO's tree would have to change too"
        with open(iso, "r+b") as f:
            f.seek(lba * 2048)
            f.write(new)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def flip_byte(iso, offset):
    with open(iso, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ 0xff]))


def grub_offset(iso, efi):
    """Where the GRUB image (EFI/BOOT/BOOTX64.EFI in the FAT of the EFI image) starts in the ISO, and its size."""
    (lba, blocks, size) = efi
    tmp = Path(tempfile.mkdtemp(prefix="debate-verify-efi-"))
    try:
        with open(iso, "rb") as f:
            f.seek(lba * 2048)
            img = f.read(size)
        (tmp / "efi.img").write_bytes(img)
        subprocess.run(["mcopy", "-n", "-i", str(tmp / "efi.img"), "::/EFI/BOOT/BOOTX64.EFI", str(tmp / "grub.efi")],
                       check=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
        grub = (tmp / "grub.efi").read_bytes()
        at = img.find(grub[:65536])  # mcopy wrote it into a fresh FAT: in one piece
        assert at > 0
        return lba * 2048 + at, len(grub)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@heavy_verify
def test_verify_names_the_file_the_boot_catalog_and_the_grub_image_that_differ(data_dir, tiny_iso, out_dir):
    """A copy of the ISO with one file of its squashfs changed, a byte of its boot catalog and one of its GRUB
    image: verify says differs, names each of the three, and nothing else."""
    copy = out_dir / "copy.iso"
    shutil.copy(tiny_iso, copy)
    shutil.copy(f"{tiny_iso}.manifest.json", f"{copy}.manifest.json")
    manifest = json.loads(Path(f"{tiny_iso}.manifest.json").read_text())
    change_squashfs_file(copy, manifest["source_date_epoch"], "/etc/motd", b"debate TINY image\n")
    files, catalog = iso_layout(copy)
    flip_byte(copy, catalog * 2048 + 40)
    grub_at, grub_size = grub_offset(copy, files["/boot/grub/efi.img"])
    flip_byte(copy, grub_at + 4096)
    r = verify(data_dir, copy)
    assert r.returncode == 1, r.stderr
    assert f"debate verify: note: the manifest records sha256 {manifest['iso_sha256']}, not the ISO's" in r.stderr
    efi, squashfs = files["/boot/grub/efi.img"][2], files["/live/filesystem.squashfs"][2]
    assert r.stdout.splitlines() == [
        f"differs  {file_sha256(copy)}  {copy}  rebuilt {manifest['iso_sha256']}",
        f"  iso  /boot/grub/efi.img (the El Torito EFI boot image): {efi} bytes, rebuilt {efi} bytes",
        f"  iso  /boot/grub/efi.img:/EFI/BOOT/BOOTX64.EFI (the GRUB image): {grub_size} bytes, rebuilt {grub_size} "
        "bytes",
        "  iso  /isolinux/boot.cat (the El Torito boot catalog): 2048 bytes, rebuilt 2048 bytes",
        f"  iso  /live/filesystem.squashfs (the root filesystem): {squashfs} bytes, rebuilt {squashfs} bytes",
        "  squashfs  /etc/motd: file 0644 0:0 18 bytes, rebuilt file 0644 0:0 18 bytes",
    ], r.stdout
    assert list((data_dir / "verify").iterdir()) == [], "verify left its work directory"


def test_a_busybox_image_without_a_kernel_is_refused_by_name(data_dir, out_dir):
    recipe = write_recipe(out_dir, packages=["busybox-static"])
    out = out_dir / "nokernel.iso"
    r = build(data_dir, recipe, out)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "the image needs a kernel: add linux-image-amd64" in r.stderr
    assert_no_iso(out)


def test_unknown_package_is_named(data_dir, out_dir):
    recipe = write_recipe(out_dir, packages=["busybox-static", "linux-image-amd64", "no-such-package-zz"])
    out = out_dir / "x.iso"
    r = build(data_dir, recipe, out)
    assert r.returncode == 1
    assert 'unknown package "no-such-package-zz"' in r.stderr
    assert_no_iso(out)


def test_unreachable_mirror(data_dir, out_dir):
    out = out_dir / "x.iso"
    r = build(data_dir, TINY, out, "--mirror", "http://127.0.0.1:9/debian")
    assert r.returncode == 1
    assert "the mirror is unreachable" in r.stderr
    assert_no_iso(out)


def test_bad_signature(data_dir, out_dir):
    out = out_dir / "x.iso"
    # A keyring without the keys that sign the release.
    r = build(data_dir, TINY, out,
              env={"DEBATE_ARCHIVE_KEYRING": "/usr/share/keyrings/debian-archive-bullseye-stable.gpg"})
    assert r.returncode == 1
    assert "signature" in r.stderr and "not valid" in r.stderr
    assert_no_iso(out)


def test_failing_hook_is_reported_with_its_output(data_dir, out_dir):
    hooks = [{"name": "10-ok", "script": "#!/bin/sh\ntrue\n"},
             {"name": "20-breaks", "script": "#!/bin/sh\necho boom from the hook\nexit 3\n"}]
    recipe = write_recipe(out_dir, hooks=hooks)
    out = out_dir / "x.iso"
    r = build(data_dir, recipe, out)
    assert r.returncode == 1
    assert 'hook "20-breaks" failed with exit code 3' in r.stderr
    assert "boom from the hook" in r.stderr
    assert_no_iso(out)


def test_hook_time_limit(data_dir, out_dir):
    recipe = write_recipe(out_dir, hooks=[{"name": "slow", "script": "#!/bin/sh\nsleep 60\n"}])
    out = out_dir / "x.iso"
    t0 = time.monotonic()
    r = build(data_dir, recipe, out, "--hook-timeout", "2")
    assert r.returncode == 1
    assert 'hook "slow" ran longer than 2 seconds' in r.stderr
    assert time.monotonic() - t0 < 50
    assert_no_iso(out)


def test_interrupt_leaves_nothing_behind(data_dir, out_dir):
    # Interrupted while a hook runs: the hook dies with the build.
    recipe = write_recipe(out_dir, hooks=[{"name": "slow", "script": "#!/bin/sh\nsleep 4242\n"}])
    out = out_dir / "x.iso"
    p = subprocess.Popen([DEBATE, "build", str(recipe), "-o", str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, DEBATE_DATA_DIR=str(data_dir)))
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        seen += line
        if 'hook "slow"' in line or not line:
            break
    assert 'hook "slow"' in seen, seen
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert "interrupted" in err
    assert_no_iso(out)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert ".debate-build-" not in mounts
    left = subprocess.run(["pgrep", "-f", "sleep 4242"], capture_output=True, text=True)
    assert left.stdout == "", f"processes of the build outlived it: {left.stdout}"


def test_full_disk_is_reported(data_dir, out_dir):
    small = out_dir / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "debate-test-full", str(small)], check=True)
    try:
        out = small / "x.iso"
        r = build(data_dir, TINY, out)
        assert r.returncode == 1
        assert "disk is full" in r.stderr or "No space left" in r.stderr, r.stderr
        assert_no_iso(out)
    finally:
        subprocess.run(["umount", str(small)], check=True)


def hostile_build(data_dir, recipe, out, *args):
    """Builds in another directory (below a 0700 one), with the clock 3 days
    ahead, another time zone, locale, umask and host name."""
    script = ('hostname evil-build-host && umask 077 && '
              f'exec faketime -f +3d "{DEBATE}" build "{recipe}" -o "{out}" {" ".join(args)}')
    return subprocess.run(["unshare", "--uts", "--", "/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=1800, env=dict(os.environ, DEBATE_DATA_DIR=str(data_dir), TZ="Asia/Tokyo",
                                                 LC_ALL="C", NO_FAKE_STAT="1",
                                                 ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "")
                                                 + ":verify_asan_link_order=0"))


@pytest.fixture(scope="module")
def minimal_iso(data_dir):
    d = Path(tempfile.mkdtemp(prefix="debate-build-min-"))
    out = d / "minimal.iso"
    r = build(data_dir, MINIMAL, out, timeout=1800)
    assert r.returncode == 0, r.stderr
    yield out
    shutil.rmtree(d, ignore_errors=True)


@heavy
def test_minimal_is_byte_identical_under_a_hostile_environment(data_dir, minimal_iso, out_dir):
    """On the base layer the first build kept: the live image's packages
    (maintainer scripts, the initramfs) are not installed again."""
    r = assert_same_bytes_when_hostile(data_dir, MINIMAL, minimal_iso, out_dir)
    assert "reusing the base layer" in r.stdout


@heavy
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_minimal_boots_to_userspace(minimal_iso, firmware):
    # The marker comes from a systemd unit the recipe's overlay and hook enable.
    boot(minimal_iso, firmware, markers=(b"DEBATE-MINIMAL-BOOTED",), memory="1024", timeout=600)


# ---- the sandbox around a real build: each way a build can die in there ----

def sandbox_leftovers(under):
    """Mounts and loop devices of builds whose output is under `under`, and
    every debate cgroup: what a build there could leave behind. (Builds
    elsewhere on the machine come and go meanwhile; they are not counted.)"""
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(under) in line and (".debate-build-" in line or "debate-sandbox" in line)]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    loops = [line for line in loops.splitlines() if ".debate-build-" in line and str(under) in line]
    # A cgroup is named for its supervisor's pid: one whose supervisor is
    # gone was left behind; a live one belongs to a build still running.
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob("**/debate-sandbox-*")
               if not Path(f"/proc/{p.name.split('-')[2]}").exists()]
    return mounts, loops, cgroups


LIMIT_CASES = {
    # name: (settings, hook script, extra build arguments, expected message parts)
    "memory": ({"DEBATE_SANDBOX_MEMORY_MB": "256"},
               "#!/bin/sh\necho hogging\nawk 'BEGIN { s = \"x\"; while (1) s = s s }'\n", [],
               ["memory limit of 256 MiB reached", 'hook "limit"', "hogging"]),
    # The line goes out before the loop starts: the supervisor ends the tree within 100 ms of the
    # limit, and a line the hook runner has not forwarded by then is lost.
    "processes": ({"DEBATE_SANDBOX_PIDS": "64"},
                  "#!/bin/sh\necho forking\nsleep 1\nwhile :; do sleep 1000 > /dev/null & done\n", [],
                  ["process limit of 64 reached", "forking"]),
    "disk": ({"DEBATE_SANDBOX_DISK_MB": "400"},
             "#!/bin/sh\necho filling\nyes filling-the-disk > /fill\n", [],
             ["disk limit of 400 MiB reached", 'during hook "limit"', "filling"]),
    "cpu": ({"DEBATE_SANDBOX_CPU_S": "8"}, "#!/bin/sh\necho spinning\nwhile :; do :; done\n", [],
            ["CPU-time limit of 8 s reached", "spinning"]),
    "wall": ({}, "#!/bin/sh\necho sleeping\nexec sleep 1000\n", ["--timeout", "15"],
             ["wall-time limit of 15 s reached", "sleeping"]),
}


@heavy  # five more real builds: once, in the release run (the sandbox is the same code under ASan)
@pytest.mark.parametrize("case", sorted(LIMIT_CASES))
def test_a_sandbox_limit_ends_the_build_with_its_cause(data_dir, out_dir, tiny_iso, case):
    settings, script, args, expected = LIMIT_CASES[case]
    recipe = write_recipe(out_dir, hooks=[{"name": "limit", "script": script}])
    out = out_dir / "x.iso"
    before = sandbox_leftovers(out_dir)  # other builds may hold cgroups meanwhile: only new ones count
    r = build(data_dir, recipe, out, *args, env=settings)
    assert r.returncode == 1, r.stdout + r.stderr
    for part in expected:
        assert part in r.stderr, (part, r.stderr)
    assert_no_iso(out)
    after = sandbox_leftovers(out_dir)
    for kind, was, now in zip(("mounts", "loop devices", "cgroups"), before, after):
        assert set(now) <= set(was), f"the build left {kind} behind: {sorted(set(now) - set(was))}"
    left = subprocess.run(["pgrep", "-f", "sleep 1000"], capture_output=True, text=True)
    assert left.stdout == "", f"processes of the build outlived it: {left.stdout}"


def test_the_build_log_names_the_sandbox_settings(data_dir, tiny_iso, out_dir):
    r = build(data_dir, TINY, out_dir / "t.iso", env={"DEBATE_SANDBOX_MEMORY_MB": "3000"})
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if "sandbox:" in l)
    for part in ["root inside is uid 100000 outside (65536 ids)", "network (lo only)", "no_new_privs",
                 "seccomp allowlist", "memory 3000 MiB", "wall 1200 s", "cgroups: memory v"]:
        assert part in line, (part, line)
    assert file_sha256(out_dir / "t.iso") == file_sha256(tiny_iso)  # the limits are not an input of the image


def test_hooks_run_unprivileged_and_confined(data_dir, tiny_iso, out_dir):
    # The hook reports what it sees into the image; the test reads it back from the ISO.
    script = ("#!/bin/sh\n"
              "exec > /etc/debate-probe 2>&1\n"
              "echo uid_map: $(cat /proc/self/uid_map 2>&1 || echo none)\n"
              "echo shadow: $(cat /etc/shadow 2>&1 | head -c 40)\n"
              "echo net: $(wget -q -T 3 -O - http://deb.debian.org/ 2>&1 | head -c 80)\n"
              "echo env: $(env | sort | cut -d= -f1 | tr '\\n' ' ')\n"
              "exit 0\n")
    recipe = write_recipe(out_dir, hooks=[{"name": "probe", "script": script}])
    out = out_dir / "p.iso"
    r = build(data_dir, recipe, out)
    assert r.returncode == 0, r.stderr
    ext = out_dir / "x"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(out), "-extract", "/live/filesystem.squashfs",
                    str(out_dir / "fs.sqfs")], check=True, capture_output=True)
    subprocess.run(["unsquashfs", "-q", "-d", str(ext), str(out_dir / "fs.sqfs"), "etc/debate-probe",
                    "etc/apt/sources.list"], check=True, capture_output=True)
    probe = (ext / "etc" / "debate-probe").read_text()
    # The image's apt sources are the lock's suites, each from its own mirror.
    sources = (ext / "etc" / "apt" / "sources.list").read_text().splitlines()
    assert [line.split()[2] for line in sources] == ["trixie", "trixie-updates", "trixie-security"], sources
    assert sources[2].startswith("deb http") and "/debian-security trixie-security main" in sources[2], sources
    # The hook's /etc is the image's: the host's shadow is nowhere in reach.
    host_root = Path("/etc/shadow").read_text().splitlines()[0][:40]
    assert host_root not in probe, probe
    net = probe.split("net:")[1].splitlines()[0]
    assert "<html" not in net.lower(), net
    env = probe.split("env:")[1].split()
    assert set(env) <= {"PATH", "HOME", "TZ", "LC_ALL", "DEBIAN_FRONTEND", "MTOOLS_SKIP_CHECK",
                        "SOURCE_DATE_EPOCH", "PWD", "SHLVL", "FAKETIME", "FAKETIME_SHARED", "NO_FAKE_STAT",
                        "LD_PRELOAD", "FAKETIME_NO_CACHE", "DONT_FAKE_MONOTONIC", "_"}, env


# --------------------------------------------------------------------------
# every other example, built for real (release only)
# --------------------------------------------------------------------------

# The examples the tests above build already (and boot); every other recipe
# in examples/ is built here, so an example nobody builds cannot rot.
BUILT_ABOVE = {TINY.name, TINY_BOOKWORM.name, MINIMAL.name}
OTHER_EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.json") if p.name not in BUILT_ABOVE)


# Building them takes minutes each (rescue: 221 packages, 4-7 minutes on
# 2 cores), more than the suite can spend: `make test-examples` builds them.
examples_run = pytest.mark.skipif(os.environ.get("DEBATE_TEST_EXAMPLES") != "1",
                                  reason="the other examples are built by make test-examples")


@examples_run
@pytest.mark.parametrize("recipe", OTHER_EXAMPLES, ids=[p.stem for p in OTHER_EXAMPLES])
def test_every_other_example_builds(data_dir, out_dir, recipe):
    out = out_dir / f"{recipe.stem}.iso"
    # rescue's 221 packages took 18 minutes on a loaded 2-core machine,
    # near the default 20-minute build limit: this test checks that the
    # example builds, not how fast.
    r = build(data_dir, recipe, out, "--timeout", "3600", timeout=3900)
    assert r.returncode == 0, f"{recipe.name}: {r.stderr}"
    m = json.loads(Path(f"{out}.manifest.json").read_text())
    canonical, config_hash = subprocess.run([DEBATE, "hash", str(recipe)], capture_output=True, text=True,
                                            check=True).stdout.split("\n")[:2]
    assert m["config_hash"] == config_hash
    assert m["recipe"] == json.loads(canonical)
    assert m["iso_sha256"] == file_sha256(out)
    assert m["iso_size"] == out.stat().st_size
    names = {p["name"] for p in m["lock"]["packages"]}
    missing = sorted(set(m["recipe"]["packages"]) - names)
    assert not missing, f"{recipe.name}: the lock lacks {missing}"
    # Firmware from non-free-firmware is in the lock with its component, and its files in the image.
    firmware = [p for p in m["lock"]["packages"] if p.get("component") == "non-free-firmware"]
    if "non-free-firmware" in m["recipe"].get("components", []):
        assert firmware, f"{recipe.name}: no package of the lock comes from non-free-firmware"
        _, listing = extract_from_iso(out, out_dir / f"{recipe.stem}-x", "etc/hostname")
        assert any(f.startswith("/usr/lib/firmware/") for f in listing), f"{recipe.name}: no firmware in the image"


@heavy
def test_firmware_from_non_free_firmware_is_in_the_image(data_dir, out_dir):
    """A package of the non-free-firmware component installs, and its files are in the image."""
    recipe = write_recipe(out_dir, name="firmware", packages=json.loads(TINY.read_text())["packages"] +
                          ["firmware-realtek"], components=["main", "non-free-firmware"])
    out = out_dir / "firmware.iso"
    r = build(data_dir, recipe, out)
    assert r.returncode == 0, r.stderr
    m = json.loads(Path(f"{out}.manifest.json").read_text())
    fw = next(p for p in m["lock"]["packages"] if p["name"] == "firmware-realtek")
    assert fw["component"] == "non-free-firmware", fw
    _, listing = extract_from_iso(out, out_dir, "etc/hostname")
    assert any(f.startswith("/usr/lib/firmware/rtl_nic/") for f in listing), \
        [f for f in listing if "firmware" in f][:20]


# ---- hooks: each in its own PID namespace, with the image as its root ----

ESCAPE_SOURCE = ROOT / "tests" / "sandbox" / "corpus" / "58-chroot-escape-fd.c"


def extract_from_iso(iso, tmp, *paths):
    """The image's files at paths (relative), unpacked under tmp/x; and the
    squashfs's full listing."""
    sqfs = tmp / "fs.sqfs"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/live/filesystem.squashfs",
                    str(sqfs)], check=True, capture_output=True)
    subprocess.run(["unsquashfs", "-q", "-d", str(tmp / "x"), str(sqfs), *paths], check=True, capture_output=True)
    listing = subprocess.run(["unsquashfs", "-l", "-d", "", str(sqfs)], check=True, capture_output=True,
                             text=True).stdout
    return tmp / "x", listing.split()


def test_a_hook_is_over_when_its_own_process_exits(data_dir, out_dir):
    # Each hook leaves sleepers behind that keep its output open. The first
    # exits 0: the build goes on at once; the second exits 3: the build fails
    # with that status, not a time limit. The log counts what was killed.
    hooks = [{"name": "10-daemons", "script": "#!/bin/sh\necho starting two\nsleep 4321 &\nsleep 4322 &\n"
                                              "echo started\nexit 0\n"},
             {"name": "20-fails", "script": "#!/bin/sh\nsleep 4323 &\necho giving up\nexit 3\n"}]
    recipe = write_recipe(out_dir, hooks=hooks)
    out = out_dir / "x.iso"
    r = build(data_dir, recipe, out, "--hook-timeout", "30")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ran longer than" not in r.stderr, r.stderr
    assert 'hook "20-fails" failed with exit code 3' in r.stderr, r.stderr
    assert "giving up" in r.stderr, r.stderr
    assert 'hook "10-daemons" left 2 processes running; they were killed' in r.stdout, r.stdout
    assert 'hook "20-fails" left 1 process running; it was killed' in r.stdout, r.stdout
    assert_no_iso(out)
    left = subprocess.run(["pgrep", "-a", "-f", "sleep 432[123]"], capture_output=True, text=True)
    assert left.stdout == "", f"processes of a hook outlived it: {left.stdout}"


def test_a_hook_sees_only_the_image_and_cannot_chroot_out(data_dir, out_dir):
    # A static program (the image has no compiler or interpreter) opens "/",
    # chroots into a subdirectory, fchdirs back, climbs and chroots "." (and
    # the same with its working directory left outside); it prints what "/"
    # holds before and after each attempt into the image.
    exe = out_dir / "escape"
    subprocess.run(["gcc", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-O1",
                    "-DESCAPE_NOSTDLIB", "-o", str(exe), str(ESCAPE_SOURCE)], check=True, capture_output=True)
    encoded = base64.encodebytes(exe.read_bytes()).decode()
    overlays = json.loads(TINY.read_text())["overlays"] + [
        {"path": "/root/escape.b64", "mode": "0600", "content": encoded}]
    script = ("#!/bin/sh\nset -e\n"
              "base64 -d /root/escape.b64 > /root/escape\nchmod 0700 /root/escape\n"
              "/root/escape > /etc/debate-escape-report 2>&1\n"
              "rm -rf /root/escape /root/escape.b64 /tmp/debate-jail\n")
    recipe = write_recipe(out_dir, overlays=overlays, hooks=[{"name": "escape", "script": script}])
    out = out_dir / "e.iso"
    r = build(data_dir, recipe, out)
    assert r.returncode == 0, r.stderr
    ext, listing = extract_from_iso(out, out_dir, "etc/debate-escape-report")
    report = (ext / "etc" / "debate-escape-report").read_text()
    before = report.split("--- before ---\n")[1].split("---")[0]
    # Before any attempt: the image, and nothing of the build around it.
    for absent in ("/mnt/build: no", "/mnt/mirror: no", "/usr/lib/x86_64-linux-gnu/libseccomp.so.2: no"):
        assert absent in before, report
    assert "\n/mnt:\n" in "\n" + before, report
    # After each attempt: still the image.
    assert report.rstrip().endswith("RESULT: contained"), report
    # The hook's /proc and /dev were its own: nothing of them is in the image.
    assert not [p for p in listing if p.startswith(("/proc/", "/dev/"))], listing
    assert "/proc" in listing and "/dev" in listing, listing
