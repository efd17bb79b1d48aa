"""The result cache: same answers warm as cold, never stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from gradlint.cache import Cache
from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import lint_paths
from tests.test_cli import BAD, GOOD


def run(*args: str, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)


def test_warm_run_matches_cold_and_uses_the_cache(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "bad.py").write_text(BAD)
    cold = run("check", "--format", "json", ".", cwd=tmp_path)
    cache = tmp_path / ".gradlint_cache"
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (cache / ".gitignore").read_text() == "*\n"
    import gradlint.engine as engine

    def no_linting(*args, **kwargs):
        raise AssertionError("a warm run must not lint an unchanged file")

    monkeypatch.setattr(engine, "lint_file", no_linting)
    warm = run("check", "--format", "json", ".", cwd=tmp_path)
    assert warm.output == cold.output and warm.exit_code == cold.exit_code == 1


def test_changes_to_the_file_settings_or_a_sibling_invalidate(tmp_path: Path) -> None:
    (tmp_path / "envs.py").write_text("import gymnasium as gym\n\ndef make_env():\n    return gym.make('Hopper-v4')\n")
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import torch
        import torch.nn as nn
        from envs import make_env

        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(11, 3)

            def forward(self, x):
                return self.fc(x)

        env = make_env()
        policy = Policy()
        obs, _ = env.reset()
        action = policy(torch.as_tensor(obs))
    """))
    settings = Settings(select=("GL4",), root=str(tmp_path))
    cache = Cache(str(tmp_path / "cache"), settings)
    files = [str(tmp_path / "train.py")]
    [first] = lint_paths(files, settings, cache=cache, jobs=1)
    assert [d.code for d in first.diagnostics] == ["GL401"]
    assert cache.get(files[0]) is not None
    # the sibling now normalizes: the cached finding must not be served
    (tmp_path / "envs.py").write_text("import gymnasium as gym\n\ndef make_env():\n"
                                      "    return gym.wrappers.NormalizeObservation(gym.make('Hopper-v4'))\n")
    assert cache.get(files[0]) is None
    [second] = lint_paths(files, settings, cache=cache, jobs=1)
    assert second.diagnostics == []
    # another selection uses another part of the cache
    assert Cache(str(tmp_path / "cache"), Settings(select=("GL1",))).get(files[0]) is None
    # editing the file itself
    (tmp_path / "train.py").write_text((tmp_path / "train.py").read_text() + "\n# edited\n")
    assert cache.get(files[0]) is None


def test_no_cache_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(BAD)
    assert run("check", "--no-cache", ".", cwd=tmp_path).exit_code == 1
    assert not (tmp_path / ".gradlint_cache").exists()


def _linted(tmp_path: Path, text: str, mtime_ago_s: float | None = None):
    path = tmp_path / "bad.py"
    path.write_text(text)
    if mtime_ago_s is not None:
        old = path.stat().st_mtime - mtime_ago_s
        os.utime(path, (old, old))
    settings = Settings(root=str(tmp_path))
    cache = Cache(str(tmp_path / "cache"), settings)
    [result] = lint_paths([str(path)], settings, cache=cache, jobs=1)
    assert result.diagnostics
    return path, settings


def test_a_recent_edit_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    path, settings = _linted(tmp_path, BAD)
    stat = path.stat()
    edited = BAD.replace("model(x).sum()", "model(x).max()")
    assert len(edited) == len(BAD) and edited != BAD
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime, new content
    assert Cache(str(tmp_path / "cache"), settings).get(str(path)) is None


def test_size_and_mtime_spare_hashing_an_old_unchanged_file(tmp_path: Path, monkeypatch) -> None:
    path, settings = _linted(tmp_path, BAD, mtime_ago_s=3600)
    import gradlint.cache as cache_module

    def no_hashing(path):
        raise AssertionError("an old file with the recorded size and mtime is not hashed again")

    monkeypatch.setattr(cache_module, "file_hash", no_hashing)
    cached = Cache(str(tmp_path / "cache"), settings).get(str(path))
    assert cached is not None and [d.code for d in cached.diagnostics] == ["GL101"]


def test_two_runs_at_once_keep_each_others_entries(tmp_path: Path) -> None:
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(BAD)
    settings = Settings(root=str(tmp_path))
    first, second = (Cache(str(tmp_path / "cache"), settings) for _ in range(2))
    [a] = lint_paths([str(tmp_path / "a.py")], settings, jobs=1)
    [b] = lint_paths([str(tmp_path / "b.py")], settings, jobs=1)
    first.put(a)
    second.put(b)
    first.save()
    second.save()  # read what `first` wrote, added its own
    fresh = Cache(str(tmp_path / "cache"), settings)
    assert fresh.get(str(tmp_path / "a.py")) is not None and fresh.get(str(tmp_path / "b.py")) is not None


def test_two_check_runs_at_once_share_the_cache_safely(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"train{i}.py").write_text(BAD if i % 2 else GOOD)
    command = [sys.executable, "-m", "gradlint", "check", "--format", "concise", "-j", "1",
               "--cache-dir", str(tmp_path / "cache"), str(tmp_path)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in runs]
    assert [p.returncode for p in runs] == [1, 1] and outputs[0][0] == outputs[1][0], outputs
    assert outputs[0][0].count("GL101") == 5
    [results] = (tmp_path / "cache").glob("*/*/results.json")
    assert len(json.loads(results.read_text())["entries"]) == 10  # whichever run saved last, nothing torn or lost
    warm = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert warm.stdout == outputs[0][0]
