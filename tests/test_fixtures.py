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
    result = CliRunner().invoke(main, ["check", "--format", "concise", "fixtures/"])
    assert result.exit_code == 1
    assert result.output == SNAPSHOT.read_text()


def test_every_bad_fixture_has_a_clean_twin() -> None:
    assert BAD and CLEAN_TWINS
    for bad in BAD:
        stem = bad.stem.replace("_no_clip", "_clipped").replace("_wrong_order", "_correct_order")
        assert (bad.parent / f"{stem}.py").exists(), bad


@pytest.mark.parametrize("path", CLEAN_TWINS, ids=lambda p: p.name)
def test_clean_twins_have_no_findings(path: Path) -> None:
    assert lint_source(read_source(str(path)), Settings()) == []


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_fix_on_bad_fixture(path: Path, tmp_path: Path) -> None:
    target = tmp_path / path.name
    shutil.copyfile(path, target)
    before = target.read_bytes()
    settings = Settings()
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
