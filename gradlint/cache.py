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

Trust: the cache usually lies inside the project, where a pull request can put a results file
of its own. A checksum anyone can recompute would stop corruption, not forgery, so each entry
carries an HMAC-SHA256 under a random key kept outside the project, in the user's cache
directory (`$XDG_CACHE_HOME/gradlint/cache-key`, 0600), bound to gradlint's version, the
settings, the file's absolute path and the entry's exact text. An entry whose MAC or shape does
not check out is ignored, the file linted again, and the entry rewritten; where no key can be
kept, nothing is cached.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import time

from gradlint import __version__
from gradlint.config import Settings
from gradlint.diagnostics import Applicability, Diagnostic, Edit, FileError, Fix, Severity
from gradlint.rules import RULES_BY_CODE

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by gradlint.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
FORMAT = 2
MAX_RESULTS_BYTES = 256_000_000  # a results file larger than this is ignored and rewritten
KEY_BYTES = 32


def _code_fingerprint() -> str:
    """gradlint's own files (name, size, mtime): an edited checkout is not the same version."""
    package = os.path.dirname(os.path.abspath(__file__))
    parts = []
    for directory, _, names in os.walk(package):
        for name in sorted(names):
            if name.endswith(".py"):
                status = os.stat(os.path.join(directory, name))
                parts.append(f"{name}:{status.st_size}:{status.st_mtime_ns}")
    return "|".join(sorted(parts))


def file_hash(path: str) -> str | None:
    """SHA-256 of a regular file's bytes; None for anything gradlint would not read."""
    from gradlint.source import SourceError, read_bytes

    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except SourceError:
        return None


def file_stamp(path: str) -> tuple[int, int, int] | None:
    """(size, modification time, when this was asked) in ns, or None (also for anything but a
    regular file). Taken before a file is read or hashed, so that a change made afterwards
    shows as a newer modification time."""
    now = time.time_ns()
    try:
        status = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return status.st_size, status.st_mtime_ns, now


RACY_NS = 2_000_000_000  # a file modified this close to its entry may change again unseen


def key_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gradlint", "cache-key")


_KEYS: dict[str, bytes | None] = {}


def cache_key() -> bytes | None:
    """The per-user secret that signs cache entries, made on first use; None if it cannot be kept."""
    path = key_path()
    if path not in _KEYS:
        _KEYS[path] = _load_or_make_key(path)
    return _KEYS[path]


def _load_or_make_key(path: str) -> bytes | None:
    from gradlint.source import SourceError, read_bytes

    for _ in range(2):
        try:
            key = read_bytes(path, KEY_BYTES)
            return key if len(key) == KEY_BYTES else None
        except SourceError:
            pass
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".key-")  # 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secrets.token_bytes(KEY_BYTES))
                os.link(temp, path)  # atomic and never replaces: two runs at once agree on one key
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not os.path.lexists(path):
                    os.replace(temp, path)
            finally:
                if os.path.lexists(temp):
                    os.unlink(temp)
        except OSError:
            return None
    return None


