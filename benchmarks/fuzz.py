"""Crash hunting at scale: generated programs and mutated fixtures through every rule and every
fix, or every file of a directory with --stress.

    python benchmarks/fuzz.py [--count 10000] [--seed 0]
    python benchmarks/fuzz.py --stress /path/to/site-packages

Prints the number of crashes (target 0) and of fixes whose result does not parse (target 0).
A crash is any exception other than a clear, one-line "cannot lint this file" error.
"""

from __future__ import annotations

import argparse
import warnings
import ast
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradlint.config import Settings  # noqa: E402
from gradlint.engine import FileResult, FixMode, fix_file, lint_source, rules_for  # noqa: E402
from gradlint.source import SourceError, SourceFile, decode_source  # noqa: E402

SETTINGS = Settings(select=("ALL",))


INTERNAL_ERRORS = ("internal error", "analysis budget exceeded")


def check(name: str, text: str, crashes: list, bad_fixes: list) -> None:
    try:
        lint_source(SourceFile(name, text), SETTINGS)
        source = decode_source(name, text.encode("utf-8", errors="surrogatepass"))
        fixed = fix_file(source, SETTINGS, rules_for(SETTINGS, name), FixMode(diff=True, unsafe=True), FileResult(name))
        if fixed != text:
            try:
                ast.parse(fixed)
            except SyntaxError:
                bad_fixes.append(name)
    except SourceError as exc:
        if exc.message.startswith(INTERNAL_ERRORS):  # the engine turns a rule's crash into a SourceError
            crashes.append((name, exc.message))
    except Exception:  # noqa: BLE001 - counting crashes is the point
        crashes.append((name, traceback.format_exc(limit=3)))


def mutated(rng: random.Random, fixtures: list[Path]) -> tuple[str, str]:
    sys.path.insert(0, str(ROOT))
    from tests.test_robustness import _Mutator

    path = rng.choice(fixtures)
    tree = _Mutator(rng).visit(ast.parse(path.read_text()))
    return f"{path.name}#mutant", ast.unparse(ast.fix_missing_locations(tree))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stress", metavar="DIR")
    args = parser.parse_args()
    warnings.simplefilter("ignore", SyntaxWarning)
    crashes: list = []
    bad_fixes: list = []
    start = time.perf_counter()
    if args.stress:
        files = sorted(Path(args.stress).rglob("*.py"))
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            check(str(path), text, crashes, bad_fixes)
        total = len(files)
    else:
        rng = random.Random(args.seed)
        fixtures = sorted((ROOT / "fixtures").rglob("*.py"))
        generated = []
        try:
            import hypothesmith
            from hypothesis import HealthCheck, given, settings

            @settings(max_examples=args.count // 2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(hypothesmith.from_grammar())
            def collect(source: str) -> None:
                generated.append(source)

            collect()
        except ImportError:
            print("hypothesmith not installed: mutated fixtures only")
        for index, text in enumerate(generated):
            check(f"generated-{index}.py", text, crashes, bad_fixes)
        for _ in range(args.count - len(generated)):
            name, text = mutated(rng, fixtures)
            check(name, text, crashes, bad_fixes)
        total = args.count
    seconds = time.perf_counter() - start
    print(f"programs: {total}   crashes: {len(crashes)} (target 0)   fixes that do not parse: {len(bad_fixes)} (target 0)"
          f"   {seconds:.1f} s")
    for name, trace in crashes[:5]:
        print(f"\n--- {name}\n{trace}")


if __name__ == "__main__":
    main()
