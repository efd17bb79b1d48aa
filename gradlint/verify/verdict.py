"""The verdict families, with their thresholds and sources: what the measured figures must show
for a finding to be *confirmed*. Each rule's class picks its family and says what its figures are
(`Rule.probe_verdict`, `Rule.run_verdict`, in the rule's own file); this module decides nothing
by rule code.

Two sources of figures feed them:
- `gradlint run`: the user's own training script, run for N optimizer steps (figures measured
  on the real data, loss, optimizer and learning rate);
- `gradlint verify`: synthetic probes of the model alone (unit-scale inputs, unrolls over T, and
  the observation bounds of a registered env). A probe confirms only what it measures about the
  model itself; training-loop and data findings without a real run are *not verified*.

No verdict is given without figures: a probe that could not run, or code that never ran, makes
the finding *not verified*, with the reason. Every threshold can be overridden
(`--threshold NAME=VALUE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gradlint.monitor import SpikeDetector

if TYPE_CHECKING:
    from gradlint.diagnostics import Diagnostic
    from gradlint.run.matching import RunMeasurements

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"
NOT_VERIFIED = "not verified"
NEEDS_RUN = "needs the real training loop (`gradlint run`)"
NO_PROBE = "no probe for this rule"
NO_RUN_MEASUREMENT = "no run measurement for this rule"

THRESHOLDS: dict[str, float] = {
    # -- model family (GL2xx, GL3xx) --
    # first-layer / last-layer weight-gradient norm ratio (AUTOTRAINER, Zhang et al. ICSE 2021, beta_3 = 70)
    "first_last_ratio": 70.0,
    # measured per-layer growth of activation variance (He et al. 2015: 1 is stable; 2 = twice He's)
    "activation_growth_per_layer": 2.0,
    # max/min per-layer activation variance (SageMaker Debugger PoorWeightInitialization, threshold 10)
    "activation_variance_ratio": 10.0,
    # gradient w.r.t. the first input, T = 200 vs T = 10 (Pascanu et al. 2013: explosion = growth with T)
    "recurrent_growth": 10.0,
    # global gradient norm of the model as initialised vs a copy with He init (gradlint's own
    # choice: an order of magnitude, for weights the per-layer probes cannot see, e.g. F.linear)
    "init_vs_he_ratio": 10.0,
    # -- training-loop family (GL1xx), from a real run --
    # a gradient norm above this many times its running median (Pascanu et al. 2013: ~10x the
    # average; the same rule as gradlint.monitor's SpikeDetector)
    "spike_ratio": 10.0,
    # the loss's median over the last quarter of the run vs its first quarter (gradlint's own
    # choice: three orders of magnitude, well beyond the growth of a TD loss while values grow)
    "loss_divergence": 1000.0,
    # -- data family (GL4xx) --
    # a feature's scale, sqrt(mean^2 + std^2), above this many times unit scale: an order of
    # magnitude (Stable-Baselines3's VecNormalize clips standardised observations at 10, so no
    # normalised feature has this scale)
    "feature_scale": 10.0,
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


def _thresholds(overrides: dict[str, float] | None) -> dict[str, float]:
    return {**THRESHOLDS, **(overrides or {})}


def _never_called(code: str, diagnostic: Diagnostic, run: RunMeasurements) -> Verdict:
    """A model or data finding whose models the run never called."""
    return Verdict(code, NOT_VERIFIED, f"{run.subject(diagnostic)} was never called on data in the {run.steps} steps "
                   "of the run", {})


# --- the synthetic probes of `gradlint verify` ---------------------------------------------------


def decide(code: str, figures: dict, thresholds: dict[str, float] | None = None) -> Verdict:
    """A verdict from `gradlint verify`'s probes of the model alone: the rule's own
    `probe_verdict` (an unknown code is not verified)."""
    from gradlint.rules import RULES_BY_CODE  # not at import: the probe worker imports this module

    rule = RULES_BY_CODE.get(code)
    if rule is None:
        return Verdict(code, NOT_VERIFIED, NO_PROBE, {})
    return rule.probe_verdict(figures, _thresholds(thresholds))


# --- model family: GL201, GL301 (depth and init), GL202/GL103's recurrence, GL204 ------------------


def depth_figures(grad_norms: list[float | None], activation_vars: list[float | None]) -> dict:
    """From per-layer weight-gradient norms and activation variances (in forward order): the
    first/last gradient ratio, the gradient growth per layer from the output back to the input,
    and the activation variance growth per layer (a log-linear fit) and spread."""
    result: dict[str, Any] = {}
    if len(grad_norms) >= 2 and all(n is not None and n > 0 for n in grad_norms):
        result["first_last_ratio"] = grad_norms[0] / grad_norms[-1]
        logs = [math.log(n) for n in reversed(grad_norms)]  # from the output back to the input
        result["grad_growth_per_layer"] = math.exp(_slope(logs))
    variances = activation_vars[:-1]  # the output layer's own scale is the loss's business
    if len(variances) >= 2 and all(v is not None and v > 0 for v in variances):
        result["activation_growth_per_layer"] = math.exp(_slope([math.log(v) for v in variances]))
        result["activation_variance_ratio"] = max(variances) / min(variances)
    return result


def _slope(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def model_verdict(code: str, figures: dict, t: dict[str, float], *, against_he_init: bool = False) -> Verdict:
    """GL201/GL301: gradients that grow from the output back to the input, activations whose
    variance grows per layer, non-finite values, or (`against_he_init`, GL301) gradients far above
    those of the same model with He init. `figures["gradients"]` comes from a synthetic probe
    (verify) or from the real run (run)."""
    gradients = figures.get("gradients", {})
    numbers = {k: gradients.get(k) for k in ("first_last_ratio", "activation_growth_per_layer",
                                              "activation_variance_ratio", "grad_growth_per_layer", "max_he_c", "nonfinite")}
    remedies = figures.get("remedies", {})
    if remedies:
        numbers["with_he_init"] = remedies.get("he_init", {}).get("first_last_ratio")
        numbers["with_layernorm"] = remedies.get("layernorm", {}).get("first_last_ratio")
    for key in ("steps_seen", "at_step"):
        if key in figures:
            numbers[key] = figures[key]
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
    if against_he_init and total and he_total:
        numbers["grad_norm_vs_he_init"] = total / he_total
        if total / he_total > t["init_vs_he_ratio"]:
            reasons.append(f"gradients {_fmt(total / he_total)}x those of the same model with He init > {t['init_vs_he_ratio']:g}")
    where = f" ({figures['measured_on']})" if figures.get("measured_on") else ""
    if reasons:
        return Verdict(code, CONFIRMED, "; ".join(reasons) + where, numbers)
    if ratio is None and growth is None and not numbers.get("grad_norm_vs_he_init"):
        if figures.get("recurrent", {}).get("grad_first_input"):  # weights applied in a recurrence
            recurrent = recurrence_verdict(code, figures, t)
            return Verdict(code, recurrent.verdict, f"through the recurrence: {recurrent.reason}",
                           {**numbers, **recurrent.figures})
        return Verdict(code, NOT_VERIFIED, "fewer than two weight layers were measured", numbers)
    measured = [f"first/last gradient ratio {_fmt(ratio)} <= {t['first_last_ratio']:g}"]
    if growth is not None:
        measured.append(f"activation growth {_fmt(growth)}x per layer <= {t['activation_growth_per_layer']:g}")
    if numbers.get("grad_norm_vs_he_init") is not None:
        measured.append(f"gradients {_fmt(numbers['grad_norm_vs_he_init'])}x those with He init")
    return Verdict(code, NOT_CONFIRMED, "; ".join(measured) + ": gradients do not grow here" + where, numbers)


def model_run_verdict(code: str, diagnostic: Diagnostic, run: RunMeasurements, t: dict[str, float], *,
                      against_he_init: bool = False) -> Verdict:
    """GL201/GL301 from a real run: `model_verdict` on the worst per-layer profile of the
    finding's models under the real inputs and loss."""
    models = run.models_for(diagnostic)
    if not models:
        return _never_called(code, diagnostic, run)
    figures = run.depth_data(models)
    if figures is None:
        return Verdict(code, NOT_VERIFIED, f"no per-layer profile of {run.subject(diagnostic)}: it took no optimizer "
                       "step, or fewer than two of its weight layers were measured", {})
    return model_verdict(code, figures, t, against_he_init=against_he_init)


