"""Reading a Python file as text without losing what it was on disk.

A linted file keeps its encoding (PEP 263 cookie or UTF-8 BOM), its line endings and its
trailing lines, so that fixes can be spliced into the original text and written back
byte-for-byte identical outside the edits.
"""

from __future__ import annotations

import ast
import errno
import io
import os
import re
import stat
import tokenize
import warnings
from bisect import bisect_right
from dataclasses import dataclass, field

_NEWLINE = re.compile(r"\r\n|\r|\n")

# What gradlint reads at all: a file over this size is refused unread (one line, no memory spent).
MAX_READ_BYTES = 64_000_000
# What the analyses take: they hold about 1 GB per MB of code (libcst trees), so a larger file
# that a rule wants is refused with one line rather than exhausting the machine.
MAX_ANALYSED_CHARS = 1_000_000
# libcst's native parser recurses once per operand of an `and`/`or` chain (which `ast` keeps
# flat) and overflows an 8 MB stack near 8,000 operands: a crash no Python code can catch.
MAX_BOOL_OPERANDS = 1_000
_BOOL_WORD = re.compile(r"(?<![A-IK-Za-ik-z_])(?:and|or)(?![A-Za-z0-9_])")  # j/J: `1jand 2` is valid


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


def split_lines(text: str) -> list[str]:
    """The lines of a text without their endings, split where Python splits them (at \\n, \\r\\n
    and \\r; not at form feeds or Unicode separators, as `str.splitlines` does)."""
    lines = _NEWLINE.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


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
    if len(text) <= MAX_ANALYSED_CHARS:  # a larger text is never parsed
        check_bool_chains(text)
    return SourceFile(path=path, text=text, encoding=encoding, raw=raw)


def check_bool_chains(text: str) -> None:
    """Refuse an `and`/`or` chain too long for libcst's native parser (a SourceError, where the
    parser would crash the whole process). Costs one regex pass; `ast` only for suspect files."""
    if text.count("and") + text.count("or") < MAX_BOOL_OPERANDS or len(_BOOL_WORD.findall(text)) < MAX_BOOL_OPERANDS:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return  # the linter's own parse reports it
    for node in ast.walk(tree):
        if isinstance(node, ast.BoolOp) and len(node.values) > MAX_BOOL_OPERANDS:
            word = "and" if isinstance(node.op, ast.And) else "or"
            raise SourceError(
                f"an `{word}` chain of {len(node.values)} operands is more than gradlint analyses "
                f"({MAX_BOOL_OPERANDS}); split it", node.lineno, node.col_offset)


def check_analysable(text: str) -> None:
    """Refuse a text larger than the analyses take, with one line saying what to do."""
    if len(text) > MAX_ANALYSED_CHARS:
        raise SourceError(
            f"too large to analyse ({len(text) / 1e6:.1f} million characters of code; the limit is "
            f"{MAX_ANALYSED_CHARS / 1e6:g} million): split it or exclude it (extend-exclude)")


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int, path: str) -> SourceError:
    if stat.S_ISDIR(mode):
        return SourceError("is a directory, not a Python file")
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    link = "links to" if os.path.islink(path) else "is"
    return SourceError(f"{link} {kind}, not a regular file; not read")


def _os_error(exc: OSError) -> SourceError:
    if exc.errno == errno.ELOOP:
        return SourceError("is a symbolic link loop; not read")
    if isinstance(exc, PermissionError):
        return SourceError("permission denied")
    if isinstance(exc, FileNotFoundError):
        return SourceError("file not found (removed during the run?)")
    if isinstance(exc, IsADirectoryError):
        return SourceError("is a directory, not a Python file")
    return SourceError(f"cannot read: {exc.strerror or exc}")


def read_bytes(path: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; a SourceError for anything else.

    FIFOs, devices and sockets are refused before they are opened for reading, and the open
    itself cannot block (O_NONBLOCK: a FIFO swapped in meanwhile is caught by fstat), so no file
    can hang a run; reads stop at `limit`, so none can exhaust memory (a link to /dev/zero).
    """
    try:
        status = os.stat(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and os.path.islink(path):
            raise SourceError("is a symbolic link to a missing file; not read") from None
        raise _os_error(exc) from None
    if not stat.S_ISREG(status.st_mode):
        raise _not_regular(status.st_mode, path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _os_error(exc) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise _not_regular(status.st_mode, path)
        if status.st_size > limit:
            raise _too_large(status.st_size, limit)
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise _too_large(size, limit)
        return b"".join(chunks)
    except OSError as exc:
        raise _os_error(exc) from None
    finally:
        os.close(fd)


def _too_large(size: int, limit: int) -> SourceError:
    return SourceError(f"too large ({size / 1e6:.1f} MB; the limit is {limit / 1e6:g} MB): not read; "
                       "split it or exclude it (extend-exclude)")


def read_source(path: str, display_path: str | None = None, limit: int = MAX_ANALYSED_CHARS) -> SourceFile:
    """Read and decode a regular file of at most `limit` bytes (by default what the analyses
    take: a sibling module is always analysed); every failure becomes a SourceError."""
    return decode_source(display_path or path, read_bytes(path, limit))
