"""The README's pre-commit snippet, as written, driven through the real `pre-commit` and `git`:
on a Python file and a notebook, the check hook, the fix hook, a commit it refuses, and
`pre-commit autoupdate` for copies with and without the release tag."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fresh_user import GIT_IDENTITY, TAG, fresh_environment, git, have_git, published_repository
from tests.test_readme import section

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("pre_commit") is None or not have_git(),
                                 reason="needs pre-commit and git")]

BAD = "import torch\nfor x in loader:\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
NOTEBOOK = {"cells": [
    {"cell_type": "markdown", "metadata": {}, "source": ["# Training"]},
    {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": [
        "import torch\n", "model = torch.nn.Linear(4, 1)\n", "optimizer = torch.optim.Adam(model.parameters())"]},
    {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [], "source": [
        "for step in range(100):\n", "    loss = model(torch.randn(8, 4)).pow(2).mean()\n",
        "    optimizer.zero_grad()\n", "    loss.backward()\n", "    optimizer.step()"]}],
    "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def snippet() -> str:
    return section("pre-commit").split("```yaml\n", 1)[1].split("```", 1)[0]


def pre_commit(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=600)


def test_snippet_as_written_checks_and_fixes_python_files_and_notebooks(tmp_path: Path) -> None:
    published = published_repository(tmp_path / "gradlint")
    env = fresh_environment(tmp_path / "home")
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-cache")
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text(BAD)
    (repo / "explore.ipynb").write_text(json.dumps(NOTEBOOK, indent=1) + "\n")
    config = snippet()
    assert f"rev: {TAG} " in config and "https://github.com/<owner>/gradlint" in config
    (repo / ".pre-commit-config.yaml").write_text(config.replace("https://github.com/<owner>/gradlint", str(published)))
    git(repo, "add", "-A")

    check = pre_commit(repo, env, "run", "--files", "train.py", "explore.ipynb")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "train.py:5:5: GL101" in check.stdout
    assert "explore.ipynb:cell 3:5:5: GL101" in check.stdout  # notebooks reach the hook

    # the commit hook refuses the unclipped notebook
    assert pre_commit(repo, env, "install").returncode == 0
    commit = subprocess.run(["git", "commit", "-qm", "explore"], cwd=repo, env={**env, **GIT_IDENTITY},
                            capture_output=True, text=True, timeout=600)
    assert commit.returncode != 0 and "explore.ipynb:cell 3:5:5: GL101" in commit.stdout + commit.stderr, commit.stderr
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo, capture_output=True).returncode != 0

    # the snippet's other hook, switched on as its comment says
    fix_config = config.replace("# - id: gradlint-fix", "- id: gradlint-fix")
    (repo / ".pre-commit-config.yaml").write_text(fix_config.replace("https://github.com/<owner>/gradlint", str(published)))
    fix = pre_commit(repo, env, "run", "gradlint-fix", "--files", "train.py", "explore.ipynb")
    assert fix.returncode == 1  # pre-commit fails a hook that changed files, as with ruff --fix
    assert "files were modified by this hook" in fix.stdout
    assert "clip_grad_norm_" in (repo / "train.py").read_text()
    cells = json.loads((repo / "explore.ipynb").read_text())["cells"]
    assert any("clip_grad_norm_" in "".join(cell["source"]) for cell in cells)
    again = pre_commit(repo, env, "run", "gradlint", "--files", "train.py", "explore.ipynb")
    assert again.returncode == 0, again.stdout


def test_autoupdate_pins_the_newest_tag_or_else_the_newest_commit(tmp_path: Path) -> None:
    published = published_repository(tmp_path / "gradlint")
    env = fresh_environment(tmp_path / "home")
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-cache")
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    config = repo / ".pre-commit-config.yaml"
    config.write_text(snippet().replace("https://github.com/<owner>/gradlint", str(published)))
    tagged = pre_commit(repo, env, "autoupdate")
    assert tagged.returncode == 0, tagged.stdout + tagged.stderr
    assert f"rev: {TAG} " in config.read_text()  # the snippet already names the newest release

    shutil.rmtree(published / ".git")  # a copy of gradlint without the tag: autoupdate pins its commit
    git(published, "init", "-q")
    git(published, "add", "-A")
    git(published, "commit", "-qm", "a copy without tags")
    untagged = pre_commit(repo, env, "autoupdate")
    assert untagged.returncode == 0, untagged.stdout + untagged.stderr
    assert f"rev: {git(published, 'rev-parse', 'HEAD')}" in config.read_text()
