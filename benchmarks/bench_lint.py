"""Lint speed and memory, printed next to the targets.

    python benchmarks/bench_lint.py [PATH ...] [--repeat N]

Default PATH: the bundled fixtures. Each figure is measured in a fresh subprocess (so imports and
peak memory are those of that job alone), best of --repeat runs:

- bare `ast.parse` and bare `libcst.parse_module` of the same files (the floor of any libcst
  linter), then gradlint with one worker and with all workers;
- the pre-commit case: `gradlint check` on one file, wall time of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

JOB = r"""
import json, resource, sys, time
files = json.loads(sys.argv[1]); kind = sys.argv[2]
texts = [open(f, encoding="utf-8", errors="replace").read() for f in files]
start = time.perf_counter()
if kind == "ast":
    import ast
    for t in texts:
        try: ast.parse(t)
        except SyntaxError: pass
elif kind == "libcst":
    import libcst
    for t in texts:
        try: libcst.parse_module(t)
        except Exception: pass
else:
    from gradlint.config import Settings
    from gradlint.engine import lint_paths
    results = lint_paths(files, Settings(), jobs=int(kind))
    print("findings", sum(len(r.diagnostics) for r in results), file=sys.stderr)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def python_files(paths: list[str]) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from gradlint.config import Settings
    from gradlint.discovery import discover

    return discover(paths, Settings()).files


def measure(files: list[str], kind: str, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", JOB, json.dumps(files), kind],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or data["seconds"] < best["seconds"]:
            best = data
    return best  # type: ignore[return-value]


def command_wall(args: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gradlint", *args], capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=[str(ROOT / "fixtures")])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    files = python_files(args.paths)
    lines = sum(Path(f).read_text(encoding="utf-8", errors="replace").count("\n") for f in files)
    print(f"files: {len(files)}   lines: {lines}   cores: {os.cpu_count()}")
    ast_ = measure(files, "ast", args.repeat)
    cst = measure(files, "libcst", args.repeat)
    one = measure(files, "1", args.repeat)
    workers = measure(files, str(os.cpu_count() or 1), args.repeat)

    def row(name: str, data: dict, target: str = "") -> None:
        rate = len(files) / data["seconds"] if data["seconds"] else float("inf")
        ratio = data["seconds"] / cst["seconds"] if cst["seconds"] else float("nan")
        print(f"{name:<28} {data['seconds']:8.3f} s  {rate:8.1f} files/s  {lines / data['seconds']:10.0f} lines/s"
              f"  {ratio:5.2f}x libcst parse  peak {data['maxrss_mib']:6.1f} MiB  {target}")

    row("ast.parse (reference)", ast_)
    row("libcst.parse_module (floor)", cst)
    row("gradlint, 1 worker", one, "target: <= 1.00x libcst parse")
    row(f"gradlint, {os.cpu_count()} workers", workers,
        f"target: >= 1.8x faster than 1 worker (measured {one['seconds'] / workers['seconds']:.2f}x)")

    single = str(Path(files[0]).resolve()) if files else str(ROOT / "fixtures")
    wall = command_wall(["check", "--exit-zero", single], args.repeat)
    print(f"{'single-file check (wall)':<28} {wall:8.3f} s   target: <= 0.5 s   ({Path(single).name})")


if __name__ == "__main__":
    main()
