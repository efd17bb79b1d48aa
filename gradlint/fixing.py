"""Applying fixes to text, checking the result, showing diffs, and writing files safely."""

from __future__ import annotations

import ast
import difflib
import os
import stat
import tempfile
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


def unified_diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{path}", tofile=f"b/{path}", n=3,
    )
    out = []
    for line in lines:
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def write_atomically(source: SourceFile, data: bytes) -> str | None:
    """Replace the file with `data` via a temporary file and a rename, keeping its permissions.

    Returns an error message instead of writing when the file changed on disk since it was
    read (another run or an editor), so no one's edit is lost.
    """
    path = os.path.realpath(source.path)  # write through a symlink, not over it
    try:
        with open(path, "rb") as handle:
            if source.raw is not None and handle.read() != source.raw:
                return "changed on disk during the run; not written (run again)"
        mode = stat.S_IMODE(os.stat(path).st_mode)
        directory = os.path.dirname(os.path.abspath(path))
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".gradlint-tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, mode)
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    return None
