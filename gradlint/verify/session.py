"""From lint results to verdicts: group findings by the model they concern, work out how to
build each model, run the probes in the worker, and apply the verdict rule."""

from __future__ import annotations

import ast
import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field

import click

from gradlint.analysis.models import BOUND_NAMES
from gradlint.analysis.values import evaluate, known, module_constants
from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.engine import FileResult
from gradlint.prepass import index_file
from gradlint.source import read_source
from gradlint.verify import ModelReport
from gradlint.verify.loader import constructor_args, model_only_source, resolvable_call_site
from gradlint.verify.runner import DeviceUnavailableError, Worker, WorkerStartError, uses_cuda
from gradlint.verify.verdict import NOT_VERIFIED, Verdict, decide


@dataclass
class Options:
    init_args: dict[str, dict] = field(default_factory=dict)
    input_shapes: dict[str, list[list[int]]] = field(default_factory=dict)
    device: str = "cpu"
    timeout: float = 60.0
    memory_mb: int = 8192
    thresholds: dict[str, float] = field(default_factory=dict)


class DeviceError(click.ClickException):
    """The requested device cannot be used: one line on stderr, exit status 2, no traceback
    (a ClickException, so the CLI shows it as such; other callers can catch it)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"gradlint: error: {self.format_message()}", file=file, err=file is None)


def verify_results(results: list[FileResult], settings: Settings, options: Options, progress=None) -> list[ModelReport]:
    reports: list[ModelReport] = []
    worker = Worker(options.timeout, options.memory_mb, options.device)
    try:
        if uses_cuda(options.device):  # find out now, once, rather than as an error on every model
            try:
                worker.start()
            except DeviceUnavailableError as exc:
                raise DeviceError(f"--device {options.device}: {exc}; use --device cpu") from None
            except WorkerStartError:
                pass  # any other start failure: reported on each model, as on the CPU
        for result in results:
            if not result.diagnostics:
                continue
            reports.extend(_verify_file(result.path, result.diagnostics, settings, options, worker, progress))
    finally:
        worker.close()
    return reports


def _verify_file(path: str, diagnostics: list[Diagnostic], settings: Settings, options: Options, worker: Worker,
                 progress, call_site_text: str | None = None) -> list[ModelReport]:
    groups: dict[str | None, list[Diagnostic]] = defaultdict(list)
    for diagnostic in diagnostics:
        groups[diagnostic.subject].append(diagnostic)
    reports: list[ModelReport] = []
    try:
        source = read_source(path)
        ctx = FileContext(source, index_file(source), settings)
        models = {m.name: m for m in ctx.models.models if m.kind == "module"}
        text_only = model_only_source(source.text)
    except Exception as exc:  # noqa: BLE001 - bad input or a libcst failure: reported, never raised
        return [ModelReport(path, "?", 0, "error", f"cannot prepare the file: {exc}")]
    for subject, found in groups.items():
        codes = sorted({d.code for d in found})
        sibling = ctx.project_model_file(subject) if subject and subject not in models else None
        if sibling is not None:  # `from networks import MLPNetwork`: build it from its own file
            reports.extend(_verify_sibling(path, source.text, sibling, subject.rsplit(".", 1)[-1], codes, settings,
                                           options, worker))
            continue
        if subject is None or subject not in models:
            reports.append(ModelReport(
                path, subject or "(no model class)", found[0].line, "error",
                "no nn.Module class of this file to build for these findings",
                verdicts=[Verdict(c, NOT_VERIFIED, "the finding names no model class this file defines") for c in codes]))
            continue
        model = models[subject]
        line = model.line
        construction = constructor_args(source.text, subject, options.init_args.get(subject))
        if call_site_text is not None and construction.source != "user":  # the importing file's call
            call = resolvable_call_site(call_site_text, subject, module_constants(ast.parse(call_site_text)))
            if call is not None:
                construction.args, construction.kwargs = call
                construction.source, construction.guessed, construction.missing = "call site", {}, []
        report = ModelReport(path, subject, line, "ok", construction={
            "source": construction.source, "args": construction.args, "kwargs": construction.kwargs,
            "guessed": construction.guessed})
        if construction.missing:
            report.status = "error"
            names = ", ".join(construction.missing)
            report.error = (f"cannot build {subject}: no value for {names}; pass "
                            f"--init-args '{subject}={{\"{construction.missing[0]}\": ...}}'")
            report.verdicts = [Verdict(c, NOT_VERIFIED, report.error) for c in codes]
            reports.append(report)
            continue
        if progress:
            progress(f"verifying {subject} ({os.path.basename(path)})")
        request = {
            "file": os.path.abspath(path),
            "module_name": "gradlint_user_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12],
            "source": text_only,
            "sys_path": [os.path.dirname(os.path.abspath(path)), os.path.abspath(settings.root)],
            "class": subject,
            "args": construction.args,
            "kwargs": construction.kwargs,
            "input_shapes": options.input_shapes.get(subject),
            "hints": {"inputs": model.inputs,
                      "dims": {k: v for k, v in model.init_params.items() if isinstance(v, (int, float)) and known(v)}},
            "codes": codes,
            "device": options.device,
            "seed": 0,
            **_training_hints(ctx, subject),
        }
        reply = worker.request(request)
        if reply.get("status") != "ok":
            report.status = "error"
            report.error = reply.get("error", "unknown error")
            report.verdicts = [Verdict(c, NOT_VERIFIED, f"the model could not be run: {report.error}") for c in codes]
            reports.append(report)
            continue
        figures = reply["figures"]
        bound = _bound_value(model, construction)
        if bound is not None:
            figures["bound"] = bound
        report.figures = figures
        report.verdicts = [decide(code, figures, options.thresholds) for code in codes]
        reports.append(report)
    return reports


def _verify_sibling(path: str, text: str, sibling: str, subject: str, codes: list[str], settings: Settings,
                    options: Options, worker: Worker) -> list[ModelReport]:
    """Findings of `path` about a model class defined in the sibling module `sibling`."""
    stand_ins = [Diagnostic(sibling, 1, 1, 1, 1, code, "", Severity.INFO, None, subject) for code in codes]
    reports = _verify_file(sibling, stand_ins, settings, options, worker, None, call_site_text=text)
    for report in reports:
        report.construction.setdefault("defined_in", sibling)
        report.file = f"{path} -> {sibling}"
    return reports


def _training_hints(ctx: FileContext, subject: str) -> dict:
    """The optimizer class and learning rate the script uses for this model, where they resolve."""
    if "backward" not in ctx.source.text:
        return {}
    training = ctx.training
    constants = module_constants(ctx.index.tree)
    for finding in training.missing_clip:
        if subject not in training.model_classes(finding.event):
            continue
        built = training.optimizer_construction(finding.event)
        if built is None:
            continue
        call, binding = built
        name = ctx.code(call.func).rsplit(".", 1)[-1]
        lr = None
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "lr":
                value = evaluate(arg.value, constants)
                lr = float(value) if known(value) and isinstance(value, (int, float)) else None
        return {"optimizer": name, "lr": lr}
    return {}


def _bound_value(model, construction) -> float | None:
    for name in BOUND_NAMES:
        if name in construction.kwargs and isinstance(construction.kwargs[name], (int, float)):
            return float(construction.kwargs[name])
        value = model.init_params.get(name)
        if known(value) and isinstance(value, (int, float)):
            return float(value)
    return None
