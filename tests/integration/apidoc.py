"""Helpers for the page and API-document tests: a package index made on the
spot (as resolve_lock leaves one in the package cache), and checking an
answer against the OpenAPI document the server serves.

Only the standard library and python3-jsonschema (Draft 2020-12, as OpenAPI
3.1 uses) are needed.
"""

import hashlib
import json
import lzma
from pathlib import Path

import jsonschema

REPO = Path(__file__).resolve().parents[2]
DOC_URI = "urn:debate:openapi"

PACKAGES = [
    ("vim", "2:9.0.1378-2", "Vi IMproved - enhanced vi editor"),
    ("vim-tiny", "2:9.0.1378-2", "Vi IMproved - enhanced vi editor - compact version"),
    ("neovim", "0.7.2-7", "heavily refactored vim fork"),
    ("busybox", "1:1.35.0-4", "Tiny utilities for small and embedded systems"),
    ("linux-image-amd64", "6.1.170-3", "Linux for 64-bit PCs (meta-package)"),
]
INDEX_DATE = "Sat, 11 Jul 2026 10:16:37 UTC"


def make_index(data_dir, codename="bookworm", date=INDEX_DATE, packages=PACKAGES):
    """Writes DATA/cache/indexes/<InRelease sha256>/{InRelease,Packages.xz};
    returns the InRelease's SHA-256. A lone surrogate in date ("\\udce9")
    becomes that byte (0xe9), for a release file that is not UTF-8."""
    text = "".join(f"Package: {n}\nVersion: {v}\nArchitecture: amd64\nDescription: {d}\n long text\n\n"
                   for n, v, d in packages)
    xz = lzma.compress(text.encode(), format=lzma.FORMAT_XZ)
    inrelease = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        f"Origin: Debian\nSuite: stable\nCodename: {codename}\nDate: {date}\n"
        f"SHA256:\n {hashlib.sha256(xz).hexdigest()} {len(xz)} main/binary-amd64/Packages.xz\n"
        "-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n").encode("utf-8", "surrogateescape")
    sha = hashlib.sha256(inrelease).hexdigest()
    d = Path(data_dir) / "cache" / "indexes" / sha
    d.mkdir(parents=True)
    (d / "InRelease").write_bytes(inrelease)
    (d / "Packages.xz").write_bytes(xz)
    return sha


def load_doc():
    return json.loads((REPO / "docs" / "openapi.json").read_text())


def _validator(doc, schema):
    """A Draft 2020-12 validator that resolves the document's references
    (jsonschema 4.18 and later: a referencing registry; before: RefResolver)."""
    try:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012
    except ImportError:
        resolver = jsonschema.RefResolver(DOC_URI, doc, store={DOC_URI: doc})
        return jsonschema.Draft202012Validator(schema, resolver=resolver)
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _resolve(doc, node):
    """Follows a local $ref ("#/components/responses/X") in the document."""
    while isinstance(node, dict) and set(node) == {"$ref"}:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def response_schema(doc, template, method, status, media="application/json"):
    """The schema the document gives for this answer; fails when it gives none."""
    op = doc["paths"][template][method.lower()]
    responses = op["responses"]
    assert str(status) in responses, \
        f"{method} {template}: the document has no {status} answer (it has {sorted(responses)})"
    resp = _resolve(doc, responses[str(status)])
    content = resp.get("content", {})
    for key in (media, media.split("/")[0] + "/*", "*/*"):
        if key in content:
            return content[key]["schema"]
    raise AssertionError(f"{method} {template} {status}: the document has no {media} body")


def check_answer(doc, template, method, r):
    """Asserts that response r (a conftest Response) matches the document."""
    media = (r.header("Content-Type") or "").split(";")[0].strip()
    schema = response_schema(doc, template, method, r.status, media)
    if media != "application/json":
        return
    body = r.json()
    validator = _validator(doc, _rebase(schema))
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, (f"{method} {template} {r.status}: the answer does not match the document: "
                        + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5]))


def _rebase(schema):
    """The schema with its local references made absolute to the document."""
    if isinstance(schema, dict):
        return {k: (DOC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema
