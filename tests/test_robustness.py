"""Robustness: any valid Python lints without a crash, any invalid input gets one clear line,
fixes are safe (parse, idempotent, atomic, permissions kept), and linting never runs the code."""

from __future__ import annotations

import ast
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import FileResult, FixMode, fix_file, lint_source, rules_for
from gradlint.source import SourceError, SourceFile, decode_source
from tests.conftest import FIXTURES

ALL = Settings(select=("ALL",))
FIXTURE_FILES = sorted(FIXTURES.rglob("*.py"))


def lint_text(text: str):
    """Lint; a SourceError about the input (a clear one-line reason) is an allowed outcome; a rule's
    crash (which the engine reports as an "internal error" line) or a spent budget is a failure."""
    try:
        return lint_source(SourceFile("fuzz.py", text), ALL)
    except SourceError as exc:
        assert exc.message and "\n" not in exc.message
        assert not exc.message.startswith(("internal error", "analysis budget exceeded")), exc.message
        return None


def test_a_rule_that_raises_fails_the_robustness_checks(monkeypatch) -> None:
    # the fuzz and mutation tests below must be able to fail: a crashing rule is not "bad input"
    from gradlint.rules import ALL_RULES

    def crash(self, ctx):
        raise KeyError("boom")

    for rule in ALL_RULES:
        monkeypatch.setattr(rule, "check", crash)
    with pytest.raises(AssertionError, match="internal error in GL"):
        lint_text("import torch\nloss.backward()\noptimizer.step()\n")


def fix_text(text: str) -> str:
    source = decode_source("fuzz.py", text.encode())
    return fix_file(source, ALL, rules_for(ALL, "fuzz.py"), FixMode(diff=True, unsafe=True), FileResult("fuzz.py"))


# --- generated programs ---------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
hypothesmith = pytest.importorskip("hypothesmith")
from hypothesis import HealthCheck, given, settings  # noqa: E402


# hypothesmith compiles what it generates; CPython's SyntaxWarnings about that code are noise
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar())
def test_generated_programs_never_crash_the_linter(source: str) -> None:
    lint_text(source)


class _Mutator(ast.NodeTransformer):
    """Drop, reorder and rename statements; swap calls between torch-like names."""

    NAMES = ["step", "backward", "zero_grad", "clip_grad_norm_", "unscale_", "normal_", "uniform_", "relu",
             "tanh", "softsign", "reset", "sample", "add", "parameters", "Linear", "LSTM", "Sequential"]

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _body(self, body):
        body = [s for s in body if self.rng.random() > 0.15] or body[:1]
        if len(body) > 2 and self.rng.random() < 0.3:
            i, j = self.rng.sample(range(len(body)), 2)
            body[i], body[j] = body[j], body[i]
        return body

    def generic_visit(self, node):
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if isinstance(value, list) and value and all(isinstance(s, ast.stmt) for s in value):
                setattr(node, field, self._body(value))
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if self.rng.random() < 0.1:
            node.attr = self.rng.choice(self.NAMES)
        return node

    def visit_Name(self, node):
        if self.rng.random() < 0.05:
            node.id = self.rng.choice(["optimizer", "env", "scaler", "model", "self", "nn", "torch", "F"])
        return node


@pytest.mark.parametrize("seed", range(40))
def test_mutated_fixtures_lint_and_fix_safely(seed: int) -> None:
    rng = random.Random(seed)
    path = FIXTURE_FILES[seed % len(FIXTURE_FILES)]
    tree = _Mutator(rng).visit(ast.parse(path.read_text()))
    try:
        text = ast.unparse(ast.fix_missing_locations(tree))
    except (RecursionError, ValueError):  # pragma: no cover - an unparseable mutation
        return
    lint_text(text)
    once = fix_text(text)
    ast.parse(once)
    assert fix_text(once) == once  # fix(fix(x)) == fix(x)
    remaining = lint_source(SourceFile("fuzz.py", once), ALL)
    assert [d for d in remaining if d.fix is not None] == []


# --- bad input ----------------------------------------------------------------------------------


def run(*args: str, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["check", "--no-cache", *args])
    finally:
        os.chdir(old)


