from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings, expand
from gradlint.diagnostics import Diagnostic
from gradlint.engine import FileResult, FixMode, fix_file, lint_source, rules_for
from gradlint.source import SourceFile, decode_source

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def settings_for(select: str | None = None, **options) -> Settings:
    settings = Settings(select=tuple(select.split(",")) if select else None)
    if options:
        settings.rule_options = options
    return settings


def lint(code: str, select: str | None = None, **options) -> list[Diagnostic]:
    """Findings for a snippet (dedented); `select` is a comma-separated selection."""
    source = SourceFile("snippet.py", textwrap.dedent(code))
    found = lint_source(source, settings_for(select, **options))
    assert_declared_severities(found)
    return found


def assert_declared_severities(found: list[Diagnostic]) -> None:
    """Every rule test also checks that a finding's severity is one its rule declares (the README's
    rule table and docs/rules.md print the declared ones)."""
    from gradlint.rules import RULES_BY_CODE

    for diagnostic in found:
        if diagnostic.code in RULES_BY_CODE:
            assert diagnostic.severity in RULES_BY_CODE[diagnostic.code].reported_severities(), diagnostic


def codes(code: str, select: str | None = None) -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in lint(code, select)]


def fix(code: str | bytes, select: str | None = None, unsafe: bool = False) -> tuple[str, FileResult]:
    """Apply fixes to a snippet in memory; returns the new text and the result."""
    raw = code if isinstance(code, bytes) else textwrap.dedent(code).encode()
    source = decode_source("snippet.py", raw)
    settings = settings_for(select)
    result = FileResult("snippet.py")
    text = fix_file(source, settings, rules_for(settings, "snippet.py"), FixMode(diff=True, unsafe=unsafe), result)
    return text, result


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


__all__ = ["lint", "codes", "fix", "settings_for", "expand", "FIXTURES", "ROOT"]
