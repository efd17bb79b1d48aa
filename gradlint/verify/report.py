"""Verification output: a table per model (text), or one object per model (json)."""

from __future__ import annotations

import ast
import json
import re

import click

from gradlint.output.escape import printable
from gradlint.verify import ModelReport
from gradlint.verify.loader import SYNTHETIC, synthetic_label
from gradlint.verify.verdict import CONFIRMED, NOT_CONFIRMED

_COLOURS = {CONFIRMED: "red", NOT_CONFIRMED: "green"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict) and SYNTHETIC in value:
        return synthetic_label(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _stand_in(code: str) -> str:
    if "_GradlintMissing" in code:
        return "<missing>"
    marker = re.search(r"_materialise\((\{.*\})\)$", code)
    if marker:
        return synthetic_label(ast.literal_eval(marker.group(1)))
    return code.replace("__import__('types').SimpleNamespace", "Namespace")


def render_text(reports: list[ModelReport], colour: bool) -> str:
    lines: list[str] = []
    for report in reports:
        built = ""
        construction = report.construction
        if construction:
            values = {**dict(enumerate(construction.get("args", []))), **construction.get("kwargs", {})}
            guessed = construction.get("guessed") or {}
            given = {k: v for k, v in values.items() if k not in guessed}
            guesses = ", ".join(f"{k}={_fmt(v)}" for k, v in guessed.items())
            if guessed and not given:
                built = f"built from guesses: {guesses}"
            else:
                shown = ", ".join(f"{k}={_fmt(v)}" for k, v in given.items()) or "no arguments"
                built = f"built from {construction.get('source')} ({shown})"
                if guessed:
                    built += f"; guessed: {guesses}"
        if construction.get("env_sizes"):
            built += f"; sizes read off {construction.get('env', 'the env')}: " + ", ".join(
                f"{k}={_fmt(v)}" for k, v in construction["env_sizes"].items())
        if construction.get("stand_ins"):
            built += "; removed names stood in: " + ", ".join(
                f"{k}={_stand_in(v)}" for k, v in construction["stand_ins"].items())
        if construction.get("env"):
            built += f"; env {construction['env']}"
        if report.figures.get("forward"):
            built += f"; no forward, ran {report.model}.{report.figures['forward']}"
        if report.figures.get("input_shapes"):
            built += f"; inputs {_fmt(report.figures['input_shapes'])}"
        # names, errors and reasons can carry the model's own text (an exception message): escaped
        cell = f"cell {report.cell}:" if report.cell else ""  # notebooks: placed as the linter places findings
        header = printable(f"{report.file}:{cell}{report.line}: {report.model}")
        lines.append(click.style(header, bold=True) if colour else header)
        if built:
            lines.append(printable(f"  {built}"))
        if report.error and not report.verdicts:
            lines.append(printable(f"  not verified: {report.error}"))
        for verdict in report.verdicts:
            label = f"{verdict.verdict:<13}"
            if colour:
                label = click.style(label, fg=_COLOURS.get(verdict.verdict, "yellow"), bold=True)
            lines.append(f"  {verdict.code}  {label}  {printable(verdict.reason)}")
            figures = {k: v for k, v in verdict.figures.items() if v is not None}
            if figures:
                lines.append(printable(f"         figures: {_fmt(figures)}"))
        lines.append("")
    counts: dict[str, int] = {}
    for report in reports:
        for verdict in report.verdicts:
            counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    if counts:
        lines.append("Verified " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f" across {len(reports)} model(s).")
    else:
        lines.append("Nothing to verify: no finding names a model.")
    return "\n".join(lines)


def render_json(reports: list[ModelReport]) -> str:
    return json.dumps([r.to_dict() for r in reports], indent=2, default=str)
