"""The hooks of .pre-commit-hooks.yaml, driven through the real `pre-commit try-repo`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_notebooks import notebook

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("pre-commit") is None or shutil.which("git") is None,
                                                    reason="needs pre-commit and git")]

BAD = "import torch\nfor x in loader:\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", *args], cwd=repo, check=True,
                   capture_output=True)


def try_repo(repo: Path, hook: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home)}
    return subprocess.run(["pre-commit", "try-repo", str(ROOT), hook, "--files", "train.py", "train.ipynb"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


def test_check_hook_fails_and_fix_hook_fixes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text(BAD)
    notebook(repo / "train.ipynb")  # types_or: [python, jupyter]
    git(repo, "add", "train.py", "train.ipynb")
    git(repo, "commit", "-qm", "init")
    home = tmp_path / "pre-commit-home"
    check = try_repo(repo, "gradlint", home)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "train.py:5:5: GL101" in check.stdout
    assert "train.ipynb:cell 3:5:5: GL101" in check.stdout
    fix = try_repo(repo, "gradlint-fix", home)
    assert fix.returncode == 1  # pre-commit fails a hook that changed files, as with ruff --fix
    assert "files were modified by this hook" in fix.stdout
    assert "clip_grad_norm_" in (repo / "train.py").read_text()
    assert "clip_grad_norm_" in (repo / "train.ipynb").read_text()
    again = try_repo(repo, "gradlint", home)
    assert again.returncode == 0, again.stdout
