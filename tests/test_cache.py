"""The result cache: same answers warm as cold, never stale."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
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
    assert len(_entries(results)) == 10  # whichever run saved last, nothing torn or lost
    warm = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert warm.stdout == outputs[0][0]


# --- a cache nobody can forge, and nothing malformed can crash or mislead ------------------------


def _cached_check(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """bad.py and clean.py linted once with the cache; returns bad.py and the results file."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "clean.py").write_text(GOOD)
    assert run("check", ".", cwd=tmp_path).exit_code == 1
    [results] = (tmp_path / ".gradlint_cache").glob("*/*/results.json")
    return tmp_path / "bad.py", results


def _entries(results: Path) -> dict:
    header, _, body = results.read_bytes().partition(b"\n")
    assert header.startswith(b"gradlint-cache 2 ")
    return json.loads(body)


def _cache(results: Path) -> Cache:
    return Cache(str(results.parent.parent.parent), Settings())


def _genuine(results: Path, path: Path) -> bool:
    """Whether the results file is signed and holds a well-formed entry for `path` with its finding."""
    cached = _cache(results).get(str(path))
    return cached is not None and [d.code for d in cached.diagnostics] == ["GL101"]


def test_the_key_lives_outside_the_project_and_is_private(tmp_path: Path, monkeypatch) -> None:
    bad, results = _cached_check(tmp_path, monkeypatch)
    key = tmp_path / "user-cache" / "gradlint" / "cache-key"
    assert key.stat().st_size == 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".gradlint_cache/**/*key*"))
    # no place for a key (XDG_CACHE_HOME is a file): nothing is cached, everything still linted
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    results.unlink()
    result = run("check", ".", cwd=tmp_path)
    assert result.exit_code == 1 and "bad.py:5:5: GL101" in result.output and not results.exists()


def test_an_entry_with_the_right_hash_and_no_findings_does_not_hide_them(tmp_path: Path, monkeypatch) -> None:
    """The attack: a results file committed with an entry that records bad.py's real size,
    mtime and hash but no findings. The file's MAC cannot be made without the user's key:
    forged under the old MAC, under another key, without one, or with a clean file's genuine
    entry copied to bad.py, the file is ignored, bad.py linted again and the file rewritten."""
    import hashlib
    import hmac

    bad, results = _cached_check(tmp_path, monkeypatch)
    key = str(bad.resolve())
    header = results.read_bytes().partition(b"\n")[0]
    genuine = _entries(results)
    emptied = {**genuine, key: {**genuine[key], "diagnostics": []}}
    copied = {**genuine, key: genuine[str((tmp_path / "clean.py").resolve())]}
    for forged in (emptied, copied):
        body = json.dumps(forged, separators=(",", ":")).encode()
        other_key = hmac.new(b"\0" * 32, b"gradlint-cache\x002\x00" + body, hashlib.sha256).hexdigest().encode()
        for head in (header, b"gradlint-cache 2 " + other_key, b"gradlint-cache 2 ", b""):
            results.write_bytes(head + b"\n" + body)
            result = run("check", ".", cwd=tmp_path)
            assert result.exit_code == 1 and "bad.py:5:5: GL101" in result.output, head
            assert _entries(results)[key]["diagnostics"]  # rewritten, signed
            assert _genuine(results, bad)


