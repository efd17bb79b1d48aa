"""The bundled fixtures end to end: exact findings, and --fix on every one of them."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import FileResult, FixMode, fix_file, lint_source, rules_for
from gradlint.source import read_source
from tests.conftest import FIXTURES, ROOT

SNAPSHOT = ROOT / "tests" / "snapshots" / "fixtures_check.txt"
ALL_FIXTURES = sorted(FIXTURES.rglob("*.py"))
CLEAN_TWINS = [p for p in ALL_FIXTURES if p.stem.endswith(("_clipped", "_correct_order", "_ok"))]
BAD = [p for p in ALL_FIXTURES if p.stem.endswith(("_no_clip", "_wrong_order"))]


def test_check_on_fixtures_matches_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", "--no-cache", "--format", "concise", "fixtures/"])
    assert result.exit_code == 1
    assert result.output == SNAPSHOT.read_text()


def test_every_bad_fixture_has_a_clean_twin() -> None:
    assert BAD and CLEAN_TWINS
    for bad in BAD:
        stem = bad.stem.replace("_no_clip", "_clipped").replace("_wrong_order", "_correct_order")
        assert (bad.parent / f"{stem}.py").exists(), bad


@pytest.mark.parametrize("path", CLEAN_TWINS, ids=lambda p: p.name)
def test_clean_twins_have_no_findings(path: Path) -> None:
    # the clipping twins differ only in clipping; other rules may fire on both
    assert lint_source(read_source(str(path)), Settings(select=("GL1",))) == []


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_fix_on_bad_fixture(path: Path, tmp_path: Path) -> None:
    target = tmp_path / path.name
    shutil.copyfile(path, target)
    before = target.read_bytes()
    settings = Settings(select=("GL1",))
    result = FileResult(str(target))
    mode = FixMode(apply=True)
    fix_file(read_source(str(target)), settings, rules_for(settings, str(target)), mode, result)
    after = target.read_bytes()
    assert result.fixed >= 1 and after != before
    ast.parse(after)
    assert lint_source(read_source(str(target)), settings) == []  # nothing fixable or not is left
    # only lines were added or moved: every original line is still there
    assert sorted(set(before.decode().splitlines())) == sorted(set(before.decode().splitlines()) & set(after.decode().splitlines()))
    second = FileResult(str(target))
    fix_file(read_source(str(target)), settings, rules_for(settings, str(target)), mode, second)
    assert second.fixed == 0 and target.read_bytes() == after


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_all_fixes_including_unsafe_parse_and_are_idempotent(path: Path, tmp_path: Path) -> None:
    target = tmp_path / path.name
    shutil.copyfile(path, target)
    settings = Settings(select=("ALL",))
    mode = FixMode(apply=True, unsafe=True)
    first = FileResult(str(target))
    fix_file(read_source(str(target)), settings, rules_for(settings, str(target)), mode, first)
    after = target.read_bytes()
    ast.parse(after)
    assert first.fix_errors == []
    assert [d for d in first.diagnostics if d.fix is not None] == []  # every fixable finding fixed
    second = FileResult(str(target))
    fix_file(read_source(str(target)), settings, rules_for(settings, str(target)), mode, second)
    assert second.fixed == 0 and target.read_bytes() == after


DATA = FIXTURES / "data"
DATA_EXPECTED = {  # file -> the GL4xx codes it must show (GL402 selected explicitly: it is off by default)
    "pendulum_ddpg_raw.py": {"GL401", "GL402"},
    "mujoco_ppo_raw.py": {"GL401", "GL402"},
    "maddpg_multiagent_raw.py": {"GL401", "GL402"},
    "atari_dqn_raw.py": {"GL403", "GL402"},
    "tabular_regression_raw.py": {"GL401"},
    "split_project/train_raw.py": {"GL401", "GL402"},
    "pendulum_ddpg_normalized.py": set(),
    "mujoco_ppo_wrapped.py": set(),
    "maddpg_multiagent_normalized.py": set(),
    "atari_dqn_scaled.py": set(),
    "tabular_regression_scaled.py": set(),
    "split_project/train.py": set(),  # normalized by wrappers in the sibling envs.py
}


@pytest.mark.parametrize("name", sorted(DATA_EXPECTED))
def test_data_fixtures(name: str) -> None:
    path = DATA / name
    settings = Settings(select=("GL4",), root=str(path.parent))
    assert {d.code for d in lint_source(read_source(str(path)), settings)} == DATA_EXPECTED[name]


def test_the_cheap_skip_criteria_lose_no_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule's `wants` (the documented per-file text pre-filter) only skips work: with it
    disabled, every fixture gives exactly the same findings. (Within a file nothing is skipped.)"""
    from gradlint.rules import ALL_RULES

    settings = Settings(select=("ALL",))
    fast = {p: [d.to_dict() for d in lint_source(read_source(str(p)), settings)] for p in ALL_FIXTURES}
    for rule in ALL_RULES:
        monkeypatch.setattr(rule, "wants", classmethod(lambda cls, text: True))
    slow = {p: [d.to_dict() for d in lint_source(read_source(str(p)), settings)] for p in ALL_FIXTURES}
    assert slow == fast
