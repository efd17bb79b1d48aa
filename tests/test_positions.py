"""Positions come from each libcst statement's ast twin; they must equal libcst's own."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.prepass import index_file
from gradlint.source import SourceFile
from tests.conftest import FIXTURES

TRICKY = textwrap.dedent('''\
    """Docstring with é."""
    import torch
    x = "héllo"; loss.backward(); opt.step()

    @decorator
    class Agent:
        def learn(self, é=1):
            if a: b()
            elif c:
                d = "ü"; optimizer.step()
            else:
                pass
            for i in range(3):
                try:
                    loss.backward()
                except (ValueError, KeyError) as exc:
                    raise
                else:
                    y = 1
                finally:
                    z = 2
            else:
                w = 3
            while False:
                break
            with ctx() as f, other():
                optimizer.step()
            match cmd:
                case "go":
                    optimizer.step()
                case _:
                    pass
    async def run():
        async for x in stream:
            await step()
        async with lock:
            optimizer.step()
''')


def _all_statements(node: cst.CSTNode):
    if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
        yield node
    for child in node.children:
        yield from _all_statements(child)


@pytest.mark.parametrize("name, text", [("tricky", TRICKY)] + [
    (p.name, p.read_text()) for p in sorted(FIXTURES.rglob("*.py"))
])
def test_statement_positions_match_libcst(name: str, text: str) -> None:
    source = SourceFile(name, text)
    ctx = FileContext(source, index_file(source), Settings())
    checked = 0
    for segment in ctx.segments:
        libcst_positions = segment.positions()
        shift = segment.start_line - 1
        for statement in _all_statements(segment.module):
            assert segment.ast_twin(statement) is not None, ctx.code(statement)
            expected = libcst_positions[statement]
            got = ctx.span(segment, statement)
            if isinstance(statement, cst.BaseCompoundStatement):
                # ast starts a decorated def at `def`/`class`; both start the body at the same place
                assert got[0] >= expected.start.line + shift
                continue
            assert got == (expected.start.line + shift, expected.start.column,
                           expected.end.line + shift, expected.end.column), ctx.code(statement)
            checked += 1
    assert checked > 0


def test_calls_are_found_inside_their_statement() -> None:
    source = SourceFile("t.py", TRICKY)
    ctx = FileContext(source, index_file(source), Settings())
    analysis = ctx.training
    events = [e for f in (analysis.module, *analysis.functions) for e in _events(f.body)]
    assert len(events) >= 6
    for event in events:
        libcst_range = event.segment.positions()[event.call]
        shift = event.segment.start_line - 1
        assert ctx.span(event.segment, event.call, event.anchor) == (
            libcst_range.start.line + shift, libcst_range.start.column,
            libcst_range.end.line + shift, libcst_range.end.column)


def _events(block):
    from gradlint.rules._clipping import events_in_order

    return list(events_in_order(block))
