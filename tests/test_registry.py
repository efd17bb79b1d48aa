"""The rule registry and each rule's own documentation examples (Fixit-style: docs are tests)."""

from __future__ import annotations

import re

import pytest

from gradlint.config import ConfigError, Settings, expand
from gradlint.engine import lint_paths
from gradlint.rules import ALL_RULES, RULES_BY_CODE
from tests.conftest import lint


def test_codes_are_unique_well_formed_and_in_order() -> None:
    codes = [rule.code for rule in ALL_RULES]
    assert len(set(codes)) == len(codes)
    assert codes == sorted(codes)
    assert all(re.fullmatch(r"GL[1-9]\d\d", code) for code in codes)
    names = [rule.name for rule in ALL_RULES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_is_documented(rule) -> None:
    assert rule.summary and rule.rationale and rule.bad_example and rule.good_example
    assert len(rule.rationale) > 200  # says why, not only what
    if rule.fix_applicability is not None:
        assert rule.fix_description


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_bad_example_is_flagged_and_good_example_is_not(rule) -> None:
    header = "import torch\nimport torch.nn as nn\nscaler = torch.amp.GradScaler()\n"
    assert rule.code in {d.code for d in lint(header + rule.bad_example, select=rule.code)}
    assert lint(header + rule.good_example, select=rule.code) == []


def test_selection_by_prefix_and_all() -> None:
    assert expand(["GL1"], "t") == {"GL101", "GL102", "GL103"}
    assert expand(["all"], "t") == set(RULES_BY_CODE)
    assert Settings(select=("GL1",), ignore=("GL102",)).enabled == {"GL101", "GL103"}
    with pytest.raises(ConfigError, match="unknown rule code or prefix 'GL9'"):
        expand(["GL9"], "t")


def test_parallel_run_gives_the_same_results_in_the_same_order(tmp_path) -> None:
    files = []
    for i in range(24):
        path = tmp_path / f"m{i:02d}.py"
        body = "import torch\nloss.backward()\noptimizer.step()\n" if i % 3 else "x = 1\n"
        path.write_text(body)
        files.append(str(path))
    serial = lint_paths(files, Settings(), jobs=1)
    parallel = lint_paths(files, Settings(), jobs=2)
    assert [r.path for r in parallel] == files
    assert [(r.path, [d.to_dict() for d in r.diagnostics]) for r in serial] == [
        (r.path, [d.to_dict() for d in r.diagnostics]) for r in parallel
    ]
    assert sum(len(r.diagnostics) for r in parallel) == 16


def test_generated_rule_docs_are_up_to_date() -> None:
    from gradlint.docs import render
    from tests.conftest import ROOT

    assert (ROOT / "docs" / "rules.md").read_text() == render(), "run: python -m gradlint.docs > docs/rules.md"


def test_every_rule_module_is_discovered_with_exactly_one_rule_named_after_its_code() -> None:
    import pkgutil

    import gradlint.rules as package

    modules = [m.name for m in pkgutil.iter_modules(package.__path__) if re.fullmatch(r"gl\d{3}_\w+", m.name)]
    assert len(modules) == len(ALL_RULES)
    for rule in ALL_RULES:
        module = rule.__module__.rsplit(".", 1)[-1]
        assert module in modules and module.startswith(rule.code.lower() + "_")


def test_the_readme_rule_table_is_generated_from_the_rule_classes() -> None:
    from gradlint.docs import README_TABLE_END, README_TABLE_START, readme_table
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert f"{README_TABLE_START}\n{readme_table()}{README_TABLE_END}" in readme, \
        "paste `python -m gradlint.docs --readme-table` between the README's rule-table markers"


def test_the_fixtures_report_only_severities_their_rules_declare() -> None:
    from tests.conftest import FIXTURES, assert_declared_severities

    from gradlint.engine import lint_source
    from gradlint.source import read_source

    settings = Settings(select=("ALL",))
    found = [d for path in sorted(FIXTURES.rglob("*.py")) for d in lint_source(read_source(str(path)), settings)]
    assert {d.severity.value for d in found} == {"error", "warning", "info"}
    assert_declared_severities(found)


def test_the_per_file_prefilter_loses_no_finding(monkeypatch) -> None:
    # each rule's `wants(text)` (and the model rules' `file_may_model`) only skips files; with every
    # skip switched off, the fixtures and every rule's examples report exactly the same findings
    import gradlint.context as context
    from gradlint.engine import lint_source
    from gradlint.source import SourceFile
    from tests.conftest import FIXTURES

    header = "import torch\nimport torch.nn as nn\nscaler = torch.amp.GradScaler()\n"
    texts = {str(path): path.read_text(encoding="utf-8") for path in sorted(FIXTURES.rglob("*.py"))}
    for rule in ALL_RULES:
        texts[f"{rule.code}-bad.py"] = header + rule.bad_example
        texts[f"{rule.code}-good.py"] = header + rule.good_example
    settings = Settings(select=("ALL",))

    def findings() -> list[tuple]:
        return [(name, d.code, d.line, d.column, d.severity.value, d.message)
                for name, text in texts.items() for d in lint_source(SourceFile(name, text), settings)]

    with_prefilter = findings()
    for rule in ALL_RULES:
        monkeypatch.setattr(rule, "wants", classmethod(lambda cls, text: True))
    monkeypatch.setattr(context, "file_may_model", lambda text: True)
    assert len(with_prefilter) > 60
    assert findings() == with_prefilter


def test_a_rules_findings_do_not_depend_on_which_other_rules_are_selected() -> None:
    from gradlint.engine import lint_source
    from gradlint.source import read_source
    from tests.conftest import FIXTURES

    sources = [read_source(str(path)) for path in sorted(FIXTURES.rglob("*.py"))]

    def findings(select: tuple[str, ...], code: str) -> list[tuple]:
        settings = Settings(select=select)
        return [(d.path, d.line, d.column, d.severity.value, d.message)
                for source in sources for d in lint_source(source, settings) if d.code == code]

    everything = tuple(rule.code for rule in ALL_RULES)
    for rule in ALL_RULES:
        # the one designed exception: GL101 leaves to GL103 the steps GL103 reports (one finding a step)
        others = tuple(code for code in everything if not (rule.code == "GL101" and code == "GL103"))
        assert findings((rule.code,), rule.code) == findings(others, rule.code), rule.code
    alone = {f[:2] for code in ("GL101", "GL103") for f in findings((code,), code)}
    together = {f[:2] for code in ("GL101", "GL103") for f in findings(("GL101", "GL103"), code)}
    assert alone == together and len(together) == len(findings(("GL101", "GL103"), "GL101")) + len(
        findings(("GL101", "GL103"), "GL103"))


# --- each rule's verdicts live in its own class ---------------------------------------------------


@pytest.mark.parametrize("module", ["gradlint/verify/verdict.py", "gradlint/run/matching.py"])
def test_the_verdict_modules_decide_nothing_by_rule_code(module: str) -> None:
    # what a rule's figures mean is its class's `probe_verdict`/`run_verdict`; these modules hold
    # the shared families and the dispatch, so no rule code appears in their code (docstrings may
    # name the rules a family serves)
    import ast

    from tests.conftest import ROOT

    tree = ast.parse((ROOT / module).read_text())
    codes = [node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"GL\d{3}", node.value)]
    assert codes == [], f"{module} decides by rule code: {codes}"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_a_rules_verdicts_are_its_own_and_none_without_figures(rule) -> None:
    from gradlint.diagnostics import Diagnostic
    from gradlint.rules.base import Rule
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import NOT_VERIFIED, THRESHOLDS, Verdict

    for method in ("probe_verdict", "run_verdict"):  # its own class or the honest default, never another rule's
        assert method in vars(rule) or getattr(rule, method).__func__ is getattr(Rule, method).__func__
    probe = rule.probe_verdict({}, dict(THRESHOLDS))
    finding = Diagnostic("/p/train.py", 3, 1, 3, 10, rule.code, "message", subject="Net")
    ran = rule.run_verdict(finding, RunMeasurements.from_data({}), dict(THRESHOLDS))
    for verdict in (probe, ran):
        assert isinstance(verdict, Verdict) and verdict.code == rule.code
        assert verdict.verdict == NOT_VERIFIED and verdict.reason, verdict


