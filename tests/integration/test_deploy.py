"""The deployment files: the systemd units (systemd-analyze verify, their
exposure against docs/operations.md, what the sandbox needs), the front door
unprivileged with no workers, as its unit runs it.

The man page, `make install` and the Debian package are further down.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import clean_env, debate_bin, free_ports

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
OPERATIONS = ROOT / "docs" / "operations.md"
SERVICES = ("debate.service", "debate-worker.service", "debate-backup.service", "debate-restore-test.service")
FRONT_DOOR_MAX_EXPOSURE = 2.5

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed")


def unit_settings(name):
    """A unit file's Key=value lines (comments dropped), in order."""
    pairs = []
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    return pairs


def unit_value(name, key):
    values = [v for k, v in unit_settings(name) if k == key]
    return values[-1] if values else None


@pytest.fixture(scope="module")
def unit_copies():
    """The units with /usr/bin/debate pointing at the binary under test (verify checks it is executable)."""
    d = Path(tempfile.mkdtemp(prefix="debate-units-"))
    for f in UNITS.iterdir():
        (d / f.name).write_text(f.read_text().replace("/usr/bin/debate", debate_bin()))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# systemd units
# --------------------------------------------------------------------------

@needs_systemd_analyze
def test_units_verify_without_a_word(unit_copies):
    names = sorted(p.name for p in unit_copies.iterdir())
    assert set(SERVICES) <= set(names), names
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + names, cwd=unit_copies,
                       capture_output=True, text=True, timeout=60)
    # An unknown or misspelt directive is only a warning: any output counts.
    assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", \
        f"systemd-analyze verify: exit {p.returncode}\n{p.stdout}{p.stderr}"


def exposure(unit_dir, name):
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", name], cwd=unit_dir,
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", p.stdout)
    assert m, f"no exposure level for {name}: {p.stdout[-500:]}{p.stderr}"
    return float(m.group(1))


def documented_exposures():
    """unit -> the exposure the systemd table of docs/operations.md gives."""
    table = {}
    for line in OPERATIONS.read_text().splitlines():
        m = re.match(r"\| `(debate[\w-]*\.service)`.*\| (\d+\.\d) \|$", line)
        if m:
            table[m.group(1)] = float(m.group(2))
    return table


@needs_systemd_analyze
def test_exposure_is_as_documented_and_the_front_door_is_below_the_bound(unit_copies):
    documented = documented_exposures()
    assert set(documented) == set(SERVICES), f"docs/operations.md's unit table: {documented}"
    measured = {name: exposure(unit_copies, name) for name in SERVICES}
    assert measured == documented, f"systemd-analyze security says {measured}, docs/operations.md {documented}"
    assert measured["debate.service"] < FRONT_DOOR_MAX_EXPOSURE, measured


def test_the_front_door_is_unprivileged_and_runs_no_workers():
    assert unit_value("debate.service", "User") == "debate"
    assert "DEBATE_WORKERS=0" in unit_value("debate.service", "Environment").split()
    assert unit_value("debate.service", "CapabilityBoundingSet") == ""
    assert "serve" in unit_value("debate.service", "ExecStart").split()


def test_the_worker_unit_allows_what_the_sandbox_needs():
    # Each of these makes every build fail: namespaces, per-build cgroups,
    # loop devices, and the sandbox's own /proc mount.
    settings = dict(unit_settings("debate-worker.service"))
    for key in ("User", "RestrictNamespaces", "ProtectControlGroups", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelLogs", "ProtectProc", "ProcSubset", "PrivateUsers", "RestrictSUIDSGID",
                "ProtectHostname", "SystemCallFilter"):
        assert key not in settings, f"debate-worker.service sets {key}={settings[key]}: builds would fail"
    assert settings.get("Delegate") == "yes", settings
    assert "worker" in settings["ExecStart"].split()
    caps = set(settings["CapabilityBoundingSet"].split())
    assert {"CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID"} <= caps, caps


# --------------------------------------------------------------------------
# the front door as its unit runs it: unprivileged, no workers
# --------------------------------------------------------------------------