def recurrence_verdict(code: str, figures: dict, t: dict[str, float]) -> Verdict:
    """GL202 (and GL103's model part): the gradient of the last output w.r.t. the first input
    grows more than `recurrent_growth` from T = 10 to T = 200 (and never falls on the way)."""
    recurrent = figures.get("recurrent", {})
    grads = recurrent.get("grad_first_input", {})
    numbers = {"sigma_max": [m.get("sigma_max") for m in recurrent.get("matrices", [])], "grad_first_input_by_T": grads}
    if recurrent.get("unrolled"):
        numbers["unrolled"] = recurrent["unrolled"]
    lengths = sorted(grads, key=int)
    values = [grads[k] for k in lengths]
    if len(values) >= 2 and all(v is not None for v in values):
        growth = values[-1] / values[0] if values[0] else float("inf")
        numbers["growth"] = growth
        increasing = all(b >= a for a, b in zip(values, values[1:]))
        if growth > t["recurrent_growth"] and increasing:
            return Verdict(code, CONFIRMED, f"the gradient w.r.t. the first input grows {_fmt(growth)}x from "
                           f"T={lengths[0]} to T={lengths[-1]}", numbers)
        change = (f"grows only {_fmt(growth)}x" if growth >= 1 else
                  ("vanishes" if growth == 0 else f"shrinks {_fmt(1 / growth)}x"))
        return Verdict(code, NOT_CONFIRMED, f"the gradient w.r.t. the first input {change} from short to long "
                       "sequences: it does not explode with T (a spectral radius above 1 alone is not enough)", numbers)
    if values and any(v is None for v in values):
        return Verdict(code, CONFIRMED, "non-finite gradient through time", numbers)
    return Verdict(code, NOT_VERIFIED, recurrent.get("why_not") or "no recurrent unroll could be measured", numbers)


