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
of its own. A checksum anyone can recompute would stop corruption, not forgery, so the results
file carries an HMAC-SHA256 of its JSON body under a random key kept outside the project, in
the user's cache directory (`$XDG_CACHE_HOME/gradlint/cache-key`, 0600), bound to the file
format, gradlint's version and the settings. A file whose MAC does not check out is ignored
whole and rewritten; an entry of the wrong shape in a genuine file (a bug of gradlint's own)
is ignored, its file linted again and the entry rewritten; where no key can be kept, nothing is
cached. One MAC per file, not per entry: a warm run verifies it in one pass over the bytes.
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
        self._changed: dict[str, dict] = {}
        self.enabled = self._usable()

    def _usable(self) -> bool:
        """False where no key can be kept or a directory of the cache is a symbolic link (a link
        committed to a repository could send the cache's writes anywhere)."""
        if self.secret is None:
            return False
        parts = (self.root, os.path.join(self.root, __version__), self.directory)
        return not any(os.path.islink(part) for part in parts)

    def _mac(self, body: bytes) -> bytes:
        assert self.secret is not None
        context = f"gradlint-cache\0{FORMAT}\0{__version__}\0{self.key}\0".encode()
        return hmac.digest(self.secret, context + body, "sha256")

    def _sign(self, entries: dict) -> bytes:
        """The results file: a header line with the MAC of the JSON body that follows it."""
        body = json.dumps(entries, separators=(",", ":")).encode("utf-8", "surrogatepass")
        return b"gradlint-cache %d %s\n" % (FORMAT, self._mac(body).hex().encode()) + body

    def _load(self) -> dict:
        """The entries on disk now, if the file is genuine (signed with this user's key for
        this version and these settings); {} for anything else. Entries are shape-checked
        when used."""
        from gradlint.source import SourceError, read_bytes

        try:
            header, _, body = read_bytes(self.path, MAX_RESULTS_BYTES).partition(b"\n")
        except SourceError:
            return {}
        fields = header.split(b" ")
        if len(fields) != 3 or fields[:2] != [b"gradlint-cache", str(FORMAT).encode()]:
            return {}
        try:
            genuine = hmac.compare_digest(bytes.fromhex(fields[2].decode("ascii")), self._mac(body))
        except (ValueError, UnicodeDecodeError):
            return {}
        if not genuine:
            return {}
        try:
            entries = json.loads(body)
        except (ValueError, RecursionError):
            return {}
        return entries if type(entries) is dict else {}

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

        entry = self.entries.get(os.path.abspath(path)) if self.enabled else None
        if not _well_formed(entry) or not self._unchanged(path, entry):
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
        except (KeyError, TypeError, ValueError):  # _Malformed is a ValueError
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
        self.entries[key] = entry
        self._changed[key] = entry

    def save(self) -> None:
        """Write what this run learnt, merged into what is on disk now (if that is genuine: a
        forged or damaged file is replaced whole)."""
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
            merged = {path: entry for path, entry in self._load().items() if _well_formed(entry)}
            merged.update(self._changed)
            _write_atomically(self.path, self._sign(merged))
            self._changed = {}
        except OSError:
            pass  # a read-only tree: lint without caching


def _write_atomically(path: str, content: str | bytes) -> None:
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(temp, path)  # replaces a link planted at `path`, never writes through it
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


# shape checks: an entry is used only when every field has the type the code relies on. A
# genuine entry was written by this very code (the MAC binds the code's fingerprint), so these
# guard against gradlint's own bugs; they are one pass, made while the result is built.

_SEVERITIES = {s.value: s for s in Severity}
_APPLICABILITIES = {a.value: a for a in Applicability}


class _Malformed(ValueError):
    pass


def _int(value: object, low: int = 0) -> bool:
    return type(value) is int and value >= low


def _stamp_ok(recorded: object) -> bool:
    if type(recorded) is not dict:
        return False
    size, mtime, digest = recorded.get("size"), recorded.get("mtime"), recorded.get("hash")
    return ((size is None or _int(size)) and (mtime is None or _int(mtime)) and _int(recorded.get("checked"))
            and (digest is None or type(digest) is str))


def _well_formed(entry: object) -> bool:
    """The entry's own fields (its diagnostics are checked by `_diagnostic` as they are built)."""
    if not (type(entry) is dict and _stamp_ok(entry) and type(entry.get("hash")) is str):
        return False
    dependencies, error = entry.get("dependencies"), entry.get("error")
    if type(dependencies) is not dict or type(entry.get("diagnostics")) is not list:
        return False
    if not all(type(k) is str and _stamp_ok(v) for k, v in dependencies.items()):
        return False
    return error is None or (type(error) is dict and error.keys() == {"message", "line", "column"}
                             and type(error["message"]) is str and _int(error["line"])
                             and (error["column"] is None or _int(error["column"])))


def _require(condition: bool) -> None:
    if not condition:
        raise _Malformed


def _diagnostic(data: dict, path: str) -> Diagnostic:
    """A Diagnostic from its stored form; _Malformed (or KeyError/TypeError) for any other shape."""
    _require(type(data) is dict)
    line, column, end_line, end_column = data["line"], data["column"], data["end_line"], data["end_column"]
    _require(_int(line, 1) and _int(column, 1) and _int(end_line, 1) and _int(end_column, 1))
    code, message, subject, cell = data["code"], data["message"], data.get("subject"), data.get("cell")
    _require(code in RULES_BY_CODE and type(message) is str and (subject is None or type(subject) is str)
             and (cell is None or _int(cell, 1)))
    fix = None
    raw = data.get("fix")
    if raw is not None:
        _require(type(raw) is dict and type(raw["message"]) is str and type(raw["edits"]) is list)
        edits = []
        for e in raw["edits"]:
            _require(type(e) is dict and _int(e["start"]) and _int(e["end"]) and e["start"] <= e["end"]
                     and type(e["content"]) is str)
            location, end_location = e["location"], e["end_location"]
            _require(type(location) is list and type(end_location) is list and len(location) == len(end_location) == 2)
            _require(_int(location[0]) and _int(location[1]) and _int(end_location[0]) and _int(end_location[1]))
            edits.append(Edit(e["start"], e["end"], e["content"], tuple(location), tuple(end_location)))
        fix = Fix(raw["message"], tuple(edits), _APPLICABILITIES[raw["applicability"]])
    return Diagnostic(path, line, column, end_line, end_column, code, message, _SEVERITIES[data["severity"]],
                      fix, subject, None, cell)