MALFORMED = {
    "not JSON": b"{garbage",
    "a list": b"[]",
    "format 1 (unsigned)": json.dumps({"/x.py": {"hash": "0"}}).encode(),
    "a header alone": b"gradlint-cache 2 00",
    "a header of another format": b"gradlint-cache 3 00\n{}",
    "a MAC that is not hex": b"gradlint-cache 2 zz\n{}",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "NUL bytes": b"\0" * 1000,
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_results_file_is_ignored_and_rewritten(tmp_path: Path, monkeypatch, name: str) -> None:
    bad, results = _cached_check(tmp_path, monkeypatch)
    results.write_bytes(MALFORMED[name])
    result = run("check", ".", cwd=tmp_path)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1 and "bad.py:5:5: GL101" in result.output
    assert _genuine(results, bad)


def _misshapen(entry: dict) -> dict[str, object]:
    """Entries of the wrong shape (as a buggy gradlint could write them, signed with the real
    key): the MAC alone must not make them used."""
    from gradlint.rules import RULES_BY_CODE

    off = next(code for code in sorted(RULES_BY_CODE) if code not in Settings().enabled)
    first = entry["diagnostics"][0]
    return {
        "not a table": ["a", "list"],
        "dependencies a list": {**entry, "dependencies": []},
        "checked a string": {**entry, "checked": "later"},
        "size a float": {**entry, "size": 1.5},
        "no hash": {k: v for k, v in entry.items() if k != "hash"},
        "diagnostics a table": {**entry, "diagnostics": {}},
        "a diagnostic a string": {**entry, "diagnostics": ["GL101"]},
        "unknown rule": {**entry, "diagnostics": [{**first, "code": "GL999"}]},
        "a rule not selected": {**entry, "diagnostics": [{**first, "code": off}]},
        "line 0": {**entry, "diagnostics": [{**first, "line": 0}]},
        "line a string": {**entry, "diagnostics": [{**first, "line": "5"}]},
        "bad severity": {**entry, "diagnostics": [{**first, "severity": "fatal"}]},
        "severity a list": {**entry, "diagnostics": [{**first, "severity": []}]},
        "no message": {**entry, "diagnostics": [{k: v for k, v in first.items() if k != "message"}]},
        "bad edit": {**entry, "diagnostics": [{**first, "fix": {"message": "m", "applicability": "safe",
                                                                "edits": [{"start": 5, "end": 1}]}}]},
        "error of another shape": {**entry, "error": {"message": 1}},
        "a dependency of another shape": {**entry, "dependencies": {"/x.py": {"hash": 3}}},
    }


def test_a_signed_entry_of_the_wrong_shape_is_ignored_and_rewritten(tmp_path: Path, monkeypatch) -> None:
    bad, results = _cached_check(tmp_path, monkeypatch)
    key = str(bad.resolve())
    genuine = _entries(results)
    cache = _cache(results)
    for name, entry in _misshapen(genuine[key]).items():
        results.write_bytes(cache._sign({**genuine, key: entry}))
        result = run("check", ".", cwd=tmp_path)
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.exception)
        assert result.exit_code == 1 and "bad.py:5:5: GL101" in result.output, (name, result.output)
        assert _entries(results)[key] != entry and _genuine(results, bad), name
    # a misshapen entry of a file not linted this run is dropped when the results are rewritten
    ghost = str((tmp_path / "ghost.py").resolve())
    results.write_bytes(cache._sign({key: {"x": 1}, ghost: {"x": 1}}))
    assert run("check", ".", cwd=tmp_path).exit_code == 1
    assert ghost not in _entries(results)


def test_a_cache_that_is_not_a_regular_file_or_directory_is_never_followed(tmp_path: Path, monkeypatch) -> None:
    """A results file that is a FIFO or a link to /dev/zero cannot hang the run; a cache
    directory that is a link (committed to the repository) is not used, so nothing is written
    where it points."""
    from tests.test_hostile_inputs import gradlint

    bad, results = _cached_check(tmp_path, monkeypatch)
    env = {"XDG_CACHE_HOME": str(tmp_path / "user-cache"), "GRADLINT_NO_CACHE": ""}
    results.unlink()
    os.mkfifo(results)
    run_fifo = gradlint("check", "bad.py", cwd=tmp_path, env=env)
    assert results.is_file()  # the FIFO replaced by a results file
    results.unlink()
    results.symlink_to("/dev/zero")
    run_zero = gradlint("check", "bad.py", cwd=tmp_path, env=env)
    for result in (run_fifo, run_zero):
        assert result.returncode == 1 and "bad.py:5:5: GL101" in result.stdout and "Traceback" not in result.output
    assert results.is_file() and not results.is_symlink()  # the link replaced by a results file, not written through
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "bad.py").write_text(BAD)
    (project / ".gradlint_cache").symlink_to(outside, target_is_directory=True)
    result = gradlint("check", "bad.py", cwd=project, env=env)
    assert result.returncode == 1 and "bad.py:5:5: GL101" in result.stdout
    assert list(outside.iterdir()) == []
