"""GradMonitor overhead per training step, recording every step and every 10 steps.

    python benchmarks/bench_monitor.py

Target (printed): under 2 % of a training step when recording every 10 steps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from gradlint.monitor import GradMonitor  # noqa: E402


def model_for(kind: str) -> tuple[torch.nn.Module, torch.Tensor]:
    if kind == "RL MLP (17-256-256-6, batch 256)":
        net = torch.nn.Sequential(torch.nn.Linear(17, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, 6))
        return net, torch.randn(256, 17)
    layers: list[torch.nn.Module] = []
    for _ in range(8):
        layers += [torch.nn.Linear(1024, 1024), torch.nn.LayerNorm(1024), torch.nn.GELU()]
    return torch.nn.Sequential(*layers), torch.randn(128, 1024)


def time_steps(model, x, monitor, steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        if monitor is not None:
            monitor.record(step)
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for kind, steps in (("RL MLP (17-256-256-6, batch 256)", 300), ("mid-size MLP (8 x 1024, batch 128)", 20)):
        model, x = model_for(kind)
        time_steps(model, x, None, 5)  # warm up
        configs = (("no monitor", None), ("every step", 1), ("every 10 steps", 10))
        samples: dict[str, list[float]] = {label: [] for label, _ in configs}
        for repeat in range(7):  # interleaved, rotating order: machine noise hits all alike
            for label, every in configs[repeat % 3:] + configs[: repeat % 3]:
                monitor = None if every is None else GradMonitor(model, every=every, on_event=lambda e: None)
                samples[label].append(time_steps(model, x, monitor, steps))
        results = {label: sorted(values)[len(values) // 2] for label, values in samples.items()}  # medians
        base = results["no monitor"]
        print(f"\n{kind}: {base * 1e3:.3f} ms per step without a monitor")
        for label in ("every step", "every 10 steps"):
            overhead = (results[label] - base) / base * 100
            target = "   target: < 2 %" if label == "every 10 steps" else ""
            print(f"  recording {label:<15} {results[label] * 1e3:8.3f} ms per step  overhead {overhead:+.1f} %{target}")


if __name__ == "__main__":
    main()
