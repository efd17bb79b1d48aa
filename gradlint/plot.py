"""Plots (matplotlib, the optional `plot` extra): gradient-norm logs of GradMonitor, the
per-layer gradient norms `gradlint verify` measures, and `gradlint run`'s report."""

from __future__ import annotations

import math
import os
from typing import Any

from gradlint.monitor import norm_of  # no torch import: the monitor imports torch when one is created

PLOT_HINT = "plots need matplotlib: pip install 'gradlint[plot]'"
NORM_FIELDS = ("name", "step", "grad_norm", "pre_clip_norm", "post_clip_norm", "layers", "event")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised without matplotlib
        raise RuntimeError(PLOT_HINT) from exc
    return plt


def _finite_or_nan(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")


def _mark_events(ax, events: list[tuple[int, float]], norms: list[float], label: str) -> None:
    """Red crosses at detected blow-ups; a non-finite one sits at the top of the finite curve."""
    if events:
        top = max((n for n in norms if math.isfinite(n)), default=1.0)
        ax.scatter([s for s, _ in events], [n if math.isfinite(n) else top for _, n in events],
                   color="red", marker="x", s=60, zorder=3, label=label)


def _log10(value: Any) -> float:
    return math.log10(value) if isinstance(value, (int, float)) and value > 0 and math.isfinite(value) else float("nan")


def plot_log(records: list[dict], out: str) -> list[str]:
    """Global norm (log axis, detected events marked), a per-layer heatmap per monitor, and one
    panel per extra scalar. Returns the panel titles."""
    plt = _pyplot()
    names = list(dict.fromkeys(r["name"] for r in records))
    scalar_keys = sorted({k for r in records for k, v in r.items()
                          if k not in NORM_FIELDS and isinstance(v, (int, float))})
    heatmaps = [n for n in names if any(r.get("layers") for r in records if r["name"] == n)]
    panels = 1 + len(heatmaps) + len(scalar_keys)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 2.8 * panels + 0.5), squeeze=False)
    axes = [a[0] for a in axes]
    titles: list[str] = []
    ax = axes[0]
    for name in names:
        mine = [r for r in records if r["name"] == name]
        steps = [r["step"] for r in mine]
        norms = [_finite_or_nan(norm_of(r)) for r in mine]
        clipped = any("pre_clip_norm" in r for r in mine)
        ax.plot(steps, norms, label=f"{name}: {'pre-clip ' if clipped else ''}gradient norm", linewidth=1.2)
        if clipped:
            ax.plot(steps, [_finite_or_nan(r.get("post_clip_norm")) for r in mine], linestyle=":",
                    label=f"{name}: post-clip gradient norm")
        _mark_events(ax, [(r["step"], norm_of(r)) for r in mine if r.get("event")], norms, f"{name}: detected blow-up")
    ax.set_yscale("log")
    ax.set_xlabel("update step")
    ax.set_ylabel("L2 norm (log scale)")
    titles.append("Global gradient norm per update")
    ax.set_title(titles[-1])
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    for ax, name in zip(axes[1:], heatmaps):
        mine = [r for r in records if r["name"] == name and r.get("layers")]
        layers = list(dict.fromkeys(layer for r in mine for layer in r["layers"]))
        matrix = [[_log10(r["layers"].get(layer)) for r in mine] for layer in layers]
        image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap="viridis",
                          extent=(mine[0]["step"], mine[-1]["step"], len(layers) - 0.5, -0.5))
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels(layers, fontsize=7)
        ax.set_xlabel("update step")
        titles.append(f"{name}: per-layer gradient norm (log10)")
        ax.set_title(titles[-1])
        figure.colorbar(image, ax=ax, label="log10 L2 norm")
    for ax, key in zip(axes[1 + len(heatmaps):], scalar_keys):
        for name in names:
            mine = [r for r in records if r["name"] == name and key in r]
            if mine:
                ax.plot([r["step"] for r in mine], [r[key] for r in mine], label=name, linewidth=1.0)
        ax.set_xlabel("update step")
        ax.set_ylabel(key)
        titles.append(key)
        ax.set_title(key)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return titles


