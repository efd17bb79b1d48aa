"""Score gradlint against the truth benchmark's answer keys (issue 16).

    python benchmarks/truth/score.py REPOS_DIR [--half test|tune|fresh|all] [--gradlint CMD]
                                     [--json] [--show]

REPOS_DIR holds one checkout per key file in key/, named `<owner>+<name>`, at the key's commit.
Each checkout is linted with the default selection and no config; each reported finding is
matched to the key by (path, cell, code, line), a line shift of up to 3 tolerated when the match
is unique. Printed per half and per rule: TRUE, FALSE, DEBATABLE, UNLABELLED (reported, not in
the key), precision = TRUE / (TRUE + FALSE), the DEBATABLE share of labelled findings, labelled
findings no longer reported ("gone", per label), and the recall of the labelled misses (a miss
is caught when a finding of its code is reported within 3 lines of it). Exit 0 always.
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

KEY_DIR = Path(__file__).resolve().parent / "key"
ROOT = Path(__file__).resolve().parent.parent.parent
LABELS = ("TRUE", "FALSE", "DEBATABLE")
SHIFT = 3


def run_gradlint(cmd: list[str], checkout: Path, exclude: list[str]) -> tuple[list[dict], int]:
    """The findings gradlint reports on a checkout (paths relative to it), and how many files
    it could not check."""
    args = [*cmd, "check", "--isolated", "--no-cache", "--exit-zero", "--format", "json"]
    for prefix in exclude:
        args += ["--extend-exclude", prefix]
    env = dict(os.environ)
    if cmd[1:3] == ["-m", "gradlint"]:  # score this checkout's gradlint, not whichever is installed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([*args, "."], cwd=checkout, capture_output=True, text=True, env=env)
    try:
        reported = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        sys.stderr.write(f"score: {checkout}: gradlint gave no JSON: {proc.stderr.strip()[:300]}\n")
        return [], 0
    found = []
    for f in reported:
        path = f["filename"].removeprefix("./")
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in exclude):
            continue
        found.append({"path": path, "cell": f.get("cell"), "line": f["location"]["row"],
                      "code": f["code"], "severity": f.get("severity", "warning")})
    errors = sum(1 for line in proc.stderr.splitlines() if line.startswith("gradlint: error:"))
    return found, errors


def where(item: dict) -> tuple:
    return item["path"], item.get("cell"), item["code"]


def match(reported: list[dict], key: list[dict]) -> tuple[list[tuple[dict, dict]], list, list]:
    """Pair reported findings with key rows: exact lines first, then a unique match within
    SHIFT lines. Returns (pairs, unmatched reported, unmatched key rows)."""
    pairs, rest_r, rest_k = [], [], list(key)
    for r in reported:
        k = next((k for k in rest_k if where(k) == where(r) and k["line"] == r["line"]), None)
        if k is None:
            rest_r.append(r)
        else:
            rest_k.remove(k)
            pairs.append((r, k))

    def near(a: dict, pool: list[dict]) -> list[dict]:
        return [b for b in pool if where(b) == where(a) and abs(b["line"] - a["line"]) <= SHIFT]

    unmatched_r = []
    for r in rest_r:
        cands = near(r, rest_k)
        if len(cands) == 1 and len(near(cands[0], rest_r)) == 1:
            rest_k.remove(cands[0])
            pairs.append((r, cands[0]))
        else:
            unmatched_r.append(r)
    return pairs, unmatched_r, rest_k


def caught(miss: dict, reported: list[dict]) -> bool:
    return any(where(r) == where(miss) and abs(r["line"] - miss["line"]) <= SHIFT
               for r in reported)


def new_row() -> dict:
    return {"TRUE": 0, "FALSE": 0, "DEBATABLE": 0, "UNLABELLED": 0, "INFO": 0, "DEBATABLE_WARN": 0, "WARN": 0,
            "gone": {label: 0 for label in LABELS}, "misses": 0, "caught": 0}


def score_repo(key: dict, reported: list[dict], rows: dict) -> dict:
    """Add one repository's counts to rows[code]; return its details."""
    pairs, unlabelled, gone = match(reported, key["findings"])
    for r, k in pairs:
        rows[k["code"]][k["label"]] += 1
        if r.get("severity") == "info":
            rows[k["code"]]["INFO"] += 1
        else:
            rows[k["code"]]["WARN"] += 1
            rows[k["code"]]["DEBATABLE_WARN"] += k["label"] == "DEBATABLE"
    for r in unlabelled:
        rows[r["code"]]["UNLABELLED"] += 1
    for k in gone:
        rows[k["code"]]["gone"][k["label"]] += 1
    missed = []
    for m in key.get("misses", []):
        rows[m["code"]]["misses"] += 1
        if caught(m, reported):
            rows[m["code"]]["caught"] += 1
        else:
            missed.append(m)
    return {"repo": key["repo"], "half": key["half"], "reported": len(reported),
            "unlabelled": unlabelled, "gone": gone, "misses_not_caught": missed}


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def summarise(rows: dict) -> dict:
    total = new_row()
    for row in rows.values():
        for name, value in row.items():
            if name == "gone":
                for label in LABELS:
                    total["gone"][label] += value[label]
            else:
                total[name] += value
    out = {}
    for code, row in [*sorted(rows.items()), ("total", total)]:
        labelled = row["TRUE"] + row["FALSE"] + row["DEBATABLE"]
        out[code] = {**row, "precision": ratio(row["TRUE"], row["TRUE"] + row["FALSE"]),
                     "debatable_share": ratio(row["DEBATABLE"], labelled),
                     "debatable_share_above_info": ratio(row["DEBATABLE_WARN"], row["WARN"]),
                     "recall": ratio(row["caught"], row["misses"])}
    return out


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(half: str, table: dict, repos: list[dict]) -> None:
    errors = sum(r["errors"] for r in repos)
    name = "all halves" if half == "all" else f"{half} half"
    print(f"\n== {name}: {len(repos)} repositories, "
          f"{sum(r['reported'] for r in repos)} findings reported, {errors} files not checked")
    print(f"{'rule':<7} {'TRUE':>5} {'FALSE':>5} {'DEB':>5} {'UNLAB':>5} {'prec':>5} "
          f"{'deb%':>5} {'info':>5} {'deb%w':>5}  {'gone T/F/D':>10}  {'misses':>6} {'caught':>6} {'recall':>6}")
    for code, row in table.items():
        gone = "/".join(str(row["gone"][label]) for label in LABELS)
        print(f"{code:<7} {row['TRUE']:>5} {row['FALSE']:>5} {row['DEBATABLE']:>5} "
              f"{row['UNLABELLED']:>5} {fmt(row['precision']):>5} "
              f"{fmt(row['debatable_share']):>5} {row['INFO']:>5} {fmt(row['debatable_share_above_info']):>5}  "
              f"{gone:>10}  {row['misses']:>6} "
              f"{row['caught']:>6} {fmt(row['recall']):>6}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repos_dir", type=Path)
    parser.add_argument("--half", choices=("test", "tune", "fresh", "all"), default="all")
    parser.add_argument("--gradlint", default=None,
                        help="command that runs gradlint (default: this Python's -m gradlint)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--show", action="store_true",
                        help="also list unlabelled findings, gone rows and uncaught misses of the tune half")
    parser.add_argument("--show-test-half", action="store_true",
                        help="--show for the test and fresh halves too: only to label new findings, never to tune a rule")
    args = parser.parse_args(argv)
    cmd = shlex.split(args.gradlint) if args.gradlint else [sys.executable, "-m", "gradlint"]

    halves = ("test", "tune", "fresh") if args.half == "all" else (args.half,)
    rows = {h: defaultdict(new_row) for h in (*halves, "all")}
    repos: dict[str, list[dict]] = {h: [] for h in (*halves, "all")}
    for key_file in sorted(KEY_DIR.glob("*.json")):
        key = json.loads(key_file.read_text())
        if key["half"] not in halves:
            continue
        checkout = args.repos_dir / key_file.stem
        if not checkout.is_dir():
            sys.stderr.write(f"score: {checkout}: no checkout, {key['repo']} skipped\n")
            continue
        reported, errors = run_gradlint(cmd, checkout, key.get("exclude", []))
        details = {**score_repo(key, reported, rows[key["half"]]), "errors": errors}
        score_repo(key, reported, rows["all"])
        repos[key["half"]].append(details)
        repos["all"].append(details)

    shown = (*halves, "all") if len(halves) > 1 else halves
    result = {h: {"rules": summarise(rows[h]), "repos": repos[h]} for h in shown}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return 0
    for h in shown:
        if repos[h]:
            print_table(h, result[h]["rules"], repos[h])
    if args.show or args.show_test_half:
        for d in repos[shown[-1]]:
            if d["half"] in ("test", "fresh") and not args.show_test_half:
                continue
            for kind in ("unlabelled", "gone", "misses_not_caught"):
                for item in d[kind]:
                    cell = f" cell {item['cell']}" if item.get("cell") else ""
                    label = f" {item['label']}" if "label" in item else ""
                    print(f"{kind}: {d['repo']} {item['path']}{cell}:{item['line']} "
                          f"{item['code']}{label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
