"""Text from files and their names, made safe to print.

File names, messages (which quote code) and exception text come from whoever wrote the files
being linted. Printed raw, a newline in a file name starts a new output line (in CI, a forged
`::error` workflow command), an escape sequence rewrites the terminal, and bidirectional
controls reorder what a reader sees. Every human-readable format passes such text through
`printable`; the JSON formats escape them by JSON's own rules.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode line separators and bidirectional controls
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escape(match: re.Match) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character written as a Python escape (`\\n`, `\\x1b`, `\\u202e`)."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def printable_lines(text: str) -> str:
    """`printable` on each line of a multi-line text (its line breaks kept)."""
    return "\n".join(printable(line) for line in text.split("\n"))
