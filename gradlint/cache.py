"""A content-hash cache of lint results, so an unchanged file is not parsed again.

Layout: `<cache dir>/<gradlint version>/<hash of the settings>/<hash of the path>.json`. An entry
holds the file's content hash, its findings or error, and the content hashes of the sibling
modules its analysis read (a data rule looking into `envs.py`): it is used only when all of
them still match, so a change of version, settings, the file or a sibling never serves a stale
result. Entries are written through a temporary file and a rename, so two runs at once never
see a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from gradlint import __version__
from gradlint.config import Settings
from gradlint.diagnostics import Applicability, Diagnostic, Edit, FileError, Fix, Severity

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by gradlint.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def _code_fingerprint() -> str:
    """gradlint's own files (name, size, mtime): an edited checkout is not the same version."""
    package = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for directory, _, names in os.walk(package):
        for name in sorted(names):
            if name.endswith(".py"):
                stat = os.stat(os.path.join(directory, name))
                parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(sorted(parts))


def file_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


class Cache:
    def __init__(self, directory: str, settings: Settings) -> None:
        self.root = directory
        key = hashlib.sha256((settings.fingerprint() + _code_fingerprint()).encode()).hexdigest()[:16]
        self.directory = os.path.join(directory, __version__, key)

    def _prepare(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        for name, content in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", "*\n")):
            path = os.path.join(self.root, name)
            if not os.path.exists(path):
                _write_atomically(path, content)

    def _entry_path(self, path: str) -> str:
        key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:32]
        return os.path.join(self.directory, key + ".json")

    def get(self, path: str):
        """The cached FileResult for `path`, or None."""
        from gradlint.engine import FileResult

        try:
            with open(self._entry_path(path), encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        if entry.get("hash") != file_hash(path):
            return None
        for dependency, digest in entry.get("dependencies", {}).items():
            if file_hash(dependency) != digest:
                return None
        result = FileResult(path)
        result.diagnostics = [_diagnostic(d, path) for d in entry.get("diagnostics", [])]
        if entry.get("error"):
            result.error = FileError(path, **entry["error"])
        return result

    def put(self, result, content_hash: str | None, dependencies: list[str]) -> None:
        if content_hash is None:
            return
        try:
            self._prepare()
            entry = {
                "hash": content_hash,
                "dependencies": {d: file_hash(d) for d in dependencies},
                "diagnostics": [d.to_dict() for d in result.diagnostics],
                "error": None if result.error is None else {
                    "message": result.error.message, "line": result.error.line, "column": result.error.column},
            }
            _write_atomically(self._entry_path(result.path), json.dumps(entry))
        except OSError:
            pass  # a read-only tree: lint without caching


def _write_atomically(path: str, content: str) -> None:
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _diagnostic(data: dict, path: str) -> Diagnostic:
    fix = None
    if data.get("fix"):
        raw = data["fix"]
        fix = Fix(raw["message"], tuple(Edit(e["start"], e["end"], e["content"], tuple(e["location"]), tuple(e["end_location"]))
                                        for e in raw["edits"]), Applicability(raw["applicability"]))
    return Diagnostic(path, data["line"], data["column"], data["end_line"], data["end_column"], data["code"],
                      data["message"], Severity(data["severity"]), fix, data.get("subject"))
