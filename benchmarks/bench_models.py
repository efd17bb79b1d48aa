"""Time of the model description (GL2xx/GL3xx) per file, next to a bare `ast.parse` of the same
files: the symbol layer, the memoised walk of every statement's calls (shared by the analyses),
the description itself (`ctx.models`), and the model rules' checks.

    python benchmarks/bench_models.py PATH... [--repeat 3]

Only files the model rules want (their documented skip criterion) are timed; each phase is the
fastest of `--repeat` passes. Prints totals, their ratio to the bare parse, the slowest files by
ratio, and the largest analysis budget a file spent next to its limit.
"""

from __future__ import annotations

import argparse
import ast
import gc
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL_RULES = ("GL201", "GL202", "GL203", "GL204", "GL301", "GL302")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from gradlint.analysis import project
    from gradlint.config import Settings
    from gradlint.context import FileContext
    from gradlint.discovery import discover
    from gradlint.engine import rules_for
    from gradlint.prepass import index_file
    from gradlint.source import SourceError, read_source

    settings = Settings(select=MODEL_RULES)
    sources = []
    for path in discover(args.paths, settings).files:
        if path.endswith(".ipynb"):
            continue
        try:
            source = read_source(path)
        except SourceError:
            continue
        rules = [r for r in rules_for(settings, path) if r.wants(source.text)]
        if rules:
            sources.append((source, rules))
    best: dict[str, Counter] = {}
    spent: dict[str, tuple[int, int]] = {}
    errors: Counter = Counter()
    for _ in range(args.repeat):
        project._CACHE.clear()
        for source, rules in sources:
            phases: Counter = Counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                try:
                    ast.parse(source.text)
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    continue
                phases["bare ast.parse"] = time.perf_counter() - t
            try:
                index = index_file(source)
            except SourceError:
                continue
            gc.disable()
            ctx = FileContext(source, index, settings)
            try:
                if hasattr(FileContext, "symbols"):
                    t = time.perf_counter(); ctx.symbols; phases["symbol layer"] = time.perf_counter() - t
                if hasattr(ctx.symbols, "calls"):
                    # the memoised calls of every statement: the walk the analyses share (GL1xx and
                    # GL4xx walk the same statements in a default run)
                    t = time.perf_counter(); ctx.symbols.calls(ctx.tree); phases["calls walk (shared)"] = time.perf_counter() - t
                t = time.perf_counter(); ctx.models; phases["model description"] = time.perf_counter() - t
                if "backward" in source.text and ".step(" in source.text and any(r.code == "GL302" for r in rules):
                    # GL302 asks the training analysis which models are stepped without clipping
                    t = time.perf_counter(); ctx.training; phases["training (for GL302)"] = time.perf_counter() - t
                t = time.perf_counter()
                for rule in rules:
                    list(rule.check(ctx))
                phases["model rules"] = time.perf_counter() - t
                budget = getattr(ctx, "budget", None)
                if budget is not None:
                    spent[source.path] = (budget.spent, budget.limit)
            except Exception as exc:  # noqa: BLE001 - counted and shown, never fatal here
                errors[type(exc).__name__] += 1
                continue
            finally:
                ctx.release()
                gc.enable()
            old = best.get(source.path)
            if old is None or sum(phases.values()) < sum(old.values()):
                best[source.path] = phases
    total: Counter = Counter()
    for phases in best.values():
        total.update(phases)
    parse = total["bare ast.parse"] or 1e-9
    print(f"{len(best)} files the model rules want, {sum(len(s.text) for s, _ in sources) / 1e6:.1f} M characters")
    for name, seconds in total.items():
        print(f"  {name:<20} {seconds:8.3f} s  {seconds / parse:6.2f}x bare ast.parse")
    analysis = ("symbol layer", "calls walk (shared)", "model description", "model rules")  # not the training analysis
    ratios = sorted(((sum(p[n] for n in analysis) / max(p["bare ast.parse"], 1e-6), path) for path, p in best.items()),
                    reverse=True)
    print("slowest files (symbols, calls, description, model rules, as a multiple of their bare ast.parse):")
    for ratio, path in ratios[:5]:
        print(f"  {ratio:6.2f}x  {os.path.relpath(path)}")
    if spent:
        path, (used, limit) = max(spent.items(), key=lambda item: item[1][0])
        print(f"largest analysis budget spent: {used} of {limit} ({os.path.relpath(path)})")
        worst = max(spent.items(), key=lambda item: item[1][0] / item[1][1])
        print(f"largest share of a budget: {worst[1][0] / worst[1][1]:.1%} ({os.path.relpath(worst[0])})")
    if errors:
        print("errors:", dict(errors))


if __name__ == "__main__":
    main()
