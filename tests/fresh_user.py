"""What a new user starts from, for the tests that drive real git, pip and pre-commit: a git
repository holding this working tree (tagged with this release, as published), a fresh HOME,
and an environment with no trace of the test run's own virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gradlint import __version__
from tests.conftest import ROOT

TAG = f"v{__version__}"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid",
                "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.invalid"}


def git(cwd: Path, *args: str, env: dict | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env={**(env or os.environ), **GIT_IDENTITY}, check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def published_repository(dest: Path, tag: str | None = TAG) -> Path:
    """A git repository of the working tree as it is now (tracked and new files, not ignored
    ones), committed and tagged: what a user clones, or what a `repo:` or git URL names."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "gradlint as published")
    if tag:
        git(dest, "tag", tag)
    return dest


def fresh_environment(home: Path, python: str | None = None) -> dict[str, str]:
    """A new user's shell: a fresh HOME, no active virtual environment, and (when `python` is
    given) that interpreter as the first `python3` on PATH. The machine's pip configuration
    (its index) is kept: it is where any user of this machine installs from."""
    home.mkdir(parents=True, exist_ok=True)
    own_env = Path(sys.prefix).resolve() if sys.prefix != sys.base_prefix else None  # the test run's venv
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not (own_env and Path(p).resolve().is_relative_to(own_env))]
    if python:
        shim = home / "bin"
        shim.mkdir(exist_ok=True)
        (shim / "python3").symlink_to(python)
        path.insert(0, str(shim))
    env = {"HOME": str(home), "PATH": os.pathsep.join(path), "LANG": "C.UTF-8", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_BREAK_SYSTEM_PACKAGES"})
    return env


def have_git() -> bool:
    return shutil.which("git") is not None and (ROOT / ".git").exists()
