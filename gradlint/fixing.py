"""Applying fixes to text, checking the result, showing diffs, and writing files safely."""

from __future__ import annotations

import ast
import difflib
import os
import re
import secrets
import stat
import warnings

from gradlint.diagnostics import Diagnostic, Edit
from gradlint.source import SourceFile


def parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _overlaps(a: Edit, b: Edit) -> bool:
    if a.start == a.end == b.start == b.end:
        return True  # two insertions at one point: their order would be arbitrary
    return a.start < b.end and b.start < a.end


def splice(text: str, edits: list[Edit]) -> str:
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        text = text[: edit.start] + edit.content + text[edit.end :]
    return text


def apply_fixes(text: str, diagnostics: list[Diagnostic]) -> tuple[str, int, list[Diagnostic]]:
    """Apply the fixes of `diagnostics` that do not overlap each other.

    Returns the new text, how many fixes went in, and the fixes rejected because the code
    would no longer parse. Overlapping fixes wait for the next round (after a re-lint).
    """
    accepted: list[Diagnostic] = []
    taken: list[Edit] = []
    for diagnostic in sorted(diagnostics, key=lambda d: min(e.start for e in d.fix.edits)):  # type: ignore[union-attr]
        edits = diagnostic.fix.edits  # type: ignore[union-attr]
        if any(_overlaps(edit, other) for edit in edits for other in taken):
            continue
        accepted.append(diagnostic)
        taken.extend(edits)
    if not accepted:
        return text, 0, []
    candidate = splice(text, taken)
    if parses(candidate):
        return candidate, len(accepted), []
    # find the culprit(s): apply one fix at a time
    rejected = []
    good: list[Edit] = []
    for diagnostic in accepted:
        trial = good + list(diagnostic.fix.edits)  # type: ignore[union-attr]
        if parses(splice(text, trial)):
            good = trial
        else:
            rejected.append(diagnostic)
    return splice(text, good), len(accepted) - len(rejected), rejected


_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # Python's line endings only (splitlines also splits at \f)


def unified_diff(path: str, before: str, after: str) -> str:
    """A unified diff; the path in its headers escaped (a newline in a name cannot add lines)."""
    from gradlint.output.escape import printable

    shown = printable(path)
    lines = difflib.unified_diff(
        _LINES.findall(before), _LINES.findall(after),
        fromfile=f"a/{shown}", tofile=f"b/{shown}", n=3,
    )
    out = []
    for line in lines:
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def write_atomically(source: SourceFile, data: bytes) -> str | None:
    """Replace the file with `data` via a temporary file and a rename, keeping its permissions.

    Returns an error message instead of writing when the path is a symbolic link (a link inside
    the tree may point anywhere: the file it names is written only when named itself), when the
    file is not a regular file or is read-only (no write permission bit, or no access), or when it
    changed on disk since it was read (another run or an editor), so no one's edit is lost. The
    directory is opened once and every step names the file relative to it, so a directory swapped
    for a link meanwhile cannot redirect the write.
    """
    path = os.path.abspath(source.path)
    directory, name = os.path.split(path)
    relative = _supports_dir_fd()
    dir_fd = None
    temp = None
    try:
        if relative:
            dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        at = name if relative else path
        where = {"dir_fd": dir_fd} if relative else {}
        status = os.stat(at, follow_symlinks=False, **where)
        if stat.S_ISLNK(status.st_mode):
            return "is a symbolic link; --fix does not write through links (name the file it points to)"
        if not stat.S_ISREG(status.st_mode):
            return "not a regular file; not written"
        if not status.st_mode & 0o222 or not os.access(at, os.W_OK, **where):
            return "is read-only; not written"
        if source.raw is not None and _read_exactly(at, status, where, len(source.raw)) != source.raw:
            return "changed on disk during the run; not written (run again)"
        temp = f".{name}.{secrets.token_hex(4)}.gradlint-tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp if relative else os.path.join(directory, temp), flags | getattr(os, "O_BINARY", 0), 0o600, **where)
        mode = stat.S_IMODE(status.st_mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                os.fchown(handle.fileno(), status.st_uid, status.st_gid)  # root fixing a user's file keeps its owner
        if relative:
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.chmod(os.path.join(directory, temp), mode)
            os.replace(os.path.join(directory, temp), path)
        temp = None
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    finally:
        if temp is not None:
            try:
                if relative:
                    os.unlink(temp, dir_fd=dir_fd)
                else:
                    os.unlink(os.path.join(directory, temp))
            except OSError:
                pass
        if dir_fd is not None:
            os.close(dir_fd)
    return None


def _supports_dir_fd() -> bool:
    return {os.open, os.stat, os.rename, os.unlink, os.access} <= os.supports_dir_fd and hasattr(os, "fchmod")


def _read_exactly(at: str, status: os.stat_result, where: dict, expected: int) -> bytes | None:
    """The file's bytes as they are now, up to one more than `expected` (None if it is no
    longer the same regular file)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(at, flags | getattr(os, "O_BINARY", 0), **where)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (status.st_dev, status.st_ino):
            return None
        chunks, size = [], 0
        while size <= expected and (chunk := os.read(fd, min(1 << 20, expected + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
