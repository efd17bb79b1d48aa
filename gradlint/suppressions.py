"""`# noqa: GL101`, `# gradlint: ignore[GL101]` on a line, and `# gradlint: skip-file`."""

from __future__ import annotations

import re

from gradlint.diagnostics import Diagnostic
from gradlint.source import SourceFile

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_IGNORE = re.compile(r"#\s*gradlint:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_SKIP_FILE = re.compile(r"^[ \t\f]*#\s*gradlint:\s*(?:skip-file|noqa)\s*$", re.IGNORECASE | re.MULTILINE)


def skips_file(text: str) -> bool:
    """A `# gradlint: skip-file` (or `# gradlint: noqa`) comment on a line of its own."""
    return "gradlint" in text and _SKIP_FILE.search(text) is not None


def _codes(match: re.Match[str]) -> set[str] | None:
    codes = match.group("codes")
    if codes is None:
        return None  # blanket
    return {c.upper() for c in re.split(r"[\s,]+", codes) if c}


def suppressed_codes(line: str) -> set[str] | None | bool:
    """Codes a line's comment suppresses: a set, None for all, False for none."""
    if "#" not in line:
        return False
    result: set[str] = set()
    for pattern in (_NOQA, _IGNORE):
        for match in pattern.finditer(line):
            codes = _codes(match)
            if codes is None:
                return None
            result |= codes
    return result or False


def filter_suppressed(source: SourceFile, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Drop findings suppressed by a comment on any line of the flagged code."""
    kept = []
    for diagnostic in diagnostics:
        suppressed = False
        for line in range(diagnostic.line, diagnostic.end_line + 1):
            codes = suppressed_codes(source.line_text(line))
            if codes is None or (codes and diagnostic.code in codes):
                suppressed = True
                break
        if not suppressed:
            kept.append(diagnostic)
    return kept
