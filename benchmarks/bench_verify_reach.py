"""Verifier reach: how many findings of real RL repositories `gradlint verify` can give a verdict.

    python benchmarks/bench_verify_reach.py REPOS_DIR [REPO ...] [--max-files N] [--timeout S] [--json OUT]

REPOS_DIR holds local checkouts named <owner>+<name> (as the truth benchmark's); with no REPO
given, every folder in it is measured. Each repository is linted with the default selection and
its configuration (as `gradlint verify` reads it), and every file with findings is verified with
verify's default options, in the sandbox, in one worker per repository; `--max-files N` keeps the
N files with the most model or data findings (GL2xx-GL4xx) when a repository has more.

Each finding counts once, with the verdict of its file, code and model (as `check --verify` marks
it). Printed per repository and in total: findings, confirmed / not confirmed / not verified, the
same over the model and data findings alone, and the not-verified reasons grouped (names and
numbers folded, so one cause is one group). GL101-GL103 are loop findings: `verify` answers them
"not verified: needs the real training loop (`gradlint run`)" by design, so the share over model
and data findings is the one the verifier's reach decides.

Target (issue 17): "not verified" on at most a third of the findings. It measures; it never fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the worker is a new process: it must import this checkout's gradlint, not an installed one
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from gradlint.config import load_settings  # noqa: E402
from gradlint.discovery import discover  # noqa: E402
from gradlint.engine import lint_paths  # noqa: E402
from gradlint.verify.session import Options, verify_results  # noqa: E402
from gradlint.verify.verdict import CONFIRMED, NOT_CONFIRMED, NOT_VERIFIED  # noqa: E402

TARGET = 1 / 3
LOOP_CODES = {"GL101", "GL102", "GL103"}  # need the real training loop: `gradlint run`


def _model_or_data(code: str) -> bool:
    return code not in LOOP_CODES


def _fold(reason: str) -> str:
    """One group per cause: quoted names, paths, numbers and shapes folded."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    reason = re.sub(r"/[\w./+-]+", "PATH", reason)
    reason = re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "N", reason)
    reason = re.sub(r"\bcannot build \w+", "cannot build CLASS", reason)
    reason = re.sub(r"--init-args '…'", "--init-args", reason)
    return reason[:150]


def measure_repo(path: Path, max_files: int | None, timeout: float | None) -> dict:
    settings = load_settings([str(path)])
    files = discover([str(path)], settings).files
    results = [r for r in lint_paths(files, settings, jobs=1) if r.diagnostics]

    def weight(result) -> tuple[int, int]:
        return (-sum(_model_or_data(d.code) for d in result.diagnostics), -len(result.diagnostics))

    results.sort(key=weight)
    if max_files is not None:
        results = results[:max_files]
    options = Options()
    if timeout is not None:
        options.timeout = timeout
    start = time.perf_counter()
    reports = verify_results(results, settings, options)
    seconds = time.perf_counter() - start
    verdicts = {}
    for report in reports:
        file = report.file.split(" -> ")[0]
        for verdict in report.verdicts:
            verdicts[(file, verdict.code, report.model.rsplit(".", 1)[-1])] = verdict
    rows = []
    for result in results:
        for diagnostic in result.diagnostics:
            subject = (diagnostic.subject or "(no model class)").rsplit(".", 1)[-1]
            verdict = verdicts.get((result.path, diagnostic.code, subject))
            rows.append({"file": os.path.relpath(result.path, path), "cell": diagnostic.cell, "line": diagnostic.line,
                         "code": diagnostic.code, "model": subject,
                         "verdict": verdict.verdict if verdict else "no verdict",
                         "reason": verdict.reason if verdict else ""})
    return {"repo": path.name, "files": len(results), "seconds": seconds, "findings": rows}


