"""From a run's measurements to a verdict per static finding (no torch here: the parent process).

A finding is matched to what measured it through its public fields only (`Diagnostic`'s code,
path, line and subject): `RunMeasurements` offers the lookups (the optimizer stepped from that
line, the optimizer whose clip ran on that line, the models of that class or called on that
line), and each rule's class decides what they mean (`Rule.run_verdict`, in the rule's own file),
with the verdict families and thresholds of `gradlint.verify.verdict`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from gradlint.diagnostics import Diagnostic
from gradlint.verify.verdict import NO_RUN_MEASUREMENT, NOT_VERIFIED, THRESHOLDS, Verdict, depth_figures, norm_figures

# The measured max_norm: AutoClip's percentile rule (Seetharaman, Wichern, Pardo, Le Roux, "AutoClip:
# Adaptive Gradient Clipping for Source Separation Networks", MLSP 2020: clip at a percentile of the
# observed gradient norms), at the 90th percentile of the healthy pre-clip norms so that only the
# rare large updates are bounded, rounded up to two significant digits.
CLIP_PERCENTILE = 90
MIN_HEALTHY_STEPS = 20


@dataclass
class RunVerdict:
    path: str
    line: int
    code: str
    subject: str | None
    message: str
    verdict: Verdict

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "code": self.code, "subject": self.subject,
                "message": self.message, **self.verdict.to_dict()}


def _same_file(a: str | None, b: str | None) -> bool:
    return bool(a and b) and os.path.realpath(a) == os.path.realpath(b)


def _at(sites: list[dict], diagnostic: Diagnostic) -> bool:
    last = max(diagnostic.end_line or diagnostic.line, diagnostic.line)
    return any(_same_file(s["file"], diagnostic.path) and diagnostic.line <= s["line"] <= last for s in sites)


def _short(name: str | None) -> str | None:
    return name.rsplit(".", 1)[-1] if name else None


def models_for(diagnostic: Diagnostic, models: list[dict]) -> list[dict]:
    """The models a finding is about: called on its line, else of its class (the outermost
    module's class or the called module's own)."""
    called_here = [m for m in models if _at(m.get("call_sites", []), diagnostic)]
    if called_here:
        return called_here
    subject = _short(diagnostic.subject)
    if subject is None:
        return []
    return [m for m in models if subject in (m.get("owner"), m.get("class"))]


def feature_data(models: list[dict]) -> dict:
    """Per-feature statistics of what reached the first layer of these models, pooled."""
    stats = [m["inputs"] for m in models if m.get("inputs", {}).get("n")]
    calls = sum(m.get("calls", 0) for m in models)
    names = ", ".join(sorted({m.get("owner") + (f".{m['path']}" if m.get("path") else "") for m in models}))
    layers = sorted({m.get("first_layer") for m in models if m.get("first_layer")})
    source = f"measured in the run: {calls} call(s) of {names}" + (f", at {', '.join(layers)}" if layers else "")
    data: dict[str, Any] = {"source": source, "calls_seen": calls, "first_layer": ", ".join(layers) or None}
    if not stats:
        dtypes = {m.get("model_input", {}).get("dtype") for m in models} - {None}
        data.update({"features": [], "dtype": ", ".join(sorted(dtypes)) or None, "min": None, "max": None})
        return data
    width = len(stats[0]["sum"])
    stats = [s for s in stats if len(s["sum"]) == width]
    n = sum(s["n"] for s in stats)
    features = []
    for i in range(width):
        total = sum(s["sum"][i] for s in stats)
        squares = sum(s["sumsq"][i] for s in stats)
        mean = total / n
        variance = max(squares / n - mean * mean, 0.0)
        features.append({"mean": mean, "std": math.sqrt(variance), "scale": math.sqrt(max(squares / n, 0.0)),
                         "abs_max": max(s["abs_max"][i] for s in stats)})
    data.update({
        "features": features, "dtype": stats[0].get("dtype"),
        "min": min(min(s["min"]) for s in stats), "max": max(max(s["max"]) for s in stats),
        "integer_valued": all(s.get("integer_valued") for s in stats),
        "nonfinite": any(s.get("nonfinite") for s in stats), "values_seen": n,
    })
    return data


def depth_data(models: list[dict], optimizers: dict[str, dict]) -> dict | None:
    """The worst per-layer profile (forward order) of these models under the real inputs and loss."""
    best: dict | None = None
    for model in models:
        for profile in model.get("profiles", []):
            norms = [layer["grad_norm"] for layer in profile["layers"]]
            variances = [layer["activation_var"] for layer in profile["layers"]]
            gradients = depth_figures(norms, variances)
            gradients["nonfinite"] = any(n is None for n in norms)
            figures = {"gradients": gradients, "at_step": profile["step"],
                       "measured_on": f"the real inputs and loss at step {profile['step']}"}
            ratio = gradients.get("first_last_ratio") or 0.0
            if best is None or gradients["nonfinite"] or ratio > (best["gradients"].get("first_last_ratio") or 0.0):
                best = figures
                if gradients["nonfinite"]:
                    return best
    return best


def merge_ranks(data: dict) -> dict:
    """One view of a distributed run: rank 0's figures, with every rank's non-finite steps and
    input statistics; the per-step norms are the largest any rank saw (equal under DDP)."""
    ranks = data.get("ranks")
    if not ranks:
        return data
    merged = {**ranks[0], **{k: v for k, v in data.items() if k != "ranks"}}
    by_name: dict[str, list[dict]] = {}
    for rank in ranks:
        for optimizer in rank.get("optimizers", []):
            by_name.setdefault(optimizer["name"], []).append(optimizer)
    optimizers = []
    for name, copies in by_name.items():
        first = dict(copies[0])
        length = min(len(c["norms"]) for c in copies)
        first["norms"] = [None if any(c["norms"][i] is None for c in copies) else max(c["norms"][i] for c in copies)
                          for i in range(length)]
        spread = [max(c["norms"][i] for c in copies) / min(c["norms"][i] for c in copies) - 1
                  for i in range(length) if all(c["norms"][i] for c in copies)]
        first["ranks"] = len(copies)
        first["rank_spread"] = max(spread) if spread else None
        optimizers.append(first)
    merged["optimizers"] = optimizers
    models: dict[tuple, dict] = {}
    for rank in ranks:
        for model in rank.get("models", []):
            key = (model["owner"], model["path"], model["class"])
            if key not in models:
                models[key] = {**model, "inputs": dict(model.get("inputs", {}))}
                continue
            kept, extra = models[key]["inputs"], model.get("inputs", {})
            models[key]["calls"] += model.get("calls", 0)
            if kept.get("n") and extra.get("n") and len(kept["sum"]) == len(extra["sum"]):
                for field in ("sum", "sumsq"):
                    kept[field] = [a + b for a, b in zip(kept[field], extra[field])]
                kept["abs_max"] = [max(a, b) for a, b in zip(kept["abs_max"], extra["abs_max"])]
                kept["min"] = [min(a, b) for a, b in zip(kept["min"], extra["min"])]
                kept["max"] = [max(a, b) for a, b in zip(kept["max"], extra["max"])]
                kept["n"] += extra["n"]
                kept["nonfinite"] = kept.get("nonfinite") or extra.get("nonfinite")
    merged["models"] = list(models.values())
    merged["steps"] = max(r.get("steps", 0) for r in ranks)
    return merged


def recommend_max_norm(optimizer: dict, thresholds: dict[str, float] | None = None) -> dict:
    """For an optimizer the script does not clip: the 90th percentile of its healthy gradient
    norms (finite, outside the excursions the spike detector finds), rounded up to two
    significant digits."""
    t = {**THRESHOLDS, **(thresholds or {})}
    norms = optimizer.get("norms") or []
    figures = norm_figures(norms, t)
    spikes = set(figures["excursion_steps"])
    healthy = sorted(n for i, n in enumerate(norms) if n is not None and math.isfinite(n) and i not in spikes and n > 0)
    if len(healthy) < MIN_HEALTHY_STEPS:
        return {"max_norm": None, "why_not": f"{len(healthy)} healthy steps, fewer than {MIN_HEALTHY_STEPS}"}
    rank = max(0, math.ceil(CLIP_PERCENTILE / 100 * len(healthy)) - 1)
    value = _round_up(healthy[rank])
    return {"max_norm": value, "percentile": CLIP_PERCENTILE, "healthy_steps": len(healthy),
            "steps_above": sum(1 for n in norms if n is not None and n > value)}


def _round_up(value: float) -> float:
    """Up to two significant digits: 0.4123 -> 0.42, 12.3 -> 13."""
    if not value > 0:
        return value
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return float(f"{math.ceil(value / step - 1e-9) * step:.3g}")


@dataclass
class RunMeasurements:
    """What a run measured (its optimizers and models, the steps it took), with the lookups that
    match it to a finding."""

    optimizers: list[dict]
    models: list[dict]
    steps: int
    by_name: dict[str, dict] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {o["name"]: o for o in self.optimizers}

    @classmethod
    def from_data(cls, data: dict) -> RunMeasurements:
        """From the measurements the run's child wrote (after `merge_ranks`)."""
        return cls(data.get("optimizers", []), data.get("models", []), data.get("steps", 0))

    def stepped_at(self, diagnostic: Diagnostic) -> list[dict]:
        """The optimizers stepped from the finding's lines."""
        return [o for o in self.optimizers if _at(o.get("step_sites", []), diagnostic)]

    def clipped_at(self, diagnostic: Diagnostic) -> list[dict]:
        """The optimizers whose gradients a clip on the finding's lines ran on."""
        return [o for o in self.optimizers if _at(o.get("clip", {}).get("sites", []), diagnostic)]

    def models_for(self, diagnostic: Diagnostic) -> list[dict]:
        return models_for(diagnostic, self.models)

    def optimizers_of(self, models: list[dict]) -> list[dict]:
        """The optimizers that stepped these models' parameters."""
        return [self.by_name[n] for m in models for n in m.get("optimizers", []) if n in self.by_name]

    @staticmethod
    def subject(diagnostic: Diagnostic) -> str:
        """The finding's model class, for a reason: its short name, or "the model"."""
        return _short(diagnostic.subject) or "the model"

    @staticmethod
    def feature_data(models: list[dict]) -> dict:
        return feature_data(models)

    def depth_data(self, models: list[dict]) -> dict | None:
        return depth_data(models, self.by_name)


def verdicts(diagnostics: list[Diagnostic], data: dict, thresholds: dict[str, float] | None = None) -> list[RunVerdict]:
    """Each finding's verdict from the run's measurements `data`."""
    t = {**THRESHOLDS, **(thresholds or {})}
    run = RunMeasurements.from_data(data)
    return [RunVerdict(d.path, d.line, d.code, d.subject, d.message, run_verdict(d, run, t)) for d in diagnostics]


def run_verdict(diagnostic: Diagnostic, run: RunMeasurements, t: dict[str, float]) -> Verdict:
    """The rule's own `run_verdict` (an unknown code is not verified)."""
    from gradlint.rules import RULES_BY_CODE

    rule = RULES_BY_CODE.get(diagnostic.code)
    if rule is None:
        return Verdict(diagnostic.code, NOT_VERIFIED, NO_RUN_MEASUREMENT, {})
    return rule.run_verdict(diagnostic, run, t)