UNPRIVILEGED = 65534  # nobody


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a server as another user")
def test_serve_runs_unprivileged_with_no_workers():
    import json
    import ssl
    import urllib.request
    work = Path(tempfile.mkdtemp(prefix="debate-unpriv-"))
    work.chmod(0o711)
    data = work / "data"
    data.mkdir()
    os.chown(data, UNPRIVILEGED, UNPRIVILEGED)
    https, http = free_ports(2)
    env = clean_env({"DEBATE_DATA_DIR": data, "DEBATE_WORKERS": 0, "DEBATE_HTTPS_PORT": https,
                     "DEBATE_HTTP_PORT": http, "DEBATE_THREADS": 1, "HOME": "/nonexistent"})
    err = open(work / "stderr.log", "wb")
    proc = subprocess.Popen(["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups",
                             debate_bin(), "serve"], env=env, cwd=str(work), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        ca = data / "tls" / "ca.pem"
        ctx = ssl.create_default_context(cafile=None)
        ready = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if ca.exists():
                ctx = ssl.create_default_context(cafile=str(ca))
                try:
                    with urllib.request.urlopen(f"https://localhost:{https}/ready", context=ctx, timeout=5) as r:
                        ready = json.load(r)
                        break
                except Exception:  # noqa: BLE001 - not up yet
                    pass
            time.sleep(0.2)
        log = (work / "stderr.log").read_text(errors="replace")
        assert ready is not None, f"serve as uid {UNPRIVILEGED} never became ready (exit {proc.poll()}):\n{log[-3000:]}"
        assert ready["status"] == "ready", ready
        assert ready["checks"]["workers"]["in_process"] == 0, ready
        assert ready["checks"]["database"]["ok"], ready
        owners = {p.stat().st_uid for p in data.iterdir()}
        assert owners == {UNPRIVILEGED}, f"serve made files of other owners in its data dir: {owners}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(5)
        err.close()
        log = (work / "stderr.log").read_text(errors="replace")
        shutil.rmtree(work, ignore_errors=True)
    assert rc == 0, f"serve exited {rc}:\n{log[-3000:]}"


# --------------------------------------------------------------------------
# the man page, in step with `debate help`
# --------------------------------------------------------------------------

MAN_PAGE = ROOT / "docs" / "debate.1"
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def run_debate(*args):
    p = subprocess.run([debate_bin(), *args], capture_output=True, text=True, timeout=30, env=clean_env())
    return p


def binary_commands():
    out = run_debate("help").stdout
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def man_text(roff):
    """Roff source as plain text: escapes that matter for names undone."""
    return roff.replace("\\-", "-").replace("\\fB", "").replace("\\fI", "").replace("\\fR", "").replace("\\fP", "")


def man_sections():
    """(command -> the text of its .SS section, the text of the COMMON OPTIONS section)."""
    sections, current, common, in_common = {}, None, [], False
    for line in MAN_PAGE.read_text().splitlines():
        if line.startswith(".SS "):
            current = line[4:].strip().strip('"')
            sections[current] = []
        elif line.startswith(".SH "):
            current, in_common = None, line[4:].strip().strip('"') == "COMMON OPTIONS"
        if current is not None:
            sections[current].append(line)
        elif in_common:
            common.append(line)
    return {k: man_text("\n".join(v)) for k, v in sections.items()}, man_text("\n".join(common))


def test_the_man_page_documents_every_command_and_no_other():
    sections, _ = man_sections()
    commands = binary_commands()
    assert len(commands) > 10, commands
    assert sorted(sections) == sorted(commands), \
        f"man page commands {sorted(sections)} != debate help {sorted(commands)}"


def test_the_man_page_documents_each_commands_long_options_and_no_other():
    sections, common = man_sections()
    # Options of debate itself rather than of a command: known when the binary takes them.
    top = {"--version", "--help"}
    for opt in top:
        assert run_debate(opt).returncode == 0, f"debate {opt} fails"
    assert "--help" in LONG_OPTION.findall(common), "the man page does not document --help"
    problems = []
    for cmd in binary_commands():
        p = run_debate("help", cmd)
        assert p.returncode == 0, p.stderr
        printed = set(LONG_OPTION.findall(p.stdout)) - {"--help"}
        documented = set(LONG_OPTION.findall(sections.get(cmd, "")))
        if cmd == "help":  # `debate help help` prints the list of commands, whose note names --config
            documented |= set(LONG_OPTION.findall(common))
        if printed - documented:
            problems.append(f"{cmd}: debate help {cmd} prints {sorted(printed - documented)}, the man page does not")
        if documented - printed - top:
            problems.append(f"{cmd}: the man page documents {sorted(documented - printed - top)}, unknown to the binary")
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_the_man_page_renders_without_warnings():
    p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(MAN_PAGE)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80"))
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


# --------------------------------------------------------------------------
# make install
# --------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_install_into_a_destdir():
    dest = Path(tempfile.mkdtemp(prefix="debate-destdir-"))
    try:
        def install():
            p = subprocess.run(["make", "--no-print-directory", "install", f"DESTDIR={dest}", "PREFIX=/usr",
                                f"INSTALL_BIN={debate_bin()}"], cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
            assert p.returncode == 0, f"make install failed:\n{p.stdout}{p.stderr}"
        install()
        binary = dest / "usr/bin/debate"
        p = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stdout.startswith("debate "), p
        assert (dest / "usr/share/man/man1/debate.1").read_text() == (ROOT / "docs/debate.1").read_text()
        assert (dest / "usr/share/bash-completion/completions/debate").is_file()
        assert (dest / "usr/lib/sysusers.d/debate.conf").read_text().startswith("#")
        for name in SERVICES + ("debate-backup.timer", "debate-restore-test.timer"):
            unit = dest / "usr/lib/systemd/system" / name
            assert unit.is_file(), f"{name} was not installed"
        execs = [v for k, v in (re.findall(r"^(ExecStart)=(.*)$", (dest / "usr/lib/systemd/system/debate.service")
                                           .read_text(), re.M))]
        assert execs and execs[0].startswith("/usr/bin/debate serve"), execs
        for f in ("Caddyfile", "debate.conf", "tiny.json"):
            assert (dest / "usr/share/doc/debate/examples" / f).is_file(), f
        for f in ("operations.md", "configuration.md", "api.md"):
            assert (dest / "usr/share/doc/debate" / f).is_file(), f
        conf = dest / "etc/debate/debate.conf"
        p = subprocess.run([str(binary), "serve", "--check", "--config", str(conf)], capture_output=True, text=True,
                           timeout=30, env=clean_env())
        assert p.returncode == 0 and "configuration ok" in p.stdout, p
        # A second install keeps the administrator's settings.
        conf.write_text("data_dir = /srv/debate\n")
        install()
        assert conf.read_text() == "data_dir = /srv/debate\n", "make install overwrote /etc/debate/debate.conf"
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# --------------------------------------------------------------------------
# the Debian package: built, checked by lintian, installed with apt into a
# clean chroot. Heavy (a package build and a chroot): once, in the release
# run.
# --------------------------------------------------------------------------

heavy = pytest.mark.skipif(os.environ.get("DEBATE_TEST_HEAVY") != "1",
                           reason="the Debian package is built and installed once, in the release run")
PACKAGE_TOOLS = ("dpkg-buildpackage", "dh", "lintian", "mmdebstrap")
SUITES = ("deb http://deb.debian.org/debian bookworm main",
          "deb http://deb.debian.org/debian bookworm-updates main",
          "deb http://deb.debian.org/debian-security bookworm-security main")


def source_copy(dest):
    """The source tree as the package is built from it: no build output, no VCS, no node_modules."""
    ignore = shutil.ignore_patterns(".git", "build", "node_modules", "__pycache__", "data", "*.pyc")
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def deb_cache(work):
    """Where the chroot's apt keeps its packages: DEBATE_TEST_CACHE_DIR/deploy-debs when set
    (kept across runs), else a directory of hard links to the host's apt cache (same file
    system) so that only what the host lacks is downloaded."""
    keep = os.environ.get("DEBATE_TEST_CACHE_DIR")
    if keep:
        d = Path(keep) / "deploy-debs"
        d.mkdir(parents=True, exist_ok=True)
        return d
    d = work / "debs"
    d.mkdir()
    host = Path("/var/cache/apt/archives")
    if host.is_dir() and host.stat().st_dev == d.stat().st_dev:
        for deb in host.glob("*.deb"):
            os.link(deb, d / deb.name)
    return d


def timed(argv, what, timings, **kw):
    start = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    timings[what] = time.monotonic() - start
    assert p.returncode == 0, f"{what} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return p


@heavy
@pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root needs root")
@pytest.mark.skipif(any(shutil.which(t) is None for t in PACKAGE_TOOLS),
                    reason="needs " + ", ".join(PACKAGE_TOOLS) + " (scripts/install-deps.sh --test)")
def test_the_debian_package_builds_passes_lintian_and_installs_with_apt():
    work = Path(tempfile.mkdtemp(prefix="debate-deb-"))
    chroot = work / "chroot"
    timings = {}
    lintian = None
    try:
        src = work / "debate-0.1.0"
        source_copy(src)
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
        timed(["nice", "dpkg-buildpackage", "-us", "-uc", "-b"], "dpkg-buildpackage", timings, cwd=src, env=env,
              timeout=900)
        debs = sorted(work.glob("debate_*_*.deb"))
        assert len(debs) == 1, list(work.iterdir())
        changes = next(work.glob("debate_*.changes"))
        # lintian runs while mmdebstrap makes the chroot (mostly one core's work).
        lintian = subprocess.Popen(["lintian", "--fail-on", "error", str(changes)], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)

        cache = deb_cache(work)
        deb = debs[0].name
        hooks = [
            "--setup-hook", 'mkdir -p "$1"/var/cache/apt/archives',
            "--setup-hook", f'mount --bind {cache} "$1"/var/cache/apt/archives',
            "--customize-hook", f"copy-in {debs[0]} /tmp",
            "--customize-hook", f'chroot "$1" apt-get install -y -q --no-install-recommends /tmp/{deb}',
            "--customize-hook", 'chroot "$1" debate version > "$1"/root/version.out',
            "--customize-hook", 'chroot "$1" debate serve --check --config /etc/debate/debate.conf '
                                '> "$1"/root/check.out',
            "--customize-hook", 'chroot "$1" getent passwd debate > "$1"/root/user.out',
            "--customize-hook", 'umount "$1"/var/cache/apt/archives',
        ]
        timed(["nice", "mmdebstrap", "--mode=root", "--variant=apt", "--skip=essential/unlink",
               "--dpkgopt=force-unsafe-io", *hooks, "bookworm", str(chroot), *SUITES],
              "mmdebstrap and apt-get install", timings, timeout=1200)
        out, _ = lintian.communicate(timeout=600)
        assert lintian.returncode == 0 and not re.search(r"^E: ", out, re.M), f"lintian:\n{out}"
        assert (chroot / "root/version.out").read_text().startswith("debate 0.1.0"), "debate version"
        check = (chroot / "root/check.out").read_text()
        assert "configuration ok" in check and "data_dir = /var/lib/debate" in check, check
        assert ":/var/lib/debate:" in (chroot / "root/user.out").read_text(), "postinst made no user debate"
        for path in ("lib/systemd/system/debate.service", "lib/systemd/system/debate-worker.service",
                     "usr/share/man/man1/debate.1.gz", "usr/share/bash-completion/completions/debate",
                     "usr/share/doc/debate/examples/Caddyfile", "etc/debate/debate.conf"):
            assert (chroot / path).exists(), f"the package did not install /{path}"
    finally:
        if lintian is not None and lintian.poll() is None:
            lintian.kill()
            lintian.wait()
        mounted = chroot / "var/cache/apt/archives"
        if subprocess.run(["mountpoint", "-q", str(mounted)]).returncode == 0:
            subprocess.run(["umount", "-l", str(mounted)])
        shutil.rmtree(work, ignore_errors=True)
        print("debian package test, seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