def plot_verification(reports, directory: str) -> list[str]:
    """One PNG per verified model: per-layer gradient norms as built and with the remedies
    measured (He init, LayerNorm, a small output init)."""
    plt = _pyplot()
    os.makedirs(directory, exist_ok=True)
    written: list[str] = []
    for report in reports:
        layers = report.figures.get("layers") or []
        if not layers:
            continue
        figure, ax = plt.subplots(1, 1, figsize=(7, 4))
        built = [l.get("grad_norm") or float("nan") for l in layers]
        ax.plot(range(len(layers)), built, marker="o", label="as built")
        for key, norms in (report.figures.get("remedy_layers") or {}).items():
            if len(norms) == len(layers):
                ax.plot(range(len(norms)), [n if n is not None else float("nan") for n in norms],
                        linestyle="--", marker=".", label=f"with {key.replace('_', ' ')}")
        if all(math.isnan(v) for v in built):
            ax.text(0.5, 0.5, "as built: non-finite gradients", transform=ax.transAxes, ha="center", color="red")
        ax.set_yscale("log")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels([l["name"] for l in layers], rotation=90, fontsize=6)
        ax.set_ylabel("weight-gradient L2 norm (log)")
        ax.set_title(f"{report.model}: per-layer gradient norm (unit-scale inputs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        figure.tight_layout()
        path = os.path.join(directory, f"{os.path.splitext(os.path.basename(report.file))[0]}.{report.model}.png")
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def plot_run(report: dict, out: str) -> list[str]:
    """`gradlint run --plot`: the gradient norm before each step per optimizer (pre-clip where the
    script clips; spikes and non-finite steps marked; the measured max_norm dashed), and the
    scale of each feature reaching each model's first layer against the GL401 threshold."""
    plt = _pyplot()
    models = [m for m in report.get("models", []) if (m.get("features") or {}).get("features")]
    panels = 1 + len(models)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.2 * panels + 0.5), squeeze=False)
    axes = [a[0] for a in axes]
    titles = ["Gradient norm before each optimizer step"]
    ax = axes[0]
    for optimizer in report.get("optimizers", []):
        clipped = optimizer.get("clipped")
        norms = optimizer.get("norms") or []
        series = [p if p is not None else n for p, n in zip(optimizer.get("pre_clip") or [], norms)] if clipped else norms
        values = [_finite_or_nan(v) for v in series]
        line, = ax.plot(range(len(values)), values, linewidth=1.2,
                        label=f"{optimizer['name']}{' (pre-clip)' if clipped else ''}")
        summary = optimizer.get("summary") or {}
        events = [(s, values[s]) for s in summary.get("spike_steps", []) if s < len(values)]
        events += [(s, float("nan")) for s, v in enumerate(series) if v is None]
        _mark_events(ax, events, values, f"{optimizer['name']}: spike / non-finite")
        recommended = (optimizer.get("recommendation") or {}).get("max_norm")
        if recommended:
            ax.axhline(recommended, color=line.get_color(), linestyle="--", linewidth=0.8,
                       label=f"measured max_norm {recommended:g}")
        elif clipped and optimizer.get("clip", {}).get("max_norm"):
            ax.axhline(optimizer["clip"]["max_norm"], color=line.get_color(), linestyle=":", linewidth=0.8,
                       label=f"the script's max_norm {optimizer['clip']['max_norm']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("L2 norm (log scale)")
    ax.set_title(titles[0])
    if report.get("optimizers"):
        ax.legend(loc="upper left", fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    threshold = report.get("thresholds", {}).get("feature_scale", 10.0)
    for ax, model in zip(axes[1:], models):
        features = model["features"]["features"]
        name = model["owner"] + (f".{model['path']}" if model.get("path") else "")
        ax.bar(range(len(features)), [max(f["scale"], 1e-12) for f in features], label="scale sqrt(mean² + std²)")
        ax.scatter(range(len(features)), [max(f["abs_max"], 1e-12) for f in features], color="black", marker="_",
                   s=80, label="largest |value|", zorder=3)
        ax.axhline(threshold, color="red", linestyle="--", linewidth=0.8, label=f"GL401 threshold ({threshold:g}x unit scale)")
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("feature")
        titles.append(f"{name}: what reaches {model.get('first_layer')}, per feature")
        ax.set_title(titles[-1])
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return titles
