"""The clipping fix shared by GL101 and GL103, and helpers for the GL1xx messages."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis.training import Block, Branch, Event, Finding, Loop, TrainingAnalysis, Try, has_arguments
from gradlint.context import FileContext
from gradlint.diagnostics import Applicability, Edit, Fix
from gradlint.edits import import_edit, insert_before

CLIP_NORM = "torch.nn.utils.clip_grad_norm_"


def describe_call(ctx: FileContext, event: Event, limit: int = 60) -> str:
    text = " ".join(ctx.text_of(event.call).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(ctx: FileContext, event: Event | None) -> str:
    if event is None:
        return "a backward pass"
    line = ctx.span_of(event.call)[0]
    return f"`{describe_call(ctx, event, 40)}` (line {line})"


def clip_function_name(ctx: FileContext) -> tuple[str, list[Edit]]:
    """How this file can spell `torch.nn.utils.clip_grad_norm_` anywhere (through its
    module-level imports), adding `import torch` if needed."""
    alias = ctx.symbols.alias_for(CLIP_NORM)
    if alias:
        return alias, []
    return CLIP_NORM, [import_edit(ctx, "import torch")]


def clip_fix(ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, max_norm: float) -> Fix | None:
    """Insert `clip_grad_norm_(<the optimizer's params>, max_norm=...)` right before the step
    (and `scaler.unscale_(opt)` first for an AMP step that has not been unscaled)."""
    step = finding.event
    if step.stmt is None or step.in_closure or step.optimizer is None:
        return None
    optimizer_code = ctx.text_of(step.optimizer)
    if "\n" in optimizer_code or "\r" in optimizer_code:
        return None
    params = analysis.optimizer_params(step)
    if params is not None and analysis.params_valid_at(params[0], params[1], step):
        params_code = ctx.text_of(params[0])
        described = params_code
    else:
        params_code = f'(p for group in {optimizer_code}.param_groups for p in group["params"])'
        described = f"{optimizer_code}.param_groups"
    backward = finding.backward
    if backward is not None and backward.receiver and "accelerator" in backward.receiver.lower():
        # Accelerate: its own clip knows about DeepSpeed/FSDP and unscales mixed precision
        name, extra = f"{backward.receiver}.clip_grad_norm_", []
    else:
        name, extra = clip_function_name(ctx)
    statements = []
    if has_arguments(step.call) and finding.scaled and not finding.unscaled:  # scaler.step(opt)
        statements.append(f"{step.receiver}.unscale_({optimizer_code})")
    statements.append(f"{name}({params_code}, max_norm={max_norm!r})")
    edits = [*extra, insert_before(ctx, step.stmt, *statements)]
    title = f"Clip the gradient norm of {described} to {max_norm!r} before the step"
    if len(statements) == 2:
        title = f"Unscale and clip the gradient norm of {described} to {max_norm!r} before the step"
    return Fix(title, tuple(edits), Applicability.SAFE)


def step_diagnostic(rule, ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, message: str):
    """The finding of GL101/GL103 at an unclipped step, with the clipping fix and the model."""
    step = finding.event
    models = sorted(c for c in analysis.model_classes(step)
                    if c in ctx.models.module_classes or ctx.project_model_file(c))
    fix = clip_fix(ctx, analysis, finding, rule.settings["max-norm"])
    return ctx.finding(rule.code, step.call, message, rule.severity, fix, subject=models[0] if models else None)


def events_in_order(block: Block) -> Iterator[Event]:
    for item in block:
        if isinstance(item, Event):
            yield item
        elif isinstance(item, Branch):
            for index, arm in enumerate(item.arms):
                if index < len(item.tests):
                    yield from events_in_order(item.tests[index])
                yield from events_in_order(arm)
        elif isinstance(item, Loop):
            yield from events_in_order(item.body)
            yield from events_in_order(item.orelse)
        elif isinstance(item, Try):
            yield from events_in_order(item.body)
            for handler in item.handlers:
                yield from events_in_order(handler)
            yield from events_in_order(item.orelse)
            yield from events_in_order(item.final)
