"""Positions come straight from `ast` spans: a node's text is its exact source segment, in
characters, whatever the file's non-ASCII text, line endings or nesting."""

from __future__ import annotations

import ast
import textwrap

import pytest

from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.source import SourceFile, decode_source
from tests.conftest import FIXTURES

TRICKY = textwrap.dedent('''\
    """Docstring with é and 漢字."""
    import torch
    x = "héllo"; loss.backward(); opt.step()

    @decorator("ü")
    class Agent:
        def learn(self, é=1, *, 名前="🙂"):
            value = a if "ö" else b(c, "ß")
            if a: b()
            elif c:
                d = "ü"; optimizer.step()
            for i in range(3):
                try:
                    loss.backward()
                except (ValueError, KeyError) as exc:
                    raise
            with ctx() as f, other("€"):
                optimizer.step()
            match cmd:
                case "go":
                    optimizer.step()
''')


def _contexts():
    yield "tricky", TRICKY
    yield "tricky-crlf", TRICKY.replace("\n", "\r\n")
    for path in sorted(FIXTURES.rglob("*.py")):
        yield path.name, path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name, text", list(_contexts()))
def test_every_node_text_is_its_source_segment(name: str, text: str) -> None:
    source = decode_source(name, text.encode("utf-8"))
    ctx = FileContext.parse(source, Settings())
    checked = 0
    # ast's own coordinates, read independently: UTF-8 byte columns on the file's lines
    lines = text.replace("\r\n", "\n").encode("utf-8").split(b"\n")
    for node in ast.walk(ctx.tree):
        if getattr(node, "end_col_offset", None) is None:
            continue
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            expected = lines[first][node.col_offset : node.end_col_offset]
        else:
            expected = b"\n".join([lines[first][node.col_offset :], *lines[first + 1 : last],
                                   lines[last][: node.end_col_offset]])
        assert ctx.text_of(node).replace("\r\n", "\n") == expected.decode("utf-8")
        checked += 1
    assert checked > 20


def test_a_class_finding_sits_on_the_class_name_even_with_decorators() -> None:
    source = SourceFile("m.py", TRICKY)
    ctx = FileContext.parse(source, Settings())
    cls = next(n for n in ctx.tree.body if isinstance(n, ast.ClassDef))
    found = ctx.model_finding("GL201", cls, "m", severity=None)  # type: ignore[arg-type]
    assert (found.line, found.column, found.end_column) == (6, 7, 12)
    assert TRICKY.splitlines()[found.line - 1][found.column - 1 : found.end_column - 1] == "Agent"
