"""The scorer's matching and counting (run: python -m pytest benchmarks/truth/test_score.py)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import score  # noqa: E402

KEY_DIR = Path(__file__).resolve().parent / "key"


def row(path: str, line: int, code: str = "GL101", label: str = "TRUE", cell: int | None = None):
    item = {"path": path, "line": line, "code": code, "label": label}
    if cell is not None:
        item["cell"] = cell
    return item


def found(path: str, line: int, code: str = "GL101", cell: int | None = None):
    return {"path": path, "cell": cell, "line": line, "code": code}


def test_exact_line_matches_before_a_shifted_one():
    pairs, unlabelled, gone = score.match([found("a.py", 10), found("a.py", 12)],
                                          [row("a.py", 10, label="FALSE"), row("a.py", 11)])
    assert sorted((r["line"], k["line"]) for r, k in pairs) == [(10, 10), (12, 11)]
    assert unlabelled == [] and gone == []


def test_a_shift_matches_only_when_unique():
    key = [row("a.py", 20), row("a.py", 22)]
    pairs, unlabelled, gone = score.match([found("a.py", 21)], key)
    assert pairs == [] and unlabelled == [found("a.py", 21)] and gone == key


def test_code_cell_and_path_must_agree():
    key = [row("nb.ipynb", 5, cell=3), row("b.py", 5, code="GL401")]
    reported = [found("nb.ipynb", 5, cell=4), found("b.py", 5, code="GL301")]
    pairs, unlabelled, gone = score.match(reported, key)
    assert pairs == [] and len(unlabelled) == 2 and len(gone) == 2


def test_shift_beyond_three_lines_is_new():
    pairs, unlabelled, gone = score.match([found("a.py", 14)], [row("a.py", 10)])
    assert pairs == [] and len(unlabelled) == 1 and len(gone) == 1


def test_counts_precision_debatable_share_and_recall():
    key = {"repo": "o/r", "half": "test",
           "findings": [row("a.py", 1), row("a.py", 5, label="FALSE"),
                        row("a.py", 9, label="DEBATABLE"), row("a.py", 30, label="TRUE")],
           "misses": [{"path": "a.py", "line": 50, "code": "GL401", "reason": ""},
                      {"path": "a.py", "line": 70, "code": "GL101", "reason": ""}]}
    reported = [found("a.py", 1), found("a.py", 5), found("a.py", 9), found("a.py", 40),
                found("a.py", 52, code="GL401")]
    rows = defaultdict(score.new_row)
    score.score_repo(key, reported, rows)
    table = score.summarise(rows)
    assert table["GL101"]["TRUE"] == 1 and table["GL101"]["FALSE"] == 1
    assert table["GL101"]["UNLABELLED"] == 1 and table["GL101"]["gone"]["TRUE"] == 1
    assert table["GL101"]["precision"] == 0.5 and table["GL101"]["debatable_share"] == 0.333
    assert table["GL401"]["recall"] == 1.0 and table["GL101"]["recall"] == 0.0
    assert table["total"]["misses"] == 2 and table["total"]["caught"] == 1


def test_every_key_file_is_well_formed():
    files = sorted(KEY_DIR.glob("*.json"))
    assert files
    for path in files:
        key = json.loads(path.read_text())
        assert key["repo"].replace("/", "+", 1) == path.stem
        assert len(key["commit"]) == 40 and len(key["labelled_with"]) == 40
        assert key["half"] in ("test", "tune", "fresh") and key["kind"] in ("rl", "marl", "supervised")
        assert key["form"] in ("scripts", "library", "notebooks", "mixed")
        for item in key["findings"]:
            assert item["label"] in score.LABELS and item["reason"] and item["code"].startswith("GL")
            assert isinstance(item["line"], int) and item["path"]
        for item in key["misses"]:
            assert item["reason"] and item["code"].startswith("GL") and isinstance(item["line"], int)
