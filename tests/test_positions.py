"""Positions come from each libcst statement's ast twin; they must equal libcst's own.
(The training analysis runs on `ast`: its positions are tested in tests/analysis/test_training.py.)"""

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


def test_statement_text_is_sliced_from_the_file_after_a_sibling_was_summarised(tmp_path, monkeypatch) -> None:
    """Summarising a sibling module (its own FileContext) must not take over the current
    file's text source, or every later `text_of` falls back to libcst's code generation."""
    from gradlint.analysis import cst_walk, project

    (tmp_path / "nets.py").write_text("import torch.nn as nn\n\nclass Net(nn.Module):\n"
                                      "    def forward(self, x):\n        return x / 255.0\n")
    text = ("import torch\nfrom nets import Net\n\n\ndef make_env(name):\n    return gym.make(name)\n\n\n"
            "model = Net()\nenv = make_env('CartPole-v1')\nobs = env.reset()\n")
    (tmp_path / "train.py").write_text(text)
    source = SourceFile(str(tmp_path / "train.py"), text)
    ctx = FileContext(source, index_file(source), Settings(root=str(tmp_path)))
    function = next(s for seg in ctx.segments for s in seg.module.body if isinstance(s, cst.FunctionDef))
    project._CACHE.clear()
    assert ctx.project_model_file("Net") == str(tmp_path / "nets.py")

    def no_codegen(node):
        raise AssertionError("text_of fell back to code generation")

    monkeypatch.setattr(cst_walk, "code_for_node", no_codegen)
    assert cst_walk.text_of(function) == "def make_env(name):\n    return gym.make(name)"
