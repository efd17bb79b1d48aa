"""The command line end to end: exit codes, formats, config, suppressions, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.rules import ALL_RULES
from tests.conftest import ROOT

# a policy-gradient step (advantages in the loss): a warning; a plain supervised step is info
BAD = "import torch\nfor x in loader:\n    loss = advantages * model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
GOOD = BAD.replace("    optimizer.step()", "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n    optimizer.step()")


def run(*args: str, cwd: Path | None = None):
    runner = CliRunner()
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return runner.invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text(GOOD)
    return tmp_path


def test_exit_codes_and_text_output(project: Path) -> None:
    result = run("check", "bad.py", "good.py", cwd=project)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "bad.py:5:5: GL101 [*] `optimizer.step()` runs after `loss.backward()` (line 4) with no "
        "gradient clipping in between: one exploding gradient becomes one huge update (risk factor: an RL "
        "objective, the loss is built from `advantages`)"
    )
    assert "Found 1 problem in 1 file (1 warning)." in result.output
    assert "[*] 1 fixable with the `--fix` option." in result.output
    clean = run("check", "good.py", cwd=project)
    assert clean.exit_code == 0 and clean.output.strip() == "All checks passed!"
    assert run("check", "--exit-zero", "bad.py", cwd=project).exit_code == 0


def test_full_format_shows_source_and_caret(project: Path) -> None:
    out = run("check", "--format", "full", "bad.py", cwd=project).output
    assert "5 |     optimizer.step()\n  |     ^^^^^^^^^^^^^^^^\n" in out
    assert "= help: Clip the gradient norm of optimizer.param_groups to 1.0 (the default) before the step" in out


def test_fix_writes_and_second_run_changes_nothing(project: Path) -> None:
    untouched = (project / "good.py").read_bytes()
    first = run("check", "--fix", ".", cwd=project)
    assert first.exit_code == 0, first.output
    assert "Found 1 problem (1 fixed, 0 remaining)." in first.output
    fixed = (project / "bad.py").read_text()
    assert "clip_grad_norm_((p for group in optimizer.param_groups" in fixed
    assert (project / "good.py").read_bytes() == untouched
    second = run("check", "--fix", ".", cwd=project)
    assert second.exit_code == 0 and (project / "bad.py").read_text() == fixed
    assert second.output.strip() == "All checks passed!"


def test_diff_shows_and_writes_nothing(project: Path) -> None:
    result = run("check", "--diff", "bad.py", cwd=project)
    assert result.exit_code == 1
    assert "--- a/bad.py\n+++ b/bad.py\n" in result.output
    assert "+    torch.nn.utils.clip_grad_norm_(" in result.output
    assert (project / "bad.py").read_text() == BAD
    assert run("check", "--diff", "good.py", cwd=project).exit_code == 0


def test_exit_non_zero_on_fix(project: Path) -> None:
    assert run("check", "--fix", "--exit-non-zero-on-fix", "bad.py", cwd=project).exit_code == 1


def test_json_format(project: Path) -> None:
    data = json.loads(run("check", "--format", "json", "bad.py", cwd=project).output)
    [item] = data
    assert item["code"] == "GL101" and item["name"] == "missing-gradient-clipping"
    assert item["filename"] == "bad.py"
    assert item["location"] == {"row": 5, "column": 5}
    assert item["end_location"] == {"row": 5, "column": 21}
    assert item["severity"] == "warning"
    assert item["fix"]["applicability"] == "safe"
    [edit] = item["fix"]["edits"]
    assert edit["location"] == edit["end_location"] == {"row": 5, "column": 1}
    assert edit["content"].startswith("    torch.nn.utils.clip_grad_norm_(")


def test_sarif_is_valid_against_the_2_1_0_schema(project: Path) -> None:
    (project / "broken.py").write_text("def f(:\n")
    result = run("check", "--format", "sarif", ".", cwd=project)
    document = json.loads(result.stdout)
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(document, schema)
    run_ = document["runs"][0]
    [finding] = run_["results"]
    assert finding["ruleId"] == "GL101" and finding["level"] == "warning"
    region = finding["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 5, "startColumn": 5, "endLine": 5, "endColumn": 21}
    assert {r["id"] for r in run_["tool"]["driver"]["rules"]} >= {"GL101", "GL102", "GL103"}
    [notification] = run_["invocations"][0]["toolExecutionNotifications"]
    assert "broken.py:1" in notification["message"]["text"]


def test_github_annotations(project: Path) -> None:
    out = run("check", "--format", "github", "bad.py", cwd=project).output
    assert out.startswith("::warning title=gradlint (GL101),file=bad.py,line=5,col=5,endLine=5,endColumn=21::bad.py:5:5: GL101 ")


def test_output_file(project: Path) -> None:
    result = run("check", "--format", "json", "-o", "report.json", "bad.py", cwd=project)
    assert result.output == ""
    assert json.loads((project / "report.json").read_text())[0]["code"] == "GL101"


def test_statistics(project: Path) -> None:
    out = run("check", "--statistics", "bad.py", cwd=project).output
    assert out.splitlines()[0] == "    1\tGL101\t[*] missing-gradient-clipping"


def test_select_and_ignore(project: Path) -> None:
    assert run("check", "--select", "GL102", "bad.py", cwd=project).exit_code == 0
    assert run("check", "--ignore", "GL1", "bad.py", cwd=project).exit_code == 0
    assert run("check", "--select", "GL1", "--ignore", "GL103", "bad.py", cwd=project).exit_code == 1


def test_unknown_code_is_a_usage_error(project: Path) -> None:
    result = run("check", "--select", "GL999", "bad.py", cwd=project)
    assert result.exit_code == 2
    assert "unknown rule code or prefix 'GL999' in --select" in result.output


def test_config_from_pyproject(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.gradlint]\nignore = ["GL101"]\n[tool.gradlint.options.GL1]\nmax-norm = 0.5\n'
    )
    assert run("check", "bad.py", cwd=project).exit_code == 0
    (project / "pyproject.toml").write_text('[tool.gradlint.options.GL101]\nmax-norm = 0.5\n')
    assert "max_norm=0.5" in run("check", "--diff", "bad.py", cwd=project).output
    (project / "pyproject.toml").write_text('[tool.gradlint]\nper-file-ignores = {"bad.py" = ["GL101"]}\n')
    assert run("check", ".", cwd=project).exit_code == 0


@pytest.mark.parametrize(
    "config, message",
    [
        ('[tool.gradlint]\nselct = ["GL1"]\n', "unknown key 'selct' in [tool.gradlint]"),
        ('[tool.gradlint]\nselect = ["GL7"]\n', "unknown rule code or prefix 'GL7'"),
        ('[tool.gradlint.options.GL101]\nmax_norm = 1\n', "unknown option 'max_norm' for GL101"),
        ('[tool.gradlint.options.GL101]\nmax-norm = "big"\n', "max-norm must be a float"),
        ('[tool.gradlint\n', "invalid TOML"),
    ],
)
def test_config_errors_are_one_clear_line(project: Path, config: str, message: str) -> None:
    (project / "pyproject.toml").write_text(config)
    result = run("check", "bad.py", cwd=project)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("gradlint: error: ") and message in line


def test_inline_config_override(project: Path) -> None:
    assert run("check", "--config", 'ignore = ["GL101"]', "bad.py", cwd=project).exit_code == 0


def test_suppressions(project: Path) -> None:
    (project / "noqa.py").write_text(BAD.replace("optimizer.step()", "optimizer.step()  # noqa: GL101"))
    (project / "ignore.py").write_text(BAD.replace("optimizer.step()", "optimizer.step()  # gradlint: ignore[GL101]"))
    (project / "blanket.py").write_text(BAD.replace("optimizer.step()", "optimizer.step()  # noqa"))
    (project / "other.py").write_text(BAD.replace("optimizer.step()", "optimizer.step()  # noqa: GL102"))
    (project / "skip.py").write_text("# gradlint: skip-file\n" + BAD)
    assert run("check", "noqa.py", "ignore.py", "blanket.py", "skip.py", cwd=project).exit_code == 0
    assert run("check", "other.py", cwd=project).exit_code == 1


def test_bad_input_is_one_line_each_and_the_rest_is_linted(project: Path) -> None:
    (project / "syntax.py").write_text("import torch\nx = (1,\n")
    (project / "latin.py").write_bytes(b"x = '\xe9'\n")
    (project / "empty.py").write_text("")
    (project / "nul.py").write_bytes(b"x = 1\x00\n")
    (project / "dir.py").mkdir()  # a directory named like a file is walked, not read
    (project / "dir.py" / "inner.py").write_text(BAD)
    result = run("check", "syntax.py", "latin.py", "empty.py", "nul.py", "dir.py", "missing.py", "bad.py", cwd=project)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("gradlint: error:")]
    assert sorted(errors) == sorted([
        "gradlint: error: missing.py: no such file or directory",
        "gradlint: error: syntax.py:2:5: SyntaxError: '(' was never closed",
        "gradlint: error: latin.py:1: not valid utf-8 text (byte 0xe9 at offset 5); declare the encoding with a `# -*- coding: ... -*-` line",
        "gradlint: error: nul.py:1: the file contains NUL bytes (binary data?)",
    ])
    assert any(line.startswith("bad.py:5:5: GL101") for line in lines)
    assert any(line.startswith("dir.py/inner.py:5:5: GL101") for line in lines)
    assert "Traceback" not in result.output


def test_syntax_error_file_is_left_untouched_by_fix(project: Path) -> None:
    broken = b"import torch\nloss.backward()\noptimizer.step(\n"
    (project / "broken.py").write_bytes(broken)
    result = run("check", "--fix", ".", cwd=project)
    assert result.exit_code == 2
    assert (project / "broken.py").read_bytes() == broken
    assert "clip_grad_norm_" in (project / "bad.py").read_text()


def test_discovery_skips_virtualenvs_and_excludes(project: Path) -> None:
    for folder in (".venv/lib", "build", "node_modules/x", "data"):
        (project / folder).mkdir(parents=True)
        (project / folder / "t.py").write_text(BAD)
    result = run("check", "--format", "json", ".", cwd=project)
    assert sorted({d["filename"] for d in json.loads(result.output)}) == ["./bad.py", "./data/t.py"]
    result = run("check", "--format", "json", "--extend-exclude", "data", ".", cwd=project)
    assert sorted({d["filename"] for d in json.loads(result.output)}) == ["./bad.py"]
    # named explicitly: linted unless --force-exclude (pre-commit passes file names)
    assert run("check", "build/t.py", cwd=project).exit_code == 1
    assert run("check", "--force-exclude", "build/t.py", cwd=project).exit_code == 0


def test_empty_input_exits_zero(tmp_path: Path) -> None:
    result = run("check", str(tmp_path))
    assert result.exit_code == 0 and "All checks passed!" in result.output


def test_rules_and_rule_commands() -> None:
    listing = run("rules").output
    assert [line.split()[0] for line in listing.splitlines()] == [r.code for r in ALL_RULES]
    assert "GL201  deep-unbounded-activation-stack" in listing and "error / warning / info" in listing
    doc = run("rule", "gl101").output
    assert doc.startswith("GL101 missing-gradient-clipping\n")
    assert "Severity: warning / info." in doc  # every severity it reports, as the README's table
    for heading in ("Why is this bad?", "Example:", "Use instead:", "Fix: safe fix", "Options ([tool.gradlint.options.GL101])", "Pascanu"):
        assert heading in doc
    assert run("rule", "GL999").exit_code == 2


def test_python_dash_m_and_no_torch_import(project: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['gradlint', 'check', 'bad.py']\n"
        "try:\n    runpy.run_module('gradlint', run_name='__main__')\n"
        "except SystemExit as e:\n    print('exit', e.code)\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines()[-2:] == ["exit 1", "False"], proc.stdout + proc.stderr
    assert "GL101" in proc.stdout


def test_watch_lints_again_when_a_file_changes(project: Path) -> None:
    import time

    process = subprocess.Popen([sys.executable, "-m", "gradlint", "check", "--watch", "--no-cache", "good.py"],
                               cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = process.stdout.readline()
        assert "1 file(s) changed; 1 checked" in first
        assert process.stdout.readline().strip() == "All checks passed!"
        time.sleep(0.2)
        (project / "good.py").write_text(BAD)
        lines = [process.stdout.readline() for _ in range(2)]
        assert "1 file(s) changed" in lines[0]
        assert lines[1].startswith("good.py:5:5: GL101")
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the messages of the first hour (issue 19) -------------------------------------------------


def test_a_missing_path_is_one_error_line_and_never_all_checks_passed(project: Path) -> None:
    alone = run("check", "missing.py", cwd=project)
    assert alone.exit_code == 2
    assert alone.stderr == "gradlint: error: missing.py: no such file or directory\n" and alone.stdout == ""
    beside = run("check", "missing.py", "good.py", cwd=project)
    assert beside.exit_code == 2 and beside.stderr == alone.stderr
    assert "All checks passed!" not in beside.output and beside.stdout.strip() == "1 file could not be checked."
    annotated = run("check", "--format", "github", "missing.py", "good.py", cwd=project)
    assert annotated.stdout.strip() == "::error title=gradlint,file=missing.py,line=1::missing.py: no such file or directory"
    empty = project / "empty"
    empty.mkdir()
    assert run("check", "empty", cwd=project).stdout.strip() == "All checks passed!"  # nothing to check is no error
    verify = run("verify", "missing.py", cwd=project)
    assert verify.exit_code == 2 and verify.stdout == "" and verify.stderr == alone.stderr


def test_a_notebook_finding_keeps_its_cell_when_the_cache_serves_it(tmp_path: Path) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Training"]},
             {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": BAD.splitlines(True)}]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    first, second = (run("check", "nb.ipynb", cwd=tmp_path).stdout.splitlines()[0] for _ in range(2))
    assert first.startswith("nb.ipynb:cell 2:5:5: GL101") and second == first
    assert (tmp_path / ".gradlint_cache").is_dir()


def test_device_accepts_cuda_n_and_rejects_other_names(project: Path) -> None:
    from gradlint.cli import DeviceType

    assert [DeviceType().convert(v, None, None) for v in ("cpu", "cuda", "cuda:1", "CUDA:12")] == [
        "cpu", "cuda", "cuda:1", "cuda:12"]
    for wrong in ("gpu", "cuda:", "cuda:x", "cuda:-1", "mps"):
        result = run("verify", "--device", wrong, "bad.py", cwd=project)
        assert result.exit_code == 2 and "is not cpu, cuda or cuda:N" in result.stderr, wrong


def test_device_cuda_1_reaches_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU is visible: the same answer on every machine
    result = run("verify", "--device", "cuda:1", str(ROOT / "fixtures" / "models" / "deep_plain_relu.py"))
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("gradlint: error: --device cuda:1: CUDA is not available") and "use --device cpu" in line


def test_fail_on_needs_verify_and_decides_by_verdict() -> None:
    from gradlint.cli import _fails_the_run
    from gradlint.diagnostics import Diagnostic

    def finding(verdict):
        return Diagnostic("t.py", 1, 1, 1, 2, "GL201", "m", verdict=verdict)

    verdicts = ["confirmed", "not confirmed", "not verified", None]
    assert [_fails_the_run(finding(v), "findings") for v in verdicts] == [True, True, True, True]
    assert [_fails_the_run(finding(v), "unrefuted") for v in verdicts] == [True, False, True, True]
    assert [_fails_the_run(finding(v), "confirmed") for v in verdicts] == [True, False, False, False]
    result = CliRunner().invoke(main, ["check", "--fail-on", "confirmed", "x.py"])
    assert result.exit_code == 2 and result.stderr == "gradlint: error: --fail-on confirmed needs --verify (verdicts come from it)\n"


DEEP_RELU = """import torch.nn as nn


class Deep(nn.Module):
    def __init__(self, width=32, depth=8):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.{init}

    def forward(self, x):
        return self.net(x)
"""


@pytest.mark.slow
def test_fail_on_confirmed_fails_on_the_confirmed_finding_only(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    # small models keep the verifier quick: std=1 on 32 inputs (c = 16) explodes, PyTorch's
    # default-like init (c = 1/6) shrinks the gradients
    (tmp_path / "confirmed.py").write_text(DEEP_RELU.format(init="normal_(m.weight, std=1.0)"))
    (tmp_path / "refuted.py").write_text(DEEP_RELU.format(init="kaiming_uniform_(m.weight, a=5 ** 0.5)"))
    result = run("check", "--no-cache", "--verify", "--select", "GL201", "--fail-on", "confirmed", "refuted.py",
                 "confirmed.py", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert any(line.startswith("refuted.py:") and line.endswith("[not confirmed]") for line in lines)  # still shown
    assert any(line.startswith("confirmed.py:") and line.endswith("[confirmed]") for line in lines)
    assert result.exit_code == 1 and lines[-1] == "--fail-on confirmed: 1 of 2 findings fail the run.", result.stdout
