"""Verifier speed: the whole of `gradlint verify fixtures/models/` as a user runs it (worker start,
torch import, every model), and seconds per file in one worker.

    python benchmarks/bench_verify.py [PATH ...]

The README promises no figure: it points here. Target (printed): each small RL-sized model
verified in well under a second after start-up; the deep 22-layer and recurrent T = 200 probes
cost more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradlint.config import Settings  # noqa: E402
from gradlint.discovery import discover  # noqa: E402
from gradlint.engine import lint_paths  # noqa: E402
from gradlint.verify.runner import Worker  # noqa: E402
from gradlint.verify.session import Options, _verify_file  # noqa: E402


def whole_command(path: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gradlint", "verify", path], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()[-200:]
    print(f"`gradlint verify {os.path.relpath(path, ROOT)}`: {seconds:.1f} s wall ({os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}); {summary}")


def per_file(paths: list[str]) -> None:
    settings = Settings()
    files = discover(paths, settings).files
    results = [r for r in lint_paths(files, settings, jobs=1) if r.diagnostics]
    worker = Worker()
    timings: list[tuple[str, float, int]] = []
    try:
        for result in results:
            start = time.perf_counter()
            reports = _verify_file(result.path, result.diagnostics, settings, Options(), worker, None)
            built = sum(1 for r in reports if r.status == "ok")
            timings.append((Path(result.path).name, time.perf_counter() - start, built))
    finally:
        worker.close()
    if not timings:
        print("nothing to verify")
        return
    print(f"\n{'file':<40} {'seconds':>8} {'models':>7}")
    for name, seconds, built in timings:
        print(f"{name:<40} {seconds:8.2f} {built:7d}")
    first = timings[0][1]
    rest = [(s, n) for _, s, n in timings[1:] if n]
    per_model = sum(s for s, _ in rest) / max(1, sum(n for _, n in rest))
    print(f"\nfirst file (worker start + torch import + probes): {first:.2f} s")
    print(f"per extra model: {per_model:.2f} s   target: well under 1 s for small RL-sized models "
          "(deep 22-layer and recurrent T=200 probes cost more)")


def main() -> None:
    paths = sys.argv[1:] or [str(ROOT / "fixtures" / "models"), str(ROOT / "fixtures" / "data")]
    whole_command(str(ROOT / "fixtures" / "models"))
    per_file(paths)


if __name__ == "__main__":
    main()
