"""Parsing a file: Python's own parser, once, with its own syntax-error messages.

`ast.parse` is CPython's parser (the messages users recognise, exact `end_lineno` and
`end_col_offset` on every node). Every analysis reads the tree it returns; nothing parses the
file again.
"""

from __future__ import annotations

import ast
import warnings

from gradlint.source import SourceError, SourceFile


def parse_python(source: SourceFile) -> ast.Module:
    """The file's `ast`; a SourceError (with CPython's message and position) if it is not Python."""
    try:
        with warnings.catch_warnings():  # SyntaxWarnings about the user's code are not ours to print
            warnings.simplefilter("ignore")
            return ast.parse(source.text, filename=source.path)
    except SyntaxError as exc:
        line = exc.lineno or 0
        # CPython counts the offset from 1 (in characters for str input)
        column = max((exc.offset or 1) - 1, 0)
        raise SourceError(f"SyntaxError: {exc.msg}", line, column) from None
    except (RecursionError, MemoryError):
        raise SourceError("too deeply nested for Python's parser") from None
    except ValueError as exc:
        raise SourceError(str(exc)) from None
