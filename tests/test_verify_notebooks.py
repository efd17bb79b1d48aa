"""`gradlint verify` on Jupyter notebooks and marimo notebooks (issue 17, item 5): the model classes
they define are built from the linter's view of the file (a notebook's code cells joined with
their IPython magics made inert, a marimo notebook's cells at top level with the imports every
cell makes), with the training code removed as for a script, and measured in the same sandbox
under the same verdict rules. Reports are placed as the linter places findings (cell numbers)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_paths

torch = pytest.importorskip("torch")

from gradlint.verify.session import Options, _analysis_facts, verify_results  # noqa: E402
from gradlint.verify.loader import model_only_source  # noqa: E402

IMPORTS = "import torch\nimport torch.nn as nn\nimport matplotlib.pyplot as plt\n"
MAGICS = "%matplotlib inline\n!touch {marker}\nfiles = !ls\n"
SHELL_CELL = "%%bash\ntouch {marker}\n"


def deep_mlp(init: str) -> str:
    """The fixtures' 22-layer ReLU MLP (fixtures/models/deep_plain_relu*.py); `init` is the
    weight initialiser's call ("" keeps PyTorch's default)."""
    apply = "        self.apply(self._init_weights)\n" if init else ""
    initialiser = ("\n    def _init_weights(self, m):\n        if isinstance(m, nn.Linear):\n"
                   f"            {init}\n            nn.init.zeros_(m.bias)\n") if init else ""
    return textwrap.dedent("""\
        class DeepReLUMLP(nn.Module):
            def __init__(self, in_dim=32, hidden=256, depth=20, out_dim=1):
                super().__init__()
                layers = [nn.Linear(in_dim, hidden), nn.ReLU()]
                for _ in range(depth):
                    layers += [nn.Linear(hidden, hidden), nn.ReLU()]
                layers.append(nn.Linear(hidden, out_dim))
                self.net = nn.Sequential(*layers)
        """) + apply + initialiser + "\n    def forward(self, x):\n        return self.net(x)\n"


LARGE_INIT = "nn.init.normal_(m.weight, mean=0.0, std=1.0)"

# a training cell that must never run: it would leave a mark, end the process, or hang
TRAINING = textwrap.dedent("""\
    open({marker!r}, "w").write("the training cell ran")
    model = DeepReLUMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    import os
    os._exit(7)
    while True:
        loss = model(torch.randn(128, 32)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        plt.plot([loss.item()])
""")


def notebook(cells: list[tuple[str, str]]) -> str:
    """nbformat 4 JSON of (cell_type, source) pairs."""
    return json.dumps({"cells": [
        {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True),
         **({"execution_count": None, "outputs": []} if kind == "code" else {})} for kind, source in cells],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


def marimo(cells: list[tuple[str, str]]) -> str:
    """A marimo notebook: each (parameters, body) pair one `@app.cell` function."""
    parts = ["import marimo\n\n__generated_with = \"0.9.0\"\napp = marimo.App()\n"]
    for parameters, body in cells:
        parts.append(f"\n@app.cell\ndef _({parameters}):\n{textwrap.indent(body, '    ')}    return\n")
    parts.append('\n\nif __name__ == "__main__":\n    app.run()\n')
    return "".join(parts)


def write_files(directory: Path) -> dict[str, Path]:
    marker = str(directory / "RAN")
    files = {
        "deep.ipynb": notebook([
            ("markdown", "# A deep MLP"), ("code", IMPORTS), ("code", MAGICS.format(marker=marker)),
            ("code", SHELL_CELL.format(marker=marker)), ("code", deep_mlp(LARGE_INIT)),
            ("code", TRAINING.format(marker=marker))]),
        "quiet.ipynb": notebook([
            ("code", IMPORTS), ("code", deep_mlp("")), ("code", TRAINING.format(marker=marker))]),
        "deep_marimo.py": marimo([
            ("", IMPORTS), ("nn", deep_mlp(LARGE_INIT)), ("DeepReLUMLP, torch, plt", TRAINING.format(marker=marker))]),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = directory / name
        paths[name].write_text(text)
    return paths


@pytest.fixture(scope="module")
def notebook_reports(tmp_path_factory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("notebooks")
    paths = write_files(directory)
    results = lint_paths([str(p) for p in paths.values()], Settings(select=("ALL",)), jobs=1)
    reports = verify_results(results, Settings(), Options())
    return directory, {(Path(r.file).name, r.model): r for r in reports}


def _verdicts(report) -> dict[str, object]:
    return {v.code: v for v in report.verdicts}


@pytest.mark.slow  # builds and measures three 22-layer models in the sandbox
def test_a_deep_std1_relu_mlp_in_a_notebook_is_confirmed_without_running_its_cells(notebook_reports) -> None:
    directory, reports = notebook_reports
    report = reports[("deep.ipynb", "DeepReLUMLP")]
    assert report.status == "ok", report.error  # the training cell would have exited with code 7
    assert (report.cell, report.line) == (5, 1)  # the class's cell (the markdown cell counts), as the linter places it
    verdicts = _verdicts(report)
    for code in ("GL201", "GL301"):
        assert verdicts[code].verdict == "confirmed", verdicts[code].reason
    assert verdicts["GL301"].figures["max_he_c"] > 100  # std 1 on 256 inputs: measured on the weights
    assert not (directory / "RAN").exists()  # neither the training cell nor the shell magics ran


@pytest.mark.slow  # builds and measures three 22-layer models in the sandbox
def test_a_default_init_deep_stack_in_a_notebook_is_not_confirmed(notebook_reports) -> None:
    _, reports = notebook_reports
    report = reports[("quiet.ipynb", "DeepReLUMLP")]
    assert report.status == "ok", report.error
    verdict = _verdicts(report)["GL201"]
    assert verdict.verdict == "not confirmed", verdict.reason
    assert verdict.figures["first_last_ratio"] < 1  # gradients shrink with depth at PyTorch's default init


@pytest.mark.slow  # builds and measures three 22-layer models in the sandbox
def test_a_model_class_in_a_marimo_cell_is_built_with_the_imports_of_another_cell(notebook_reports) -> None:
    directory, reports = notebook_reports
    report = reports[("deep_marimo.py", "DeepReLUMLP")]
    assert report.status == "ok", report.error
    assert report.cell is None and report.line == 15  # the file's own line: `class DeepReLUMLP` in its cell
    verdicts = _verdicts(report)
    for code in ("GL201", "GL301"):
        assert verdicts[code].verdict == "confirmed", verdicts[code].reason
    assert not (directory / "RAN").exists()


@pytest.mark.slow  # builds and measures three 22-layer models in the sandbox
def test_the_verify_report_places_a_notebook_model_by_cell(notebook_reports) -> None:
    from gradlint.verify.report import render_json, render_text

    _, reports = notebook_reports
    report = reports[("deep.ipynb", "DeepReLUMLP")]
    assert f"{report.file}:cell 5:1: DeepReLUMLP" in render_text([report], colour=False)
    [data] = json.loads(render_json([report]))
    assert (data["cell"], data["line"]) == (5, 1)
    marimo_report = reports[("deep_marimo.py", "DeepReLUMLP")]
    assert "cell" not in json.loads(render_json([marimo_report]))[0]


def test_the_model_only_source_of_a_notebook_keeps_its_classes_and_no_magic_or_training(tmp_path: Path) -> None:
    paths = write_files(tmp_path)
    file, models, _ = _analysis_facts(str(paths["deep.ipynb"]), Settings())
    assert models["DeepReLUMLP"]["cell"] == 5 and models["DeepReLUMLP"]["line"] == 1
    source = model_only_source(file)
    assert "class DeepReLUMLP" in source and "def _init_weights" in source
    for work in ("os._exit", "while True", "plt.plot", "touch", "%matplotlib", "!ls"):
        assert work not in source
    namespace: dict = {}
    exec(compile(source, "deep.ipynb", "exec"), namespace)  # runs nothing but imports and definitions
    assert len(namespace["DeepReLUMLP"]().net) == 43
    assert not (tmp_path / "RAN").exists()
    file, models, _ = _analysis_facts(str(paths["deep_marimo.py"]), Settings())
    assert models["DeepReLUMLP"]["cell"] is None
    source = model_only_source(file)
    assert "import torch.nn as nn" in source and "os._exit" not in source and "app.run" not in source
    namespace = {}
    exec(compile(source, "deep_marimo.py", "exec"), namespace)
    assert len(namespace["DeepReLUMLP"]().net) == 43


def test_a_notebook_finding_whose_class_cannot_be_built_says_why(tmp_path: Path) -> None:
    path = tmp_path / "mystery.ipynb"
    model = deep_mlp(LARGE_INIT).replace("in_dim=32,", "mystery, in_dim=32,")
    path.write_text(notebook([("code", IMPORTS), ("code", model), ("code", "model = DeepReLUMLP(read_config())\n")]))
    results = lint_paths([str(path)], Settings(select=("GL201",)), jobs=1)
    [report] = verify_results(results, Settings(), Options())
    [verdict] = report.verdicts
    assert (report.cell, report.line, verdict.code, verdict.verdict) == (2, 1, "GL201", "not verified")
    assert verdict.reason == ("cannot build DeepReLUMLP: no value for mystery; "
                              "pass --init-args 'DeepReLUMLP={\"mystery\": ...}'")
