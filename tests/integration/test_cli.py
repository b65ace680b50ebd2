"""The command line of `debate`: usage and --help for every command, refused
misspelt settings, and paths made absolute.

* every command answers -h and --help with its own usage on standard output
  and exit 0, and a bad option with that usage on standard error and exit 2;
  `debate help COMMAND` prints the same usage;
* an unknown DEBATE_* variable or configuration-file key stops every
  command that loads the configuration, naming it and the closest setting;
  the few DEBATE_* variables that are not settings stay allowed;
* relative paths in the configuration are taken from the directory the
  command started in, and shown absolute.

No test here needs PostgreSQL or a network: a misspelt setting stops a
command before it does anything.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SANITIZER_MARKERS, _own_tmpdir, clean_env, debate_bin

IS_ROOT = os.geteuid() == 0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BUILD_ID = "6f1c1f8e-2f7e-4b55-9d7e-0b8a3f0d9c11"

# name: the arguments a run needs to get as far as loading the configuration
# (None: the command loads none), the exit status of a configuration error
# (2, as a usage error, but for sandbox, whose 126 is its setup's), and
# whether it refuses to run at all without root (before the configuration).
COMMANDS = {
    "serve": (["--check"], 2, False),
    "worker": ([], 2, True),
    "migrate": ([], 2, False),
    "backup": ([], 2, False),
    "restore-test": ([], 2, False),
    "build": (["recipe.json", "-o", "out.iso"], 2, True),
    "sandbox": (["--", "/bin/true"], 126, True),
    "hash": (None, None, False),
    "lock": (["recipe.json"], 2, False),
    "version": (None, None, False),
    "submit": ([str(EXAMPLES / "tiny.json")], 2, False),
    "status": ([BUILD_ID], 2, False),
    "logs": ([BUILD_ID], 2, False),
    "list": ([], 2, False),
    "cancel": ([BUILD_ID, "--token", "A" * 43], 2, False),
    "download": ([BUILD_ID, "-o", "x.iso"], 2, False),
    "verify": (["x.iso"], 2, True),
    "help": (None, None, False),
}
LOADS_CONFIG = [name for name, (args, _, _) in COMMANDS.items() if args is not None]


@pytest.fixture
def cwd():
    """A fresh, empty working directory for one run."""
    d = _own_tmpdir("debate-cli-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def debate(args, cwd, env=None, timeout=30):
    p = subprocess.run([debate_bin(), *args], env=clean_env(env), cwd=str(cwd), capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, f"debate {' '.join(args)}: {marker}\n{p.stderr[-4000:]}"
    return p


def usage_line(name):
    return "usage: debate <command>" if name == "help" else f"usage: debate {name}"


# --------------------------------------------------------------------------
# usage and --help
# --------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_prints_the_command_usage(name, flag, cwd):
    p = debate([name, flag], cwd)
    assert p.returncode == 0, f"{name} {flag} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    assert p.stdout.startswith(usage_line(name)), p.stdout
    assert "--help" in p.stdout, p.stdout
    assert p.stderr == "", p.stderr
    assert list(cwd.iterdir()) == [], f"{name} {flag} left files behind: {list(cwd.iterdir())}"


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "help"])
def test_help_command_prints_the_same_usage(name, cwd):
    direct = debate([name, "--help"], cwd)
    via_help = debate(["help", name], cwd)
    assert via_help.returncode == 0, via_help.stderr
    assert via_help.stdout == direct.stdout
    assert via_help.stderr == ""


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "help"])
def test_bad_option_prints_the_usage_on_stderr(name, cwd):
    p = debate([name, "--no-such-option"], cwd)
    assert p.returncode == 2, f"{name} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    assert usage_line(name) in p.stderr, p.stderr
    assert "--no-such-option" in p.stderr, p.stderr
    assert p.stdout == "", p.stdout


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["help", "help"]])
def test_global_help_lists_every_command(args, cwd):
    p = debate(args, cwd)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: debate <command>"), p.stdout
    listed = [line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS), p.stdout
    assert p.stderr == ""


@pytest.mark.parametrize("args, message", [
    ([], None),
    (["no-such-command"], 'debate: unknown command "no-such-command"'),
    (["help", "no-such-command"], 'debate help: unknown command "no-such-command"'),
])
def test_no_or_unknown_command_is_a_usage_error(args, message, cwd):
    p = debate(args, cwd)
    assert p.returncode == 2, p
    assert "usage: debate <command>" in p.stderr, p.stderr
    if message:
        assert message in p.stderr, p.stderr
    assert p.stdout == ""


def test_help_lines_fit_80_columns(cwd):
    lines = debate(["help"], cwd).stdout.splitlines()
    for name in COMMANDS:
        lines += [line for line in debate([name, "--help"], cwd).stdout.splitlines()[1:]]
    assert [line for line in lines if len(line) > 80] == []


@pytest.mark.parametrize("name", LOADS_CONFIG)
def test_the_synopsis_names_config_where_the_command_reads_it(name, cwd):
    usage = debate([name, "--help"], cwd).stdout.splitlines()[0]
    assert "[--config FILE]" in usage, usage


@pytest.mark.parametrize("args, problem", [
    (["hash"], "the recipe is missing"),
    (["hash", "a.json", "b.json"], 'unexpected argument "b.json"'),
    (["build", "a.json"], "-o OUT.iso is required"),
    (["build", "a.json", "-o", "x.iso", "--timeout", "0"], '--timeout wants a whole number from 1 to 1000000000 '
                                                           '(got "0")'),
    (["serve", "extra"], 'unexpected argument "extra"'),
    (["worker", "--workers", "many"], '--workers wants a whole number from 1 to 256 (got "many")'),
    (["migrate", "extra"], 'unexpected argument "extra"'),
    (["version", "extra"], 'unexpected argument "extra"'),
])
def test_a_usage_error_names_the_problem_before_the_usage(args, problem, cwd):
    p = debate(args, cwd)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"debate {args[0]}: {problem}\n\nusage: debate {args[0]}"), p.stderr


def test_hash_of_a_recipe_named_like_an_option(cwd):
    shutil.copy(EXAMPLES / "tiny.json", cwd / "--help")
    p = debate(["hash", "--", "--help"], cwd)
    assert p.returncode == 0, p.stderr
    expected = debate(["hash", str(EXAMPLES / "tiny.json")], cwd)
    assert expected.returncode == 0, expected.stderr
    assert p.stdout == expected.stdout


def test_version(cwd):
    for args in (["version"], ["--version"]):
        p = debate(args, cwd)
        assert p.returncode == 0
        assert p.stdout.startswith("debate "), p.stdout


# --------------------------------------------------------------------------
# misspelt settings
# --------------------------------------------------------------------------

MISSPELT = 'unknown setting "DEBATE_HTTPS_PORTS" (did you mean "DEBATE_HTTPS_PORT"?)'


@pytest.mark.parametrize("name", LOADS_CONFIG)
def test_misspelt_variable_stops_every_command(name, cwd):
    args, status, needs_root = COMMANDS[name]
    if needs_root and not IS_ROOT:
        pytest.skip(f"debate {name} refuses to run without root before loading the configuration")
    p = debate([name, *args], cwd, {"DEBATE_HTTPS_PORTS": 9443})
    assert p.returncode == status, f"{name} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    assert MISSPELT in p.stderr, p.stderr
    assert "configuration ok" not in p.stdout
    assert list(cwd.iterdir()) == [], f"{name} did something: {list(cwd.iterdir())}"


def test_unknown_variable_far_from_every_setting(cwd):
    p = debate(["serve", "--check"], cwd, {"DEBATE_QQQQQQQQQQQQ": 1})
    assert p.returncode == 2
    assert 'unknown setting "DEBATE_QQQQQQQQQQQQ"' in p.stderr, p.stderr
    assert "did you mean" not in p.stderr, p.stderr


def test_misspelt_file_key_names_the_closest_setting(cwd):
    conf = cwd / "debate.conf"
    conf.write_text("rate_limit = 5\nhttps_ports = 9443\n")
    p = debate(["serve", "--check", "--config", str(conf)], cwd)
    assert p.returncode == 2
    assert f'{conf}:2: unknown setting "https_ports" (did you mean "https_port"?)' in p.stderr, p.stderr


def test_variables_that_are_not_settings_are_allowed(cwd):
    env = {"DEBATE_CONFIG": "", "DEBATE_BIN": debate_bin(), "DEBATE_NOOP_MS": 10,
           "DEBATE_TEST_ANYTHING": 1, "DEBATE_HTTPS_PORT": 9443}
    p = debate(["serve", "--check"], cwd, env)
    assert p.returncode == 0, p.stderr
    assert "https_port = 9443" in p.stdout.splitlines()
    assert p.stdout.rstrip().endswith("configuration ok")


# --------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------

def check_values(stdout):
    return dict(line.split(" = ", 1) for line in stdout.splitlines() if " = " in line)


def test_default_data_dir_is_absolute_under_the_working_directory(cwd):
    p = debate(["serve", "--check"], cwd)
    assert p.returncode == 0, p.stderr
    v = check_values(p.stdout)
    assert v["data_dir"] == f"{cwd}/data"
    assert v["backup_dir"] == f"{cwd}/data/backups"
    assert v["cache_dir"] == f"{cwd}/data/cache"
    assert v["artifact_dir"] == f"{cwd}/data/artifacts"


def test_relative_paths_are_taken_from_the_working_directory(cwd):
    conf = cwd / "debate.conf"
    conf.write_text("data_dir = ./state/\ntls_cert = tls/cert.pem\ntls_key = /etc/debate/key.pem\n")
    env = {"DEBATE_ARTIFACT_DIR": "../shared/artifacts"}
    p = debate(["serve", "--check", "--config", "debate.conf"], cwd, env)
    assert p.returncode == 0, p.stderr
    v = check_values(p.stdout)
    assert v["data_dir"] == f"{cwd}/state"
    assert v["backup_dir"] == f"{cwd}/state/backups"
    assert v["tls_cert"] == f"{cwd}/tls/cert.pem"
    assert v["tls_key"] == "/etc/debate/key.pem"
    assert v["artifact_dir"] == f"{cwd}/../shared/artifacts"


# --------------------------------------------------------------------------
# the embedded PostgreSQL's start error
# --------------------------------------------------------------------------

FAKE_PG_CTL = """#!/bin/sh
# pg_ctl as far as a start that fails goes: "status" finds no server, "start" fails, after writing what
# $DEBATE_TEST_START_SAYS says to the log (pg_ctl -l appends to it).
if [ "$1" = status ]; then echo "pg_ctl: no server running"; exit 3; fi
while [ $# -gt 0 ]; do
    if [ "$1" = -l ]; then log=$2; fi
    shift
done
if [ -n "$DEBATE_TEST_START_SAYS" ]; then echo "$DEBATE_TEST_START_SAYS" >> "$log"; fi
echo "pg_ctl: could not start server" >&2
echo "Examine the log output." >&2
exit 1
"""


@pytest.mark.parametrize("says, reason", [("", None),
                                          ("2026-01-02 03:04:05 UTC FATAL:  this start's reason",
                                           "FATAL:  this start's reason")])
def test_an_embedded_start_error_names_only_what_this_start_logged(cwd, says, reason):
    """An earlier start's FATAL line in the log is not the reason this start failed."""
    bindir = cwd / "pgbin"
    bindir.mkdir(mode=0o755)
    (bindir / "pg_ctl").write_text(FAKE_PG_CTL)
    (bindir / "pg_ctl").chmod(0o755)
    pg = cwd / "data" / "pg"
    (pg / "data").mkdir(parents=True)
    (pg / "data" / "PG_VERSION").write_text("15\n")
    log = pg / "postgres.log"
    log.write_text("2026-01-01 00:00:00 UTC FATAL:  an earlier start's reason\n")
    if IS_ROOT:
        shutil.chown(log, "postgres")
    p = debate(["migrate"], cwd, {"DEBATE_PG_BINDIR": bindir, "DEBATE_TEST_START_SAYS": says})
    assert p.returncode == 1, p.stderr
    head = f'debate migrate: the embedded PostgreSQL did not start (its log is "{log}")'
    expected = f"{head}: {reason}\n" if reason else f"{head}\n"
    assert p.stderr.startswith(expected), p.stderr
    assert "an earlier start's reason" not in p.stderr, p.stderr
    assert "pg_ctl: could not start server" in p.stderr, p.stderr