def _counts(rows: list[dict]) -> dict:
    verdicts = Counter(r["verdict"] for r in rows)
    return {"findings": len(rows), CONFIRMED: verdicts[CONFIRMED], NOT_CONFIRMED: verdicts[NOT_CONFIRMED],
            NOT_VERIFIED: verdicts[NOT_VERIFIED], "no verdict": verdicts["no verdict"]}


def _share(counts: dict) -> str:
    if not counts["findings"]:
        return "   -"
    return f"{counts[NOT_VERIFIED] / counts['findings']:4.0%}"


def print_table(measured: list[dict]) -> None:
    header = (f"{'repository':<50} {'files':>5} {'s':>5} | {'all':>4} {'conf':>4} {'not c':>5} {'n.v.':>4} {'share':>5} | "
              f"{'m+d':>4} {'conf':>4} {'not c':>5} {'n.v.':>4} {'share':>5}")
    print(header)
    print("-" * len(header))
    everything: list[dict] = []
    for repo in measured:
        rows = repo["findings"]
        everything += rows
        a, m = _counts(rows), _counts([r for r in rows if _model_or_data(r["code"])])
        print(f"{repo['repo'][:50]:<50} {repo['files']:5d} {repo['seconds']:5.0f} | {a['findings']:4d} {a[CONFIRMED]:4d} "
              f"{a[NOT_CONFIRMED]:5d} {a[NOT_VERIFIED]:4d} {_share(a):>5} | {m['findings']:4d} {m[CONFIRMED]:4d} "
              f"{m[NOT_CONFIRMED]:5d} {m[NOT_VERIFIED]:4d} {_share(m):>5}")
    a, m = _counts(everything), _counts([r for r in everything if _model_or_data(r["code"])])
    print("-" * len(header))
    print(f"{'total':<50} {sum(r['files'] for r in measured):5d} {sum(r['seconds'] for r in measured):5.0f} | "
          f"{a['findings']:4d} {a[CONFIRMED]:4d} {a[NOT_CONFIRMED]:5d} {a[NOT_VERIFIED]:4d} {_share(a):>5} | "
          f"{m['findings']:4d} {m[CONFIRMED]:4d} {m[NOT_CONFIRMED]:5d} {m[NOT_VERIFIED]:4d} {_share(m):>5}")
    if a["no verdict"]:
        print(f"({a['no verdict']} findings got no verdict: their report could not be matched)")
    for label, counts in (("all findings", a), ("model and data findings (GL2xx-GL4xx)", m)):
        if counts["findings"]:
            share = counts[NOT_VERIFIED] / counts["findings"]
            print(f"not verified, {label}: {counts[NOT_VERIFIED]}/{counts['findings']} = {share:.0%}   "
                  f"target: <= {TARGET:.0%}   {'MET' if share <= TARGET else 'NOT MET'}")
    reasons = Counter((r["code"] if r["code"] in LOOP_CODES else "model/data", _fold(r["reason"]))
                      for r in everything if r["verdict"] == NOT_VERIFIED)
    print("\nnot-verified reasons (count, kind, reason with names and numbers folded):")
    for (kind, reason), count in reasons.most_common():
        print(f"{count:5d}  {kind:<10}  {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos_dir")
    parser.add_argument("repos", nargs="*")
    parser.add_argument("--max-files", type=int, default=None, help="files per repository, most model/data findings first")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per model (verify's default otherwise)")
    parser.add_argument("--json", dest="json_out", help="also write every finding with its verdict here")
    args = parser.parse_args()
    base = Path(args.repos_dir)
    names = args.repos or sorted(p.name for p in base.iterdir() if p.is_dir())
    measured = []
    for name in names:
        path = base / name
        if not path.is_dir():
            print(f"{name}: no such folder in {base}", file=sys.stderr)
            continue
        measured.append(measure_repo(path, args.max_files, args.timeout))
        print(f"measured {name}: {len(measured[-1]['findings'])} findings in {measured[-1]['seconds']:.0f} s",
              file=sys.stderr, flush=True)
    print_table(measured)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(measured, indent=1) + "\n")


if __name__ == "__main__":
    main()