class Cache:
    def __init__(self, directory: str, settings: Settings) -> None:
        self.root = directory
        self.settings = settings
        self.key = hashlib.sha256((settings.fingerprint() + _code_fingerprint()).encode()).hexdigest()[:16]
        self.directory = os.path.join(directory, __version__, self.key)
        self.path = os.path.join(self.directory, "results.json")
        self.secret = cache_key()
        self._entries: dict | None = None
        self._changed: dict[str, list[str]] = {}
        self.enabled = self._usable()

    def _usable(self) -> bool:
        """False where no key can be kept or a directory of the cache is a symbolic link (a link
        committed to a repository could send the cache's writes anywhere)."""
        if self.secret is None:
            return False
        parts = (self.root, os.path.join(self.root, __version__), self.directory)
        return not any(os.path.islink(part) for part in parts)

    def _mac(self, path: str, payload: str) -> str:
        assert self.secret is not None
        message = "\0".join(("gradlint-cache", __version__, self.key, path, payload)).encode("utf-8", "surrogatepass")
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _signed(self, path: str, stored: object) -> dict | None:
        """The entry of a stored [mac, payload] pair, or None if it is not genuine and well formed."""
        if not (isinstance(stored, list) and len(stored) == 2 and all(isinstance(s, str) for s in stored)):
            return None
        mac, payload = stored
        if not hmac.compare_digest(mac, self._mac(path, payload)):
            return None
        try:
            entry = json.loads(payload)
        except (ValueError, RecursionError):
            return None
        return entry if _well_formed(entry) else None

    def _load(self) -> dict[str, list[str]]:
        """The stored pairs on disk now (not yet checked); {} for anything unreadable."""
        from gradlint.source import SourceError, read_bytes

        try:
            data = json.loads(read_bytes(self.path, MAX_RESULTS_BYTES))
        except (SourceError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            return {}
        return data["entries"]

    @property
    def entries(self) -> dict:
        if self._entries is None:
            self._entries = self._load() if self.enabled else {}
        return self._entries

    def _unchanged(self, path: str, recorded: dict) -> bool:
        stamp = file_stamp(path)
        if stamp is None:
            return False
        size, mtime, _ = stamp
        if (size == recorded["size"] and mtime == recorded["mtime"]
                and mtime < recorded["checked"] - RACY_NS):
            return True
        return file_hash(path) == recorded["hash"]

    def get(self, path: str):
        """The cached FileResult for `path`, or None (also for an entry that is not genuine,
        not well formed, or names a rule the settings do not enable for this file)."""
        from gradlint.engine import FileResult

        key = os.path.abspath(path)
        entry = self._signed(key, self.entries.get(key)) if self.enabled else None
        if entry is None or not self._unchanged(path, entry):
            return None
        for dependency, recorded in entry["dependencies"].items():
            if not self._unchanged(dependency, recorded):
                return None
        enabled = self.settings.enabled_for(path)
        try:
            result = FileResult(path)
            result.diagnostics = [_diagnostic(d, path) for d in entry["diagnostics"]]
            if entry["error"]:
                result.error = FileError(path, **entry["error"])
        except (KeyError, TypeError, ValueError):
            return None
        if any(d.code not in enabled for d in result.diagnostics):
            return None
        return result

    def put(self, result) -> None:
        """Remember a FileResult. Its `stamp` was taken before the file was read, so that a change
        made while it was linted is seen next time."""
        if result.content_hash is None or not self.enabled:
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
        payload = json.dumps(entry, separators=(",", ":"))
        stored = [self._mac(key, payload), payload]
        self.entries[key] = stored
        self._changed[key] = stored

    def save(self) -> None:
        """Write what this run learnt, merged into what is on disk now, dropping every entry
        there that is not genuine or well formed."""
        if not self._changed or not self.enabled:
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            if not self._usable():  # a link appeared while the directories were made
                return
            for name, content in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", "*\n")):
                tag = os.path.join(self.root, name)
                if not os.path.lexists(tag):
                    _write_atomically(tag, content)
            merged = {path: stored for path, stored in self._load().items() if self._signed(path, stored) is not None}
            merged.update(self._changed)
            _write_atomically(self.path, json.dumps({"format": FORMAT, "entries": merged}, separators=(",", ":")))
            self._changed = {}
        except OSError:
            pass  # a read-only tree: lint without caching


def _write_atomically(path: str, content: str) -> None:
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(temp, path)  # replaces a link planted at `path`, never writes through it
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


# shape checks: an entry is used only when every field has the type the code below relies on

def _int(value: object, low: int = 0) -> bool:
    return type(value) is int and value >= low


def _stamp_ok(recorded: object) -> bool:
    return (isinstance(recorded, dict)
            and (recorded.get("size") is None or _int(recorded.get("size")))
            and (recorded.get("mtime") is None or _int(recorded.get("mtime")))
            and _int(recorded.get("checked"))
            and (recorded.get("hash") is None or isinstance(recorded.get("hash"), str)))


def _well_formed(entry: object) -> bool:
    if not (isinstance(entry, dict) and _stamp_ok(entry) and isinstance(entry.get("hash"), str)):
        return False
    dependencies, diagnostics, error = entry.get("dependencies"), entry.get("diagnostics"), entry.get("error")
    if not (isinstance(dependencies, dict) and all(isinstance(k, str) and _stamp_ok(v) for k, v in dependencies.items())):
        return False
    if not (isinstance(diagnostics, list) and all(_diagnostic_ok(d) for d in diagnostics)):
        return False
    return error is None or (isinstance(error, dict) and set(error) == {"message", "line", "column"}
                             and isinstance(error["message"], str) and _int(error["line"])
                             and (error["column"] is None or _int(error["column"])))


def _diagnostic_ok(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    positions = all(_int(data.get(name), 1) for name in ("line", "column", "end_line", "end_column"))
    return (positions and data.get("code") in RULES_BY_CODE and isinstance(data.get("message"), str)
            and data.get("severity") in {s.value for s in Severity}
            and (data.get("subject") is None or isinstance(data.get("subject"), str))
            and (data.get("cell") is None or _int(data.get("cell"), 1))
            and (data.get("fix") is None or _fix_ok(data["fix"])))


def _fix_ok(fix: object) -> bool:
    if not (isinstance(fix, dict) and isinstance(fix.get("message"), str)
            and fix.get("applicability") in {a.value for a in Applicability} and isinstance(fix.get("edits"), list)):
        return False
    return all(isinstance(e, dict) and _int(e.get("start")) and _int(e.get("end")) and e["start"] <= e["end"]
               and isinstance(e.get("content"), str)
               and all(isinstance(e.get(k), list) and len(e[k]) == 2 and all(_int(v) for v in e[k])
                       for k in ("location", "end_location"))
               for e in fix["edits"])


def _diagnostic(data: dict, path: str) -> Diagnostic:
    fix = None
    if data.get("fix"):
        raw = data["fix"]
        fix = Fix(raw["message"], tuple(Edit(e["start"], e["end"], e["content"], tuple(e["location"]), tuple(e["end_location"]))
                                        for e in raw["edits"]), Applicability(raw["applicability"]))
    return Diagnostic(path, data["line"], data["column"], data["end_line"], data["end_column"], data["code"],
                      data["message"], Severity(data["severity"]), fix, data.get("subject"), None, data.get("cell"))
