"""Jupyter notebooks: findings by cell and line, fixes written back as valid notebook JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main

CELLS = [
    {"cell_type": "markdown", "metadata": {}, "source": ["# Training\n", "A small loop."]},
    {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["setup"]}, "outputs": [],
     "source": ["%matplotlib inline\n", "!pip install gymnasium\n", "import torch\n", "import torch.nn as nn\n",
                "model = nn.Linear(4, 1)\n", "optimizer = torch.optim.Adam(model.parameters())"]},
    {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": [
        "for step in range(100):\n", "    loss = model(torch.randn(8, 4)).pow(2).mean()\n", "    optimizer.zero_grad()\n",
        "    loss.backward()\n", "    optimizer.step()"],
     "outputs": [{"name": "stdout", "output_type": "stream", "text": ["done\n"]}]},
    {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [], "source": ["%%bash\n", "ls -la"]},
]


def notebook(path: Path) -> None:
    data = {"cells": CELLS, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(data, indent=1) + "\n")


def run(*args: str, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["check", "--no-cache", *args])
    finally:
        os.chdir(old)


def test_findings_are_placed_by_cell_and_line(tmp_path: Path) -> None:
    notebook(tmp_path / "train.ipynb")
    result = run(".", cwd=tmp_path)  # notebooks are found in directories
    assert result.exit_code == 1
    assert result.output.startswith(
        "./train.ipynb:cell 3:5:5: GL101 [*] `optimizer.step()` runs after `loss.backward()` (cell 3, line 4)")
    data = json.loads(run("--format", "json", "train.ipynb", cwd=tmp_path).output)
    assert (data[0]["cell"], data[0]["location"]) == (3, {"row": 5, "column": 5})


def test_fix_keeps_outputs_metadata_and_magics_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "train.ipynb"
    notebook(path)
    assert run("--fix", "train.ipynb", cwd=tmp_path).exit_code == 0
    data = json.loads(path.read_text())
    assert data["cells"][2]["source"][-2:] == ["    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n", "    optimizer.step()"]
    assert data["cells"][2]["outputs"] == CELLS[2]["outputs"]
    assert data["cells"][1]["metadata"] == {"tags": ["setup"]} and data["metadata"] == {"kernelspec": {"name": "python3"}}
    assert data["cells"][1]["source"][:2] == ["%matplotlib inline\n", "!pip install gymnasium\n"]
    assert data["cells"][3]["source"] == ["%%bash\n", "ls -la"] and data["cells"][0] == CELLS[0]
    once = path.read_bytes()
    assert run("--fix", "train.ipynb", cwd=tmp_path).exit_code == 0
    assert path.read_bytes() == once


def test_invalid_notebook_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json")
    result = run("broken.ipynb", cwd=tmp_path)
    assert result.exit_code == 2
    assert "gradlint: error: broken.ipynb: not a valid notebook (JSON)" in result.output


# --- issue 16, error class 9 -----------------------------------------------------------------


def code(*lines: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": list(lines)}


def write(path: Path, *cells: dict) -> None:
    path.write_text(json.dumps({"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n")


TRAIN = code("for batch in loader:\n", "    loss = model(batch).mean()\n", "    optimizer.zero_grad()\n",
             "    loss.backward()\n", "    optimizer.step()\n")


def clipped(source: list[str]) -> bool:
    """A clip inserted, at the loop's indentation, right before the last line `optimizer.step()`."""
    return (source[-1] == "    optimizer.step()\n" and source[-2].startswith("    ")
            and "clip_grad_norm_(" in source[-2] and source[-2].endswith("\n"))


def test_a_magic_alone_in_a_block_keeps_the_notebook_valid(tmp_path: Path) -> None:
    """`if IN_COLAB:\\n    !pip install ...` (every notebook of a popular RL tutorial) was
    rejected whole, with a SyntaxError naming the next cell."""
    setup = code("IN_COLAB = 'google.colab' in str(get_ipython())\n", "if IN_COLAB:\n", "    !pip install gymnasium\n",
                 "    %pip install torch\n", "else:\n", "    files = !ls\n", "import torch\n")
    path = tmp_path / "tutorial.ipynb"
    write(path, setup, TRAIN)
    result = run("tutorial.ipynb", cwd=tmp_path)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("tutorial.ipynb:cell 2:5:5: GL101")
    assert run("--fix", "tutorial.ipynb", cwd=tmp_path).exit_code == 0
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["source"] == setup["source"]  # the magics as written
    assert clipped(cells[1]["source"])


def test_a_syntax_error_names_its_own_cell(tmp_path: Path) -> None:
    write(tmp_path / "a.ipynb", code("x = 1\n"), code("if x:\n"), code("y = 2\n"))
    write(tmp_path / "b.ipynb", code("x = 1\n"), code("y = 2\n", "def (:\n"))
    result = run("a.ipynb", "b.ipynb", cwd=tmp_path)
    assert result.exit_code == 2
    assert "gradlint: error: a.ipynb:2:1: cell 2: SyntaxError: expected an indented block after 'if' statement on line 1" \
        in result.output
    assert "gradlint: error: b.ipynb:2:5: cell 2: SyntaxError: invalid syntax" in result.output