def action_bound_verdict(code: str, figures: dict) -> Verdict:
    """GL204: outputs beyond the action bound on the inputs measured (unit scale, env bounds, or
    the real run); staying within it at initialisation says nothing about later training."""
    bound = figures.get("bound")
    top = figures.get("output_abs_max")
    if bound is None or top is None:
        return Verdict(code, NOT_VERIFIED, "the action bound or the outputs were not measured", {})
    numbers = {"bound": bound, "max_abs_output": top, "inputs": figures.get("output_inputs")}
    if top > bound:
        return Verdict(code, CONFIRMED, f"outputs reach {_fmt(top)} > the action bound {_fmt(bound)}", numbers)
    if figures.get("output_inputs") == "the real run":
        return Verdict(code, NOT_CONFIRMED, f"outputs stayed within {_fmt(top)} <= {_fmt(bound)} during the run", numbers)
    return Verdict(code, NOT_VERIFIED, f"outputs stay within {_fmt(top)} <= {_fmt(bound)} at initialisation; whether "
                   f"training drives them past the bound {NEEDS_RUN}", numbers)


# --- training-loop family: GL101, GL103, GL102 (from the real run) --------------------------------


def norm_figures(norms: list[float | None], t: dict[str, float]) -> dict:
    """Figures of a run's per-step gradient norms (pre-clip where the script clips), with the
    monitor's detector: non-finite steps, spikes above `spike_ratio` x the running median."""
    detector = SpikeDetector(spike_factor=t["spike_ratio"], ceiling=None)
    finite = [n for n in norms if n is not None and math.isfinite(n)]
    first_nonfinite = next((i for i, n in enumerate(norms) if n is None or not math.isfinite(n)), None)
    spikes, outside, largest_ratio, largest_at = [], [], None, None
    for step, norm in enumerate(norms):
        value = float("nan") if norm is None else norm
        kind = detector.observe(value)
        if detector.excursion is not None:
            outside.append(step)
        if math.isfinite(value) and detector.median and len(detector.window) > detector.warmup:
            ratio = value / detector.median
            if largest_ratio is None or ratio > largest_ratio:
                largest_ratio, largest_at = ratio, step
        if kind == "spike":
            spikes.append(step)
    ordered = sorted(finite)
    return {
        "steps": len(norms),
        "median": ordered[len(ordered) // 2] if ordered else None,
        "max": ordered[-1] if ordered else None,
        "max_at_step": norms.index(ordered[-1]) if ordered else None,
        "first_nonfinite_step": first_nonfinite,
        "spike_steps": spikes,
        "excursion_steps": outside,
        "largest_jump": largest_ratio,
        "largest_jump_at_step": largest_at,
    }


def loss_figures(losses: list[float | None], t: dict[str, float]) -> dict:
    seen = [(i, v) for i, v in enumerate(losses) if v is not None]
    if not seen:
        return {}
    nonfinite = next((i for i, v in seen if not math.isfinite(v)), None)
    finite = [v for _, v in seen if math.isfinite(v)]
    result: dict[str, Any] = {"first": finite[0] if finite else None, "last": finite[-1] if finite else None,
                              "nonfinite_step": nonfinite}
    quarter = len(finite) // 4
    if quarter >= 3:
        head = sorted(abs(v) for v in finite[:quarter])
        tail = sorted(abs(v) for v in finite[-quarter:])
        first, last = head[len(head) // 2], tail[len(tail) // 2]
        result["growth"] = last / first if first > 0 else (math.inf if last > 0 else 1.0)
    result["diverged"] = nonfinite is not None or (result.get("growth") or 0) > t["loss_divergence"]
    return result


def loop_verdict(code: str, optimizer: dict | None, t: dict[str, float], steps_run: int | None = None) -> Verdict:
    """GL101/GL103 (and GL202 through training) from a real run: confirmed on non-finite
    gradients, a norm spike above `spike_ratio` x the running median, a diverging loss, or an AMP
    loss scale driven below 1 (the gradients overflow even unscaled); not confirmed otherwise."""
    if optimizer is None:
        ran = f" in the {steps_run} steps of the run" if steps_run is not None else ""
        return Verdict(code, NOT_VERIFIED, f"this optimizer step never ran{ran}", {"steps_seen": 0})
    norms = optimizer.get("pre_clip") if any(v is not None for v in optimizer.get("pre_clip") or []) else None
    norms = [p if p is not None else n for p, n in zip(norms, optimizer["norms"])] if norms else optimizer["norms"]
    figures = norm_figures(norms, t)
    loss = loss_figures(optimizer.get("loss") or [], t)
    amp = optimizer.get("amp") or {}
    numbers: dict[str, Any] = {"steps_seen": figures["steps"], "median_grad_norm": figures["median"],
                               "max_grad_norm": figures["max"], "max_at_step": figures["max_at_step"],
                               "largest_jump_vs_median": figures["largest_jump"],
                               "first_nonfinite_step": figures["first_nonfinite_step"]}
    if loss:
        numbers.update({"loss_first": loss.get("first"), "loss_last": loss.get("last"), "loss_growth": loss.get("growth")})
    if amp:
        numbers.update({"amp_skipped_steps": amp.get("skipped"), "amp_min_scale": amp.get("min_scale")})
    if figures["steps"] == 0:
        return Verdict(code, NOT_VERIFIED, "this optimizer took no step", numbers)
    reasons = []
    if figures["first_nonfinite_step"] is not None:
        reasons.append(f"non-finite gradients at step {figures['first_nonfinite_step']}")
    if figures["spike_steps"]:
        reasons.append(f"gradient-norm spike {_fmt(figures['largest_jump'])}x the running median at step "
                       f"{figures['spike_steps'][0]} > {t['spike_ratio']:g}")
    if loss.get("nonfinite_step") is not None:
        reasons.append(f"the loss became non-finite at step {loss['nonfinite_step']}")
    elif loss.get("diverged"):
        reasons.append(f"the loss grew {_fmt(loss.get('growth'))}x > {t['loss_divergence']:g}")
    if amp.get("min_scale") is not None and amp["min_scale"] < 1:
        reasons.append(f"the AMP loss scale fell to {_fmt(amp['min_scale'])} (gradients overflow even unscaled)")
    seen = f" in {figures['steps']} real steps"
    if reasons:
        return Verdict(code, CONFIRMED, "; ".join(reasons) + seen, numbers)
    jump = figures["largest_jump"]
    detail = f"gradient norm median {_fmt(figures['median'])}, max {_fmt(figures['max'])}"
    detail += f", largest jump {_fmt(jump)}x the running median <= {t['spike_ratio']:g}" if jump is not None else ""
    if loss.get("growth") is not None:
        detail += f"; loss x{_fmt(loss['growth'])} from first to last quarter"
    return Verdict(code, NOT_CONFIRMED, f"stable{seen}: {detail}", numbers)


def step_run_verdict(code: str, diagnostic: Diagnostic, run: RunMeasurements, t: dict[str, float]) -> Verdict:
    """GL101/GL103 from a real run: `loop_verdict` on the optimizer stepped at the finding's line."""
    stepped = run.stepped_at(diagnostic)
    if not stepped:
        return loop_verdict(code, None, t, run.steps)
    verdict = loop_verdict(code, stepped[0], t)
    verdict.figures["optimizer"] = stepped[0]["name"]
    return verdict


def clip_verdict(code: str, optimizer: dict) -> Verdict:
    """GL102 from a real run: confirmed when `clip_grad_norm_` ran on gradients still multiplied
    by the AMP loss scale, not confirmed when every clip ran on unscaled ones."""
    clip = optimizer.get("clip") or {}
    scaled = clip.get("on_scaled_gradients", 0)
    numbers = {"steps_seen": optimizer["steps"], "clips_on_scaled_gradients": scaled,
               "loss_scale": clip.get("loss_scale"), "max_norm": clip.get("max_norm")}
    if scaled:
        effective = (clip.get("max_norm") or 0) / (clip.get("loss_scale") or 1)
        numbers["effective_max_norm"] = effective
        return Verdict(code, CONFIRMED, f"clip_grad_norm_ ran {scaled} time(s) on gradients still multiplied by the "
                       f"loss scale {_fmt(clip.get('loss_scale'))}: max_norm {_fmt(clip.get('max_norm'))} acted as "
                       f"{_fmt(effective)} on the real gradients", numbers)
    if clip.get("calls"):
        return Verdict(code, NOT_CONFIRMED, f"in {optimizer['steps']} steps every clip ran on unscaled gradients",
                       numbers)
    return Verdict(code, NOT_VERIFIED, "no clip_grad_norm_ call was seen for this optimizer", numbers)


def loop_probe_verdict(code: str) -> Verdict:
    """A training-loop finding without a run: only `gradlint run` can measure it."""
    return Verdict(code, NOT_VERIFIED, f"a property of the training loop: {NEEDS_RUN}", {})


# --- data family: GL401, GL403 ---------------------------------------------------------------------


def data_verdict(code: str, data: dict, t: dict[str, float], *, raw_frames: bool = False) -> Verdict:
    """What reaches the model's first layer, per feature: measured in the run, or spread over a
    registered env's observation bounds. GL401: a feature of scale sqrt(mean^2 + std^2) above
    `feature_scale`; `raw_frames` (GL403): raw uint8 frames (integer values in [0, 255] beyond 1)."""
    features = data.get("features") or []
    source = data.get("source", "")
    numbers: dict[str, Any] = {"measured_on": source, "dtype": data.get("dtype"), "min": data.get("min"),
                               "max": data.get("max")}
    for key in ("calls_seen", "first_layer", "env", "grad_norm_at_bounds_vs_unit"):
        if data.get(key) is not None:
            numbers[key] = data[key]
    if data.get("why_not"):
        return Verdict(code, NOT_VERIFIED, f"{data['why_not']}: the bounds do not describe its input", numbers)
    if data.get("nonfinite"):
        return Verdict(code, CONFIRMED, f"non-finite values in the model at these inputs ({source})", numbers)
    if raw_frames:
        low, high = data.get("min"), data.get("max")
        if low is None or high is None:
            return Verdict(code, NOT_VERIFIED, f"no values were seen ({source})", numbers)
        raw = data.get("dtype") == "torch.uint8" or data.get("dtype") == "uint8" or (
            data.get("integer_valued") and low >= 0 and 2 <= high <= 255)
        if raw:
            return Verdict(code, CONFIRMED, f"the first layer receives raw frames: values in [{_fmt(low)}, {_fmt(high)}]"
                           f" ({data.get('dtype')}, {source})", numbers)
        if not (math.isfinite(low) and math.isfinite(high)):  # an env's unbounded float features (CartPole)
            return Verdict(code, NOT_CONFIRMED, f"the first layer receives {data.get('dtype') or 'float'} values with "
                           f"unbounded features, not raw uint8 frames ({source})", numbers)
        return Verdict(code, NOT_CONFIRMED, f"the first layer receives values in [{_fmt(low)}, {_fmt(high)}], not raw "
                       f"uint8 frames ({source})", numbers)
    if not features:
        return Verdict(code, NOT_VERIFIED, f"no feature statistics ({source})", numbers)
    scales = [(f.get("scale"), i) for i, f in enumerate(features)]
    finite = [(s, i) for s, i in scales if s is not None and math.isfinite(s)]
    unknown = [i for s, i in scales if s is None or not math.isfinite(s)]
    largest, index = max(finite) if finite else (None, None)
    numbers.update({"features": len(features), "largest_feature_scale": largest, "largest_feature": index})
    if index is not None:
        numbers["largest_feature_abs_max"] = features[index].get("abs_max")
    far = [i for s, i in finite if s > t["feature_scale"]]
    if far:
        numbers["features_beyond_threshold"] = far[:20]
        return Verdict(code, CONFIRMED, f"{len(far)} of {len(features)} feature(s) far from unit scale: feature "
                       f"{index} has scale {_fmt(largest)} > {t['feature_scale']:g} ({source})", numbers)
    if unknown:
        return Verdict(code, NOT_VERIFIED, f"feature(s) {', '.join(map(str, unknown[:8]))} have no finite bound "
                       f"({source}): their scale {NEEDS_RUN}", numbers)
    return Verdict(code, NOT_CONFIRMED, f"all {len(features)} features within {t['feature_scale']:g}x unit scale "
                   f"(largest: feature {index}, scale {_fmt(largest)}) ({source})", numbers)


def data_probe_verdict(code: str, figures: dict, t: dict[str, float], *, raw_frames: bool = False) -> Verdict:
    """GL401/GL403 without a run: the data rule on a registered env's observation bounds, or not
    verified where the file names no such env."""
    env = figures.get("env")
    if not env:
        return Verdict(code, NOT_VERIFIED, f"what reaches the model {NEEDS_RUN}, or a registered env with "
                       "known observation bounds", {})
    return data_verdict(code, env, t, raw_frames=raw_frames)


def data_run_verdict(code: str, diagnostic: Diagnostic, run: RunMeasurements, t: dict[str, float], *,
                     raw_frames: bool = False) -> Verdict:
    """GL401/GL403 from a real run: the data rule on what reached the first layer of the
    finding's models."""
    models = run.models_for(diagnostic)
    if not models:
        return _never_called(code, diagnostic, run)
    return data_verdict(code, run.feature_data(models), t, raw_frames=raw_frames)
