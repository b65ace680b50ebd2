#!/usr/bin/python3
"""Checks that every file under src/ includes only the layers below it.

    scripts/check-layers.py [SRC_DIR]        (default: the src/ beside scripts/)

The layers, from the bottom: the top-level helpers (util, digest, log,
config, proc, banned); db/ and engine/ beside each other; service/, which
puts the engine and the database together; http/, which parses and answers
and reaches builds only through service/; and the commands (src/cmd/ and
main.c), which may include anything. A directory of src/ without a rule is
itself an error, so a new layer has to say where it sits.

Each violation prints as FILE:LINE: includes "HEADER": RULE, and the exit
status is 1; a clean tree exits 0. An include is resolved as the compiler
resolves it (quotes: beside the file first, then src/; angle brackets: src/
only, through -Isrc), so "sandbox.h" from engine/ counts as engine/sandbox.h.
"""
import os
import re
import sys

TOP = ""            # the top-level helpers: src/*.c and src/*.h
EVERYTHING = None   # the commands: no restriction

# layer -> (layers it may include, why)
RULES = {
    TOP: ({TOP}, "the top-level helpers are the base every layer uses and include no layer"),
    "db": ({TOP, "db"}, "db/ stands on the top-level helpers alone"),
    "engine": ({TOP, "engine"}, "the engine knows nothing of the service, the database or HTTP"),
    "service": ({TOP, "db", "engine", "service"}, "service/ joins the engine and the database"),
    "http": ({TOP, "db", "service", "http"}, "the HTTP layer parses and answers; builds go through service/"),
    "client": ({TOP, "client"}, "the API client speaks HTTP to a server; it shares nothing with the server's layers"),
    "cmd": (EVERYTHING, "the commands may include anything"),
}
# Files that are a layer of their own, whatever their directory.
FILE_LAYERS = {"main.c": "cmd"}

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]')


def strip_comments(text):
    """Blanks comments (keeping their newlines, so line numbers hold) while
    leaving string and character literals alone: a "/*" inside a string
    opens no comment."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def layer_of(rel):
    """The layer of a path relative to src/: its first directory, or TOP."""
    if rel in FILE_LAYERS:
        return FILE_LAYERS[rel]
    return rel.split("/", 1)[0] if "/" in rel else TOP


def show(layer):
    return "top-level" if layer == TOP else f"{layer}/"


def resolve(src, rel_file, bracket, name):
    """The included file relative to src/, or None for a header from
    outside the tree (libc, h2o, jansson ...)."""
    if bracket == '"':
        beside = os.path.normpath(os.path.join(os.path.dirname(rel_file), name))
        if os.path.isfile(os.path.join(src, beside)):
            return beside
    rel = os.path.normpath(name)
    if rel.startswith("..") or os.path.isabs(rel):
        return None
    if os.path.isfile(os.path.join(src, rel)):
        return rel
    # A header that does not exist yet still names its layer, when it
    # names one: the compiler will complain about the rest.
    first = rel.split("/", 1)[0]
    return rel if "/" in rel and first in RULES else None


def check_file(src, rel_file):
    layer = layer_of(rel_file)
    if layer not in RULES:
        return [f"src/{rel_file}: no layering rule for src/{layer}/: add it to scripts/check-layers.py"]
    allowed, why = RULES[layer]
    if allowed is EVERYTHING:
        return []
    with open(os.path.join(src, rel_file), encoding="utf-8", errors="replace") as f:
        text = strip_comments(f.read())
    problems = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        target = resolve(src, rel_file, m.group(1), m.group(2))
        if target is None or layer_of(target) in allowed:
            continue
        may = ", ".join(show(x) for x in sorted(allowed))
        problems.append(f"src/{rel_file}:{lineno}: includes \"{m.group(2)}\": {show(layer)} may not include "
                        f"{show(layer_of(target))} headers ({why}; {show(layer)} may include {may})")
    return problems


def source_files(src):
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(root, name), src)


def main(argv):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = argv[1] if len(argv) > 1 else os.path.join(here, "src")
    if not os.path.isdir(src):
        print(f"check-layers: \"{src}\" is not a directory", file=sys.stderr)
        return 2
    files = list(source_files(src))
    problems = [p for rel in files for p in check_file(src, rel)]
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} layering violation(s) in {len(files)} files", file=sys.stderr)
        return 1
    print(f"check-layers: {len(files)} files, every include within its layer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
