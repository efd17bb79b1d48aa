"""The verdict rule, in one place: what the measured figures must show for a finding to be
*confirmed*. Every threshold is configurable (`[tool.gradlint.verify]`) and cited.

No verdict is given without figures: a probe that could not run makes the finding
*not verified*, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"
NOT_VERIFIED = "not verified"

THRESHOLDS: dict[str, float] = {
    # first-layer / last-layer weight-gradient norm ratio (AUTOTRAINER, Zhang et al. ICSE 2021, beta_3 = 70)
    "first_last_ratio": 70.0,
    # measured per-layer growth of activation variance (He et al. 2015: 1 is stable; 2 = twice He's)
    "activation_growth_per_layer": 2.0,
    # max/min per-layer activation variance (SageMaker Debugger PoorWeightInitialization, threshold 10)
    "activation_variance_ratio": 10.0,
    # gradient w.r.t. the first input, T = 200 vs T = 10 (Pascanu et al. 2013: explosion = growth with T)
    "recurrent_growth": 10.0,
    # gradient norm above this many times its median in a training run (Pascanu et al.: ~10x the average)
    "spike_ratio": 10.0,
    # global gradient norm at raw input scale vs unit scale (inputs outside [-1, 1]: UMLAUT, DeepDiagnosis)
    "input_scale_ratio": 10.0,
    # global gradient norm of the model as initialised vs a copy with He init (gradlint's own
    # choice: an order of magnitude, for weights the per-layer probes cannot see, e.g. F.linear)
    "init_vs_he_ratio": 10.0,
}


@dataclass
class Verdict:
    code: str
    verdict: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"code": self.code, "verdict": self.verdict, "reason": self.reason, "figures": self.figures}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def decide(code: str, figures: dict, thresholds: dict[str, float] | None = None) -> Verdict:
    t = {**THRESHOLDS, **(thresholds or {})}
    gradients = figures.get("gradients", {})
    if code in ("GL201", "GL301"):
        numbers = {k: gradients.get(k) for k in ("first_last_ratio", "activation_growth_per_layer",
                                                  "activation_variance_ratio", "grad_growth_per_layer", "max_he_c", "nonfinite")}
        remedies = figures.get("remedies", {})
        numbers["with_he_init"] = remedies.get("he_init", {}).get("first_last_ratio")
        numbers["with_layernorm"] = remedies.get("layernorm", {}).get("first_last_ratio")
        reasons = []
        if gradients.get("nonfinite"):
            reasons.append("non-finite gradients or loss (SageMaker ExplodingTensor)")
        ratio = gradients.get("first_last_ratio")
        if ratio is not None and ratio > t["first_last_ratio"]:
            reasons.append(f"first/last-layer gradient ratio {_fmt(ratio)} > {t['first_last_ratio']:g}")
        growth = gradients.get("activation_growth_per_layer")
        if growth is not None and growth > t["activation_growth_per_layer"]:
            reasons.append(f"activation variance grows {_fmt(growth)}x per layer > {t['activation_growth_per_layer']:g}")
        he_total = remedies.get("he_init", {}).get("grad_norm_total")
        total = gradients.get("grad_norm_total")
        if code == "GL301" and total and he_total:
            numbers["grad_norm_vs_he_init"] = total / he_total
            if total / he_total > t["init_vs_he_ratio"]:
                reasons.append(f"gradients {_fmt(total / he_total)}x those of the same model with He init > {t['init_vs_he_ratio']:g}")
        if reasons:
            return Verdict(code, CONFIRMED, "; ".join(reasons), numbers)
        if ratio is None and growth is None and not numbers.get("grad_norm_vs_he_init"):
            if figures.get("recurrent", {}).get("grad_first_input"):  # weights applied in a recurrence
                recurrent = decide("GL202", figures, thresholds)
                return Verdict(code, recurrent.verdict, f"through the recurrence: {recurrent.reason}",
                               {**numbers, **recurrent.figures})
            return Verdict(code, NOT_VERIFIED, "fewer than two weight layers were measured", numbers)
        measured = [f"first/last gradient ratio {_fmt(ratio)} <= {t['first_last_ratio']:g}"]
        if growth is not None:
            measured.append(f"activation growth {_fmt(growth)}x per layer <= {t['activation_growth_per_layer']:g}")
        if numbers.get("grad_norm_vs_he_init") is not None:
            measured.append(f"gradients {_fmt(numbers['grad_norm_vs_he_init'])}x those with He init")
        return Verdict(code, NOT_CONFIRMED, "; ".join(measured) + ": gradients do not grow here", numbers)
    if code in ("GL202", "GL103"):
        recurrent = figures.get("recurrent", {})
        grads = recurrent.get("grad_first_input", {})
        numbers = {"sigma_max": [m.get("sigma_max") for m in recurrent.get("matrices", [])], "grad_first_input_by_T": grads}
        training = figures.get("training", {}).get("without_clip", {})
        if training:
            numbers["training_spike_ratio"] = training.get("spike_ratio")
            numbers["training_nonfinite"] = training.get("nonfinite")
        values = [grads[k] for k in sorted(grads, key=int)]
        if len(values) >= 2 and all(v is not None for v in values):
            growth = values[-1] / values[0] if values[0] else float("inf")
            numbers["growth"] = growth
            increasing = all(b >= a for a, b in zip(values, values[1:]))
            if growth > t["recurrent_growth"] and increasing:
                return Verdict(code, CONFIRMED, f"the gradient w.r.t. the first input grows {_fmt(growth)}x from "
                               f"T={sorted(grads, key=int)[0]} to T={sorted(grads, key=int)[-1]}", numbers)
            if code == "GL103" and training and (training.get("nonfinite") or (training.get("spike_ratio") or 0) > t["spike_ratio"]):
                return Verdict(code, CONFIRMED, f"unclipped training run: spike ratio {_fmt(training.get('spike_ratio'))}"
                               f"{', non-finite' if training.get('nonfinite') else ''}", numbers)
            change = (f"grows only {_fmt(growth)}x" if growth >= 1 else
                      ("vanishes" if growth == 0 else f"shrinks {_fmt(1 / growth)}x"))
            return Verdict(code, NOT_CONFIRMED, f"the gradient w.r.t. the first input {change} from short to long "
                           "sequences: it does not explode with T (a spectral radius above 1 alone is not enough)", numbers)
        if any(v is None for v in values) and values:
            return Verdict(code, CONFIRMED, "non-finite gradient through time", numbers)
        return Verdict(code, NOT_VERIFIED, "no recurrent unroll could be measured", numbers)
    if code == "GL101":
        training = figures.get("training", {})
        off, on = training.get("without_clip", {}), training.get("with_clip", {})
        if not off or "error" in off:
            return Verdict(code, NOT_VERIFIED, off.get("error", "no training run"), {})
        numbers = {"optimizer": training.get("optimizer"), "lr": training.get("lr"),
                   "spike_ratio": off.get("spike_ratio"), "max_grad_norm": off.get("max_grad_norm"),
                   "nonfinite": off.get("nonfinite"), "diverged": off.get("diverged"),
                   "with_clip_diverged": on.get("diverged"), "with_clip_final_loss": (on.get("losses") or [None])[-1],
                   "without_clip_final_loss": (off.get("losses") or [None])[-1]}
        reasons = []
        if off.get("nonfinite"):
            reasons.append("non-finite gradients without clipping")
        if off.get("diverged"):
            reasons.append("the loss diverged without clipping")
        if (off.get("spike_ratio") or 0) > t["spike_ratio"]:
            reasons.append(f"gradient-norm spikes {_fmt(off.get('spike_ratio'))}x the median > {t['spike_ratio']:g}")
        if reasons:
            return Verdict(code, CONFIRMED, "; ".join(reasons), numbers)
        return Verdict(code, NOT_CONFIRMED, f"a {len(off.get('grad_norms', []))}-step synthetic run stayed stable "
                       f"(spike ratio {_fmt(off.get('spike_ratio'))})", numbers)
    if code in ("GL401", "GL403"):
        scales = figures.get("input_scale", {})
        keys = sorted(scales, key=float)
        if len(keys) < 2:
            return Verdict(code, NOT_VERIFIED, "no input-scale run", {})
        base, raw = scales[keys[0]], scales[keys[-1]]
        numbers = {f"grad_norm_x{float(k):g}": scales[k].get("grad_norm") for k in keys}
        if raw.get("grad_norm") is None:
            return Verdict(code, CONFIRMED, f"non-finite gradients at input scale x{float(keys[-1]):g}", numbers)
        ratio = raw["grad_norm"] / base["grad_norm"] if base.get("grad_norm") else None
        numbers["ratio"] = ratio
        if ratio is not None and ratio > t["input_scale_ratio"]:
            return Verdict(code, CONFIRMED, f"inputs at x{float(keys[-1]):g} scale give {_fmt(ratio)}x the gradient norm "
                           f"of unit-scale inputs", numbers)
        return Verdict(code, NOT_CONFIRMED, f"inputs at x{float(keys[-1]):g} scale change the gradient norm only "
                       f"{_fmt(ratio)}x", numbers)
    if code == "GL204":
        scales = figures.get("input_scale", {})
        bound = figures.get("bound")
        if not scales or bound is None:
            return Verdict(code, NOT_VERIFIED, "the action bound did not resolve to a number", {})
        top = max((v.get("output_abs_max") or 0.0) for v in scales.values())
        numbers = {"bound": bound, "max_abs_output": top}
        if top > bound:
            return Verdict(code, CONFIRMED, f"outputs reach {_fmt(top)} > the action bound {_fmt(bound)}", numbers)
        return Verdict(code, NOT_CONFIRMED, f"outputs stay within {_fmt(top)} <= {_fmt(bound)} on the inputs tried", numbers)
    if code == "GL203":
        return Verdict(code, NOT_VERIFIED, "a design preference (gradient damping in saturation), not an explosion to measure", {})
    if code == "GL102":
        return Verdict(code, NOT_VERIFIED, "the order of calls in the training loop; nothing to measure on the model", {})
    if code in ("GL402", "GL302"):
        return Verdict(code, NOT_VERIFIED, "no probe for this rule yet", {})
    return Verdict(code, NOT_VERIFIED, "no probe for this rule", {})