def test_percent_and_bang_inside_a_statement_are_python_not_magics(tmp_path: Path) -> None:
    """A line starting with `%` or `!` is a magic only where a statement starts, as in IPython."""
    cell = code("import torch\n", "print('epoch %d'\n", "      % 3)\n", "ok = (1\n", "      != 2)\n",
                'doc = """\n', "!important\n", 'what?\n', '"""\n', "x = 1 + \\\n", "    2\n")
    path = tmp_path / "python.ipynb"
    write(path, cell, TRAIN)
    result = run("--diff", "python.ipynb", cwd=tmp_path)
    assert result.exit_code == 1, result.output
    assert "print('epoch %d'" not in result.output  # cell 1 unchanged, so not in the diff
    from gradlint.notebook import load_notebook

    notebook = load_notebook(path.read_bytes())
    assert "gradlint magic" not in notebook.text  # nothing in it was taken for a magic


def test_fix_writes_back_only_the_cells_it_changed(tmp_path: Path) -> None:
    """`--fix` once appended a stray "" to every cell's source list."""
    cells = [code("import torch\n", "model = torch.nn.Linear(4, 1)\n"), code(), code("\n"),
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "x = 1\n"},
             TRAIN, {"cell_type": "markdown", "metadata": {}, "source": ["text\n"]}]
    path = tmp_path / "train.ipynb"
    write(path, *cells)
    assert run("--fix", "train.ipynb", cwd=tmp_path).exit_code == 0
    after = json.loads(path.read_text())["cells"]
    assert after[:4] == cells[:4] and after[5] == cells[5]
    assert clipped(after[4]["source"]) and after[4]["source"][:-2] == TRAIN["source"][:-1]
    assert "" not in after[4]["source"]
    once = path.read_bytes()
    assert run("--fix", "train.ipynb", cwd=tmp_path).exit_code == 0 and path.read_bytes() == once


def test_diff_and_check_number_cells_the_same_way(tmp_path: Path) -> None:
    write(tmp_path / "train.ipynb", code("import torch\n"), {"cell_type": "markdown", "metadata": {}, "source": []}, TRAIN)
    checked = run("train.ipynb", cwd=tmp_path).output
    assert checked.startswith("train.ipynb:cell 3:5:5: GL101")
    diff = run("--diff", "train.ipynb", cwd=tmp_path).output
    assert diff.startswith("--- a/train.ipynb:cell 3\n+++ b/train.ipynb:cell 3\n@@ -2,4 +2,5 @@\n"), diff
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(added) == 1 and added[0].startswith("+    ") and "clip_grad_norm_(" in added[0]
    assert "gradlint cell" not in diff and "gradlint magic" not in diff


def test_explain_model_describes_a_notebooks_models(tmp_path: Path) -> None:
    write(tmp_path / "model.ipynb", code("!pip install torch\n", "import torch.nn as nn\n"),
          code("class Net(nn.Module):\n", "    def __init__(self):\n", "        super().__init__()\n",
               "        self.fc = nn.Linear(256, 256)\n", "    def forward(self, x):\n", "        return self.fc(x)\n"))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        text = CliRunner().invoke(main, ["explain-model", "model.ipynb"])
        data = json.loads(CliRunner().invoke(main, ["explain-model", "--format", "json", "model.ipynb"]).output)
    finally:
        os.chdir(old)
    assert text.exit_code == 0 and text.output.startswith("model.ipynb:cell 2:1: Net (module)\n"), text.output
    assert [(d["name"], d["cell"], d["line"]) for d in data] == [("Net", 2, 1)]


def test_notebooks_that_are_not_notebooks_are_one_line_each(tmp_path: Path) -> None:
    write(tmp_path / "numbers.ipynb", code("x = 1\n"), {"cell_type": "code", "source": [1, 2], "metadata": {}})
    write(tmp_path / "cellless.ipynb", "not a cell")  # type: ignore[arg-type]
    (tmp_path / "deep.ipynb").write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (tmp_path / "list.ipynb").write_text("[]")
    write(tmp_path / "good.ipynb", TRAIN)
    result = run(".", cwd=tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = sorted(line for line in result.output.splitlines() if line.startswith("gradlint: error:"))
    assert errors == [
        "gradlint: error: ./cellless.ipynb: not a valid notebook: cell 1 is not a JSON object",
        "gradlint: error: ./deep.ipynb: not a valid notebook: its JSON is nested too deeply",
        "gradlint: error: ./list.ipynb: not a valid notebook: no list of cells",
        "gradlint: error: ./numbers.ipynb: not a valid notebook: the source of cell 2 is not text",
    ]
    assert "./good.ipynb:cell 1:5:5: GL101" in result.output


def test_the_pre_commit_hooks_see_notebooks() -> None:
    from tests.conftest import ROOT

    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [sorted(hook["types_or"]) for hook in hooks] == [["jupyter", "python"]] * 2
