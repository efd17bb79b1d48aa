"""Reading a Python file as text without losing what it was on disk.

A linted file keeps its encoding (PEP 263 cookie or UTF-8 BOM), its line endings and its
trailing lines, so that fixes can be spliced into the original text and written back
byte-for-byte identical outside the edits.
"""

from __future__ import annotations

import io
import re
import tokenize
from bisect import bisect_right
from dataclasses import dataclass, field

_NEWLINE = re.compile(r"\r\n|\r|\n")


class SourceError(Exception):
    """A file that cannot be read or parsed; carries the line to point at (1-based, or 0)."""

    def __init__(self, message: str, line: int = 0, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class SourceFile:
    """The decoded text of one file, with what is needed to write it back unchanged."""

    path: str
    text: str
    encoding: str = "utf-8"
    raw: bytes | None = None
    _line_starts: list[int] | None = field(default=None, repr=False)

    @property
    def newline(self) -> str:
        """The file's first line ending, used for inserted lines ('\\n' if it has none)."""
        match = _NEWLINE.search(self.text)
        return match.group(0) if match else "\n"

    @property
    def line_starts(self) -> list[int]:
        """Offset of the first character of each line (index 0 is line 1)."""
        if self._line_starts is None:
            starts = [0]
            starts.extend(m.end() for m in _NEWLINE.finditer(self.text))
            self._line_starts = starts
        return self._line_starts

    def offset(self, line: int, column: int) -> int:
        """Text offset of a 1-based line and a 0-based character column."""
        starts = self.line_starts
        if line > len(starts):
            return len(self.text)
        return starts[line - 1] + column

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and 0-based column of a text offset."""
        line = bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1]

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line ending."""
        starts = self.line_starts
        if not 1 <= line <= len(starts):
            return ""
        end = starts[line] if line < len(starts) else len(self.text)
        return self.text[starts[line - 1] : end].rstrip("\r\n")

    def encode(self, text: str) -> bytes:
        """Encode new text the way the original file was encoded."""
        return text.encode(self.encoding)


def decode_source(path: str, raw: bytes) -> SourceFile:
    """Decode raw bytes as Python source, honouring a BOM or an encoding cookie."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as exc:
        if "invalid or missing" not in str(exc):  # unknown codec in the cookie, BOM + other cookie
            raise SourceError(f"cannot read the file's encoding: {exc}", 1) from None
        encoding = "utf-8"  # not UTF-8 in the first lines: the decode below says where
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SourceError(
            f"not valid {encoding} text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "declare the encoding with a `# -*- coding: ... -*-` line",
            line,
        ) from None
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r}", 1) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SourceError("the file contains NUL bytes (binary data?)", line)
    return SourceFile(path=path, text=text, encoding=encoding, raw=raw)


def read_source(path: str, display_path: str | None = None) -> SourceFile:
    """Read and decode a file; every failure becomes a SourceError with a clear message."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except IsADirectoryError:
        raise SourceError("is a directory, not a Python file") from None
    except PermissionError:
        raise SourceError("permission denied") from None
    except FileNotFoundError:
        raise SourceError("file not found (removed during the run?)") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from None
    return decode_source(display_path or path, raw)