def test_each_bad_input_is_one_line_and_the_rest_is_linted(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("import torch\nloss.backward()\noptimizer.step()\n")
    (tmp_path / "binary.py").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "nested.py").write_text("x = " + "(" * 400 + "1" + ")" * 400 + "\n")
    (tmp_path / "deep.py").write_text("x = " + "1 + " * 60000 + "1\n")
    (tmp_path / "bom_crlf.py").write_bytes(b"\xef\xbb\xbfimport torch\r\nloss.backward()\r\noptimizer.step()\r\n")
    (tmp_path / "big.py").write_text("import torch\n" + "x = [1, 2, 3]\n" * 800_000)  # ~11 MB
    loop = tmp_path / "loop.py"
    loop.symlink_to(tmp_path / "loop.py")
    (tmp_path / "dirloop").mkdir()
    (tmp_path / "dirloop" / "self").symlink_to(tmp_path / "dirloop", target_is_directory=True)
    result = run(".", cwd=tmp_path)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    errors = sorted(line.split(":")[2].strip() for line in lines if line.startswith("gradlint: error:"))
    assert errors == ["./binary.py", "./deep.py", "./loop.py", "./nested.py"], result.output
    assert any(line.startswith("./good.py:3:1: GL101") for line in lines)
    assert any(line.startswith("./bom_crlf.py:3:1: GL101") for line in lines)
    assert "Traceback" not in result.output


def test_a_file_that_vanishes_during_the_run(tmp_path: Path, monkeypatch) -> None:
    from gradlint import engine

    (tmp_path / "gone.py").write_text("x = 1\n")
    (tmp_path / "kept.py").write_text("import torch\nloss.backward()\noptimizer.step()\n")
    real = engine.read_source

    def vanishing(path, *args, **kwargs):
        if path.endswith("gone.py") and os.path.exists(path):
            os.unlink(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(engine, "read_source", vanishing)
    result = run("gone.py", "kept.py", cwd=tmp_path)
    assert "gradlint: error: gone.py: file not found (removed during the run?)" in result.output
    assert "kept.py:3:1: GL101" in result.output and result.exit_code == 2


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.py"
    path.write_text("x = 1\n")
    path.chmod(0)
    result = run("secret.py", cwd=tmp_path)
    assert "gradlint: error: secret.py: permission denied" in result.output


# --- fix safety -------------------------------------------------------------------------------


BAD = "import torch\nfor x in loader:\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"


def test_fix_keeps_permissions_and_is_atomic(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "train.py"
    path.write_text(BAD)
    path.chmod(0o640)
    assert run("--fix", "train.py", cwd=tmp_path).exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and "clip_grad_norm_" in path.read_text()
    # an interrupted write leaves the old file and no temporary file behind
    path.write_text(BAD)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    result = CliRunner().invoke(main, ["check", "--no-cache", "--fix", str(path)])
    assert result.exit_code != 0  # click reports the interrupt as "Aborted!"
    assert path.read_text() == BAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]


def test_a_file_changed_during_the_run_is_not_overwritten(tmp_path: Path, monkeypatch) -> None:
    from gradlint import fixing

    path = tmp_path / "train.py"
    path.write_text(BAD)
    real = fixing.write_atomically

    def edited_meanwhile(source, data):
        path.write_text(BAD + "# edited by someone else\n")
        return real(source, data)

    monkeypatch.setattr("gradlint.engine.write_atomically", edited_meanwhile)
    result = run("--fix", "train.py", cwd=tmp_path)
    assert result.exit_code == 2 and "changed on disk during the run; not written" in result.output
    assert path.read_text().endswith("# edited by someone else\n")


def test_two_fix_runs_at_once_lose_nothing(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"train{i}.py").write_text(BAD)
    command = [sys.executable, "-m", "gradlint", "check", "--no-cache", "--fix", "-j", "1", str(tmp_path)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for process in runs:
        process.communicate(timeout=120)
    for path in tmp_path.glob("*.py"):
        text = path.read_text()
        ast.parse(text)
        assert text.count("clip_grad_norm_") == 1, text  # fixed once, never twice, never lost
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- linting never runs the code -------------------------------------------------------------


def test_check_never_imports_or_executes_the_linted_code(tmp_path: Path) -> None:
    marker = tmp_path / "EXECUTED"
    (tmp_path / "evil.py").write_text(
        f"import os, socket, sys\nopen({str(marker)!r}, 'w').write('ran')\n"
        "socket.create_connection(('127.0.0.1', 9))\nsys.exit(7)\nos._exit(9)\n"
        "class Net(nn.Module):\n    pass\nloss.backward()\noptimizer.step()\n")
    result = run("--fix", "--unsafe-fixes", ".", cwd=tmp_path)
    assert not marker.exists()
    assert result.exit_code in (0, 1)
