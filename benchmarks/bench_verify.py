"""Verifier speed: what the sandbox adds to a worker's start, the whole of `gradlint verify
fixtures/models/` as a user runs it (worker start, torch import, every model), and seconds per
file in one worker.

    python benchmarks/bench_verify.py [--starts N] [PATH ...]

The README promises no figure: it points here. Targets (printed): the sandbox adds <= 0.2 s per
worker start; each small RL-sized model verified in well under a second after start-up (the deep
22-layer and recurrent T = 200 probes cost more).

The sandbox's cost is measured twice: on its own (bwrap's namespaces around a bare Python, the
cgroup, the Landlock ruleset: a few milliseconds each, so the median is stable even on a busy
machine), and as whole worker starts with and without it (torch's import dominates those, and
on a busy machine their difference is mostly noise: both medians are printed).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradlint.config import Settings  # noqa: E402
from gradlint.discovery import discover  # noqa: E402
from gradlint.engine import lint_paths  # noqa: E402
from gradlint.verify import landlock, sandbox  # noqa: E402
from gradlint.verify.runner import Worker  # noqa: E402
from gradlint.verify.session import Options, _verify_file  # noqa: E402

TARGET_START = 0.2


def _median_seconds(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sandbox_cost(runs: int) -> None:
    """The sandbox's own share of a worker start, and whole starts with and without it."""
    start = time.perf_counter()
    sandbox.capabilities.cache_clear()
    caps = sandbox.capabilities()
    probe = time.perf_counter() - start
    if not caps.usable:
        print(f"no sandbox on this machine: {caps.why}")
        return
    layout = sandbox.Layout.for_project([str(ROOT / "fixtures")])
    bare = [*sandbox.python_command(), "-S", "-c", "pass"]
    env = sandbox.worker_environment(sandbox.SCRATCH)
    plain = _median_seconds(lambda: subprocess.run(bare, env=env, check=True), runs * 3)
    boxed = _median_seconds(lambda: subprocess.run(sandbox.sandbox_command(caps, layout, bare), env=env, check=True),
                            runs * 3)

    def cgroup() -> None:
        made = sandbox.TreeLimits.create(1 << 30, sandbox.TASKS)
        if isinstance(made, sandbox.TreeLimits):
            made.remove()

    limits = _median_seconds(cgroup, runs * 3) if caps.cgroup else 0.0

    def ruleset() -> None:
        policy = layout.landlock_policy()
        fd, _ = landlock.ruleset(landlock.Policy(policy["read"], policy["write"], policy["devices"]))
        import os

        os.close(fd)

    rules = _median_seconds(ruleset, runs * 3) if caps.landlock_abi else 0.0
    added = boxed - plain + limits + rules
    print(f"sandbox: bubblewrap {caps.bwrap_version}, Landlock ABI {caps.landlock_abi}, cgroup {caps.cgroup or 'none'}")
    print(f"  namespaces around a bare Python: {boxed:.3f} s vs {plain:.3f} s without (median of {runs * 3})")
    print(f"  cgroup made and removed: {limits * 1000:.1f} ms; Landlock ruleset: {rules * 1000:.1f} ms; "
          f"machine probe (once per run): {probe * 1000:.0f} ms")
    first = added + probe
    print(f"sandbox adds per worker start: {added:.3f} s, to the first of a run {first:.3f} s (it probes the machine "
          f"once)   target: <= {TARGET_START} s   {'OK' if first <= TARGET_START else 'OVER'}")

    def start(boxed_: bool) -> None:
        worker = Worker(sandbox=boxed_, project=[str(ROOT / "fixtures")])
        try:
            worker.start()
        finally:
            worker.close()

    whole = {True: [], False: []}
    for _ in range(runs):  # alternated, so a change in the machine's load hits both alike
        for boxed_ in (True, False):
            t = time.perf_counter()
            start(boxed_)
            whole[boxed_].append(time.perf_counter() - t)
    print(f"  whole worker starts (torch imported), median of {runs}: {statistics.median(whole[True]):.2f} s sandboxed, "
          f"{statistics.median(whole[False]):.2f} s with --no-sandbox\n")


def whole_command(path: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gradlint", "verify", path], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()[-200:]
    print(f"`gradlint verify {os.path.relpath(path, ROOT)}`: {seconds:.1f} s wall ({os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}); {summary}")


def main() -> None:
    arguments = sys.argv[1:]
    runs = 3
    if arguments[:1] == ["--starts"]:
        runs, arguments = int(arguments[1]), arguments[2:]
    sandbox_cost(runs)
    whole_command(str(ROOT / "fixtures" / "models"))
    paths = arguments or [str(ROOT / "fixtures" / "models"), str(ROOT / "fixtures" / "data")]
    settings = Settings()
    files = discover(paths, settings).files
    results = [r for r in lint_paths(files, settings, jobs=1) if r.diagnostics]
    worker = Worker(project=[str(ROOT / "fixtures")])
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
    print(f"{'file':<40} {'seconds':>8} {'models':>7}")
    for name, seconds, built in timings:
        print(f"{name:<40} {seconds:8.2f} {built:7d}")
    first = timings[0][1]
    rest = [(s, n) for _, s, n in timings[1:] if n]
    per_model = sum(s for s, _ in rest) / max(1, sum(n for _, n in rest))
    print(f"\nfirst file (worker start + torch import + probes): {first:.2f} s")
    print(f"per extra model: {per_model:.2f} s   target: well under 1 s for small RL-sized models "
          "(deep 22-layer and recurrent T=200 probes cost more)")


if __name__ == "__main__":
    main()