def test_verify_and_run_ask_the_rules_class_and_unknown_codes_are_not_verified(monkeypatch) -> None:
    from gradlint.diagnostics import Diagnostic
    from gradlint.run.matching import verdicts
    from gradlint.verify.verdict import NOT_VERIFIED, Verdict, decide

    rule = RULES_BY_CODE["GL201"]
    monkeypatch.setattr(rule, "probe_verdict", classmethod(lambda cls, figures, t: Verdict(cls.code, "probed", "", figures)))
    monkeypatch.setattr(rule, "run_verdict", classmethod(lambda cls, d, run, t: Verdict(cls.code, "ran", str(run.steps))))
    assert decide("GL201", {"x": 1}).verdict == "probed" and decide("GL201", {"x": 1}).figures == {"x": 1}
    finding = Diagnostic("/p/train.py", 3, 1, 3, 10, "GL201", "message")
    [found] = verdicts([finding], {"steps": 7})
    assert (found.verdict.verdict, found.verdict.reason) == ("ran", "7")
    assert decide("GL999", {}).verdict == NOT_VERIFIED
    [unknown] = verdicts([Diagnostic("/p/train.py", 3, 1, 3, 10, "GL999", "message")], {})
    assert unknown.verdict.verdict == NOT_VERIFIED and unknown.code == "GL999"
