"""A result cache, so an unchanged file is not parsed again.

Layout: `<cache dir>/<gradlint version>/<hash of the settings and gradlint's code>/results.json`,
one file per configuration (one read and one write per run, not one per source file). An entry
holds the file's size, modification time and content hash, its findings or error, and the same
for the sibling modules its analysis read (a data rule looking into `envs.py`): it is used only
when all of them still match, so a change of version, settings, the file or a sibling never
serves a stale result. Size and modification time spare hashing an unchanged file; they are
trusted only when the file was last modified well before the entry was made (as git does for
its index), and the content hash decides otherwise. The file is replaced atomically, merged with
what another run wrote meanwhile: two runs at once can only cost a later run some re-linting.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

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


def file_stamp(path: str) -> tuple[int, int, int] | None:
    """(size, modification time, when this was asked) in ns, or None. Taken before a file is
    read or hashed, so that a change made afterwards shows as a newer modification time."""
    now = time.time_ns()
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, now


RACY_NS = 2_000_000_000  # a file modified this close to its entry may change again unseen


class Cache:
    def __init__(self, directory: str, settings: Settings) -> None:
        self.root = directory
        key = hashlib.sha256((settings.fingerprint() + _code_fingerprint()).encode()).hexdigest()[:16]
        self.directory = os.path.join(directory, __version__, key)
        self.path = os.path.join(self.directory, "results.json")
        self._entries: dict[str, dict] | None = None
        self._changed: dict[str, dict] = {}

    def _load(self) -> dict[str, dict]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                entries = json.load(handle)
            return entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            return {}

    @property
    def entries(self) -> dict[str, dict]:
        if self._entries is None:
            self._entries = self._load()
        return self._entries

    def _unchanged(self, path: str, recorded: dict) -> bool:
        stamp = file_stamp(path)
        if stamp is None:
            return False
        size, mtime, _ = stamp
        if (size == recorded.get("size") and mtime == recorded.get("mtime")
                and mtime < recorded.get("checked", 0) - RACY_NS):
            return True
        return file_hash(path) == recorded.get("hash")

    def get(self, path: str):
        """The cached FileResult for `path`, or None."""
        from gradlint.engine import FileResult

        entry = self.entries.get(os.path.abspath(path))
        if not isinstance(entry, dict) or not self._unchanged(path, entry):
            return None
        for dependency, recorded in entry.get("dependencies", {}).items():
            if not self._unchanged(dependency, recorded):
                return None
        try:
            result = FileResult(path)
            result.diagnostics = [_diagnostic(d, path) for d in entry.get("diagnostics", [])]
            if entry.get("error"):
                result.error = FileError(path, **entry["error"])
        except (KeyError, TypeError, ValueError):
            return None  # an entry of another shape: lint again
        return result

    def put(self, result) -> None:
        """Remember a FileResult. Its `stamp` was taken before the file was read, so that a change
        made while it was linted is seen next time."""
        if result.content_hash is None:
            return
        size, mtime, checked = result.stamp or (None, None, 0)  # no stamp: the hash always decides
        deps = {}
        for dependency in result.dependencies:
            dep_size, dep_mtime, dep_checked = file_stamp(dependency) or (None, None, 0)
            deps[dependency] = {"size": dep_size, "mtime": dep_mtime, "hash": file_hash(dependency),
                                "checked": dep_checked}
        entry = {
            "size": size, "mtime": mtime, "hash": result.content_hash, "checked": checked,
            "dependencies": deps,
            "diagnostics": [d.to_dict() for d in result.diagnostics],
            "error": None if result.error is None else {
                "message": result.error.message, "line": result.error.line, "column": result.error.column},
        }
        key = os.path.abspath(result.path)
        self.entries[key] = entry
        self._changed[key] = entry

    def save(self) -> None:
        """Write what this run learnt, merged into what is on disk now."""
        if not self._changed:
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            for name, content in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", "*\n")):
                tag = os.path.join(self.root, name)
                if not os.path.exists(tag):
                    _write_atomically(tag, content)
            merged = self._load()
            merged.update(self._changed)
            _write_atomically(self.path, json.dumps(merged, separators=(",", ":")))
            self._changed = {}
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
                      data["message"], Severity(data["severity"]), fix, data.get("subject"), cell=data.get("cell"))
