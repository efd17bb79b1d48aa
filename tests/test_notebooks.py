"""Jupyter notebooks: findings by cell and line, fixes written back as valid notebook JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
