"""`gradlint run`: run the user's own training script for N optimizer steps, instrumented with
torch's hooks, and give each static finding of the script (and of the project modules it
imports) a verdict measured on that real run.

The parent (this package, no torch) starts `gradlint.run.child`, which runs the script under
`gradlint.run.recorder`'s hooks and writes its measurements; `gradlint.run.matching` matches
them to the findings and applies the verdict rules of `gradlint.verify.verdict`;
`gradlint.run.report` renders the report.
"""

from __future__ import annotations

import os

from gradlint.config import Settings
from gradlint.run.launch import run_script
from gradlint.run.matching import merge_ranks, verdicts
from gradlint.run.report import build

__all__ = ["run_and_verify", "run_script", "exit_status"]


def run_and_verify(script: str, args: list[str], settings: Settings, steps: int = 200,
                   time_limit: float | None = None, progress: bool = False,
                   thresholds: dict | None = None) -> dict:
    """Run the script, lint it and the project modules it imported, and return the report."""
    from gradlint.engine import lint_paths

    data = merge_ranks(run_script(script, args, steps, time_limit, progress))
    files = [os.path.abspath(script)] + [m for m in data.get("modules", []) if os.path.realpath(m) !=
                                         os.path.realpath(script)]
    results = lint_paths(files, settings, jobs=1)
    diagnostics = [d for r in results for d in r.diagnostics]
    report = build(data, verdicts(diagnostics, data, thresholds), thresholds)
    report["lint_errors"] = [str(r.error) for r in results if r.error]
    return report


def exit_status(report: dict) -> int:
    """The script's own status when it failed; else 1 if a finding is confirmed, 0 if not."""
    code = report.get("exit_code")
    if report.get("status") in ("exception", "exited", "killed", "interrupted") and code:
        return code if isinstance(code, int) and 0 < code < 256 else 1
    return 1 if report.get("counts", {}).get("confirmed") else 0
