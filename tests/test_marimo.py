"""marimo notebooks (issue 16, error class 9): a class defined in a cell (`@app.cell` /
`def _(nn):`) is reported by its own name, at the file's own line and column; fixes land inside
their cell, indented as the cell; files that only look like marimo are read as written."""

from __future__ import annotations

import ast
import json
import os
import textwrap
from pathlib import Path

from click.testing import CliRunner

from gradlint.cli import main
from gradlint.diagnostics import Edit
from gradlint.marimo import present
from gradlint.source import SourceFile

NOTEBOOK = textwrap.dedent('''\
    import marimo

    __generated_with = "0.9.0"
    app = marimo.App(width="medium")


    @app.cell
    def _():
        import torch
        import torch.nn as nn
        return nn, torch


    @app.cell
    def _(nn):
        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(256, 256)
                self.fc2 = nn.Linear(256, 2)
                nn.init.normal_(self.fc1.weight, std=1.0)

            def forward(self, x):
                return self.fc2(self.fc1(x).relu())
        return (Policy,)


    @app.cell(hide_code=True)
    def _(
        Policy,
        torch,
    ):
        model = Policy()
        opt = torch.optim.Adam(model.parameters())
        for step in range(10):
            loss = model(torch.randn(4, 256)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return


    if __name__ == "__main__":
        app.run()
''')


def run(*args: str, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)


def test_a_class_in_a_cell_is_reported_by_its_own_name_at_its_own_place(tmp_path: Path) -> None:
    (tmp_path / "nb.py").write_text(NOTEBOOK)
    result = run("check", "--no-cache", "--select", "GL101,GL301", "--format", "json", "nb.py", cwd=tmp_path)
    findings = {d["code"]: d for d in json.loads(result.output)}
    gl301 = findings["GL301"]
    assert gl301["model"] == "Policy" and "Policy.fc1" in gl301["message"] and " _" not in gl301["message"]
    line = NOTEBOOK.splitlines()[gl301["location"]["row"] - 1]
    assert line[gl301["location"]["column"] - 1 :].startswith("nn.init.normal_(self.fc1.weight")
    gl101 = findings["GL101"]
    line = NOTEBOOK.splitlines()[gl101["location"]["row"] - 1]
    assert line[gl101["location"]["column"] - 1 :] == "opt.step()"
    # the fix's edit, in the file's own offsets and indentation
    [edit] = [e for e in gl101["fix"]["edits"] if "clip_grad_norm_" in e["content"]]
    assert edit["content"].startswith("        ") and edit["location"] == {"row": gl101["location"]["row"], "column": 1}
    explained = run("explain-model", "nb.py", cwd=tmp_path)
    assert explained.exit_code == 0 and explained.output.startswith("nb.py:16: Policy (module)\n"), explained.output


def test_fix_lands_inside_its_cell_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "nb.py"
    path.write_text(NOTEBOOK)
    diff = run("check", "--no-cache", "--select", "GL101", "--diff", "nb.py", cwd=tmp_path)
    assert diff.exit_code == 1 and diff.output.startswith("--- a/nb.py\n+++ b/nb.py\n")
    assert run("check", "--no-cache", "--select", "GL101", "--fix", "nb.py", cwd=tmp_path).exit_code == 0
    fixed = path.read_text()
    lines = fixed.splitlines()
    step = lines.index("        opt.step()")
    assert lines[step - 1].startswith("        ") and "clip_grad_norm_(" in lines[step - 1]
    assert fixed.replace(lines[step - 1] + "\n", "", 1) == NOTEBOOK  # nothing else changed
    clip_line = step  # 1-based number of the line before `opt.step()`
    [cell] = [n for n in ast.parse(fixed).body if isinstance(n, ast.FunctionDef) and n.lineno < clip_line <= n.end_lineno]
    assert [d.attr for d in (d.func if isinstance(d, ast.Call) else d for d in cell.decorator_list)] == ["cell"]
    assert run("check", "--no-cache", "--select", "GL101", "--fix", "nb.py", cwd=tmp_path).exit_code == 0
    assert path.read_text() == fixed


def test_an_edit_is_placed_in_its_cell_or_not_at_all() -> None:
    view = present(SourceFile("nb.py", NOTEBOOK))
    assert view is not None
    text = view.source.text
    lines = NOTEBOOK.splitlines(keepends=True)
    body = next(i for i, line in enumerate(lines) if line == "        opt.step()\n")
    presented_at = sum(len(line) for line in text.splitlines(keepends=True)[:body])
    [mapped] = view.map_edits((Edit(presented_at, presented_at, "    clip()\n"),))
    assert NOTEBOOK[: mapped.start] + mapped.content + NOTEBOOK[mapped.end :] == NOTEBOOK.replace(
        "        opt.step()\n", "        clip()\n        opt.step()\n")
    # between a cell and the code after it, the cell an insertion belongs to is ambiguous: refused
    main_line = next(i for i, line in enumerate(lines) if line.startswith("if __name__"))
    at = sum(len(line) for line in text.splitlines(keepends=True)[:main_line])
    assert view.map_edits((Edit(at, at, "x = 1\n"),)) is None
    # an edit of a cell's header (an empty line in the presented text) cannot be faithful
    header = next(i for i, line in enumerate(lines) if line == "def _(nn):\n")
    at = sum(len(line) for line in text.splitlines(keepends=True)[:header])
    assert view.map_edits((Edit(at, at + 1, "y = 2\n"),)) is None


def test_files_that_only_look_like_marimo_are_read_as_written() -> None:
    not_marimo = NOTEBOOK.replace("import marimo\n", "import fastapi as marimo_like\n").replace(
        "marimo.App(width=\"medium\")", "marimo_like.App()")
    assert present(SourceFile("a.py", not_marimo)) is None
    assert present(SourceFile("b.py", "import marimo\napp = marimo.App()\n\ndef _():\n    return\n")) is None
    one_line = "import marimo\napp = marimo.App()\n\n@app.cell\ndef _(): return\n"
    assert present(SourceFile("c.py", one_line)) is None  # a body on the `def` line: linted as written


def test_the_setup_block_is_read_at_top_level_too(tmp_path: Path) -> None:
    """marimo 0.13+ keeps the shared imports in `with app.setup:`; the cells then use them."""
    cell = "@app.cell\ndef _():\n    import torch\n    import torch.nn as nn\n    return nn, torch\n"
    setup = NOTEBOOK.replace(cell, "with app.setup:\n    import torch\n    import torch.nn as nn\n")
    assert setup != NOTEBOOK
    view = present(SourceFile("nb.py", setup))
    assert view is not None and "\nimport torch.nn as nn\n" in view.source.text
    (tmp_path / "nb.py").write_text(setup)
    result = run("check", "--no-cache", "--select", "GL301", "--format", "json", "nb.py", cwd=tmp_path)
    assert [d["model"] for d in json.loads(result.output)] == ["Policy"]
