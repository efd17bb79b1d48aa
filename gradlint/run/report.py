"""`gradlint run`'s report: the run (how it ended, steps seen), each optimizer and model with its
figures and the measured `max_norm`, and each static finding with its verdict. Text or JSON;
the JSON is also what `gradlint check --fix --run-report FILE` reads."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from gradlint.output.escape import printable

from gradlint.run.matching import RunVerdict, feature_data, recommend_max_norm
from gradlint.verify.verdict import CONFIRMED, NOT_CONFIRMED, THRESHOLDS, norm_figures

_COLOURS = {CONFIRMED: "red", NOT_CONFIRMED: "green"}
REPORT_VERSION = 1


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _where(path: str | None, line: int | None, cwd: str) -> str:
    if not path:
        return "?"
    try:
        shown = os.path.relpath(path, cwd)
    except ValueError:
        shown = path
    if shown.startswith(".."):
        shown = path
    return f"{shown}:{line}" if line else shown


def outcome(data: dict) -> str:
    status = data.get("status")
    steps = data.get("steps", 0)
    seconds = f"{data.get('elapsed', 0):.1f} s"
    if status == "stopped":
        return f"stopped by gradlint at {data.get('reason')} ({steps} optimizer steps in {seconds})"
    if status == "completed":
        return f"the script finished ({steps} optimizer steps in {seconds})"
    if status == "exited":
        return f"the script called sys.exit({data.get('exit_code')}) after {steps} optimizer steps"
    if status == "interrupted":
        return f"interrupted (Ctrl-C) after {steps} optimizer steps; figures up to there"
    if status == "exception":
        exc = data.get("exception") or {}
        where = _where(exc.get("file"), exc.get("line"), data.get("cwd", os.getcwd()))
        return f"the script raised {exc.get('type')}: {exc.get('message')} at {where} after {steps} optimizer steps"
    if status == "killed":
        how = f"was killed by {data['signal']}" if data.get("signal") else f"ended with status {data.get('exit_code')}"
        return f"the script's process {how} without a report; figures up to step {steps}"
    return str(status)


def build(data: dict, verdicts: list[RunVerdict], thresholds: dict | None = None) -> dict:
    """The report as one JSON-ready object."""
    t = {**THRESHOLDS, **(thresholds or {})}
    optimizers = []
    for optimizer in data.get("optimizers", []):
        clipped = bool(optimizer.get("clip", {}).get("calls"))
        series = [p if p is not None else n for p, n in zip(optimizer.get("pre_clip") or [], optimizer["norms"])] \
            if clipped else optimizer["norms"]
        summary = norm_figures(series, t)
        entry = {**optimizer, "clipped": clipped, "summary": summary}
        if not clipped:
            entry["recommendation"] = recommend_max_norm(optimizer, thresholds)
        else:
            max_norm = optimizer["clip"].get("max_norm")
            pre = [p for p in optimizer.get("pre_clip") or [] if p is not None]
            entry["clipped_fraction"] = (sum(1 for p in pre if max_norm is not None and p > max_norm) / len(pre)) if pre else None
        optimizers.append(entry)
    models = []
    for model in data.get("models", []):
        features = feature_data([model])
        models.append({**model, "features": features})
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.verdict.verdict] = counts.get(verdict.verdict.verdict, 0) + 1
    report = {k: v for k, v in data.items() if k not in ("optimizers", "models", "ranks")}
    report.update({"version": REPORT_VERSION, "outcome": outcome(data), "optimizers": optimizers, "models": models,
                   "findings": [v.to_dict() for v in verdicts], "counts": counts})
    return report


def render_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)


def render_text(report: dict, colour: bool) -> str:
    cwd = report.get("cwd", os.getcwd())
    lines = []
    title = f"gradlint run: {' '.join([_where(report.get('script'), None, cwd), *report.get('argv', [])[1:]])}"
    lines.append(click.style(title, bold=True) if colour else title)
    lines.append(printable(f"  {outcome(report)}"))  # the script's own exception text: escaped
    if report.get("world_size", 1) > 1:
        lines.append(f"  {report['world_size']} ranks" + (f"; {report['gather_error']}" if report.get("gather_error")
                                                          else ", figures gathered on rank 0"))
    lines.append("")
    if report["optimizers"]:
        lines.append("optimizers (gradient norm before each step)")
    for optimizer in report["optimizers"]:
        s = optimizer["summary"]
        name = _where(optimizer["site"]["file"], optimizer["site"]["line"], cwd) + " " + optimizer["class"] \
            if optimizer.get("site") else optimizer["name"]
        text = f"  {name}: {optimizer['steps']} steps"
        if optimizer.get("lr") is not None:
            text += f", lr {optimizer['lr']:g}"
        norm = "pre-clip norm" if optimizer["clipped"] else "norm"
        if s["median"] is not None:
            text += f"; {norm} median {_fmt(s['median'])}, max {_fmt(s['max'])} (step {s['max_at_step']})"
        if s["first_nonfinite_step"] is not None:
            text += f"; non-finite from step {s['first_nonfinite_step']}"
        if s["spike_steps"]:
            text += f"; spikes at steps {', '.join(map(str, s['spike_steps'][:5]))}"
        amp = optimizer.get("amp") or {}
        if amp.get("skipped"):
            text += f"; AMP skipped {amp['skipped']} step(s)"
        if optimizer.get("rank_spread") is not None:
            text += f"; ranks agree within {_fmt(optimizer['rank_spread'])}"
        lines.append(text)
        if optimizer["clipped"]:
            clip = optimizer["clip"]
            fraction = optimizer.get("clipped_fraction")
            lines.append(f"      clipped ({', '.join(clip['kinds'])}) at {_fmt(clip['max_norm'])}"
                         + (f": {fraction:.0%} of steps above it" if fraction is not None else ""))
        else:
            recommendation = optimizer.get("recommendation") or {}
            if recommendation.get("max_norm") is not None:
                lines.append(f"      not clipped; measured max_norm = {_fmt(recommendation['max_norm'])} (the "
                             f"{recommendation['percentile']}th percentile of {recommendation['healthy_steps']} healthy "
                             "norms): `gradlint check --fix --run-report FILE` inserts it")
            else:
                lines.append(f"      not clipped; no max_norm measured: {recommendation.get('why_not')}")
    if report["models"]:
        lines.append("")
        lines.append("models called on data (what reaches the first layer)")
    for model in report["models"]:
        name = model["owner"] + (f".{model['path']}" if model.get("path") else "")
        site = model["call_sites"][0] if model.get("call_sites") else None
        text = f"  {name}" + (f" (called at {_where(site['file'], site['line'], cwd)})" if site else "")
        text += f": {model['calls']} calls"
        features = model["features"]
        if features.get("features"):
            scales = [f["scale"] for f in features["features"]]
            top = max(range(len(scales)), key=scales.__getitem__)
            text += (f"; {features.get('dtype')} at {model.get('first_layer')}, {len(scales)} features, values in "
                     f"[{_fmt(features['min'])}, {_fmt(features['max'])}], largest scale {_fmt(scales[top])} "
                     f"(feature {top})")
        elif model.get("model_input"):
            text += f"; input {model['model_input'].get('dtype')} {model['model_input'].get('shape')}"
        lines.append(text)
    lines.append("")
    if report["findings"]:
        lines.append("findings")
    for finding in report["findings"]:
        label = f"{finding['verdict']:<13}"
        if colour:
            label = click.style(label, fg=_COLOURS.get(finding["verdict"], "yellow"), bold=True)
        lines.append(f"  {printable(_where(finding['path'], finding['line'], cwd))}: {finding['code']}  {label}  "
                     f"{printable(finding['reason'])}")
        figures = {k: v for k, v in finding["figures"].items() if v is not None and not isinstance(v, list)}
        if figures:
            lines.append(f"         figures: {_fmt(figures)}")
    counts = report.get("counts") or {}
    if counts:
        lines.append("")
        lines.append("Verified " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + " from the real run.")
    elif not report["findings"]:
        lines.append("No static finding in the script or the modules it imported.")
    return "\n".join(lines)
