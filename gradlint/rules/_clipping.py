"""What GL101 and GL103 share: how serious an unclipped step is (the one place where marginal
cases move down to info, with their reasons as data), which `max_norm` the fix inserts, the
clipping fix itself, and helpers for the GL1xx messages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gradlint.analysis.step_facts import StepFacts
from gradlint.analysis.training import Block, Branch, Event, Finding, Loop, TrainingAnalysis, Try, has_arguments
from gradlint.context import FileContext
from gradlint.diagnostics import Applicability, Diagnostic, Edit, Fix, Severity
from gradlint.edits import import_edit, insert_before, replace

CLIP_NORM = "torch.nn.utils.clip_grad_norm_"


# --------------------------------------------------------------------------------------------
# How serious: marginal cases, risk factors, and the policy that reads them


@dataclass(frozen=True)
class Marginal:
    """A case where an unclipped step is real but its risk is marginal: reported at info."""

    key: str
    case: str  # what it is, for the rule's documentation
    why: str  # why it is marginal, for the documentation and the message


MARGINAL_CASES = (
    Marginal("lone-tensors",
             "an optimizer of tensors that are not a module's parameters (SAC's lone scalar `log_alpha`)",
             "no network weights are updated through a product of layer Jacobians; no fix is offered "
             "(clipping a lone scalar only slows it)"),
    Marginal("huber-td",
             "a DQN-style step whose TD loss is Huber/smooth-L1 (`F.smooth_l1_loss`, `nn.SmoothL1Loss`, "
             "`HuberLoss`) against a target network",
             "the Huber loss bounds each sample's gradient and the target network holds the target still"),
    Marginal("short-sequences",
             "(GL103) a recurrent model unrolled over short sequences: every sequence length the file sets "
             "(`seq_len`, `sequence_length`, `bptt`, ... as a module constant or an option default) is at most 32",
             "gradient growth through time is exponential in the number of steps, and a few dozen steps rarely "
             "compound into an explosion"),
    Marginal("demo",
             "a one-off step at module level (or under `if __name__ == \"__main__\":`) that is not in any loop",
             "a single demonstration update cannot diverge"),
)
MARGINAL = {case.key: case for case in MARGINAL_CASES}

RISK_FACTORS = (
    "an RL objective: the loss is built from rewards, discounted returns, TD targets, advantages or "
    "log-prob ratios, the optimizer updates an actor/critic/Q network, the step's function or class reads "
    "such values, or the file steps an environment",
    "an attention or transformer model trained from scratch among the optimizer's parameters (a model "
    "loaded pretrained and fine-tuned is not one)",
    "a recurrent model (when GL103 is off)",
    "a deep unnormalised stack or a large init that the model rules flag (GL201/GL301) on a model the "
    "optimizer updates",
    "a clip in the step's path that clips nothing (its first argument is the loss): the author meant to clip",
)
NO_FACTOR = "no exploding-gradient risk factor seen: a clip is still cheap insurance"


def severity_policy() -> str:
    """The policy in words, for the rule's rationale (`gradlint rule GL101`)."""
    marginal = "; ".join(f"{c.case}: {c.why}" for c in MARGINAL_CASES)
    factors = "; ".join(RISK_FACTORS)
    return (
        "Severity follows what the analysis sees on the step's path. Warning when a risk factor is "
        f"visible, and the message names it: {factors}. Info otherwise ({NO_FACTOR}). Info as well, "
        f"whatever else is seen, for the marginal cases: {marginal}. Info is the floor, with one "
        "exception: a step whose optimizer updates only copies of data (style transfer's "
        "`Adam([target])` with `target = content.clone().requires_grad_()`, an adversarial input) "
        "trains no network and is not reported."
    )


@dataclass(frozen=True)
class Assessment:
    severity: Severity
    note: str  # appended to the message: the factor seen, or why the step is marginal
    fixable: bool = True
    marginal: str | None = None  # the key of the marginal case


def marginal_case(facts: StepFacts) -> tuple[Marginal, str] | None:
    """The marginal case a step falls in, with what was seen, if any."""
    if facts.lone_tensors:
        names = ", ".join(f"`{n}`" for n in facts.lone_tensors)
        return MARGINAL["lone-tensors"], f"the optimizer updates {names}, not a module's parameters"
    if facts.huber_td:
        return MARGINAL["huber-td"], f"a Huber/smooth-L1 TD loss, {facts.huber_td}"
    if facts.demo:
        return MARGINAL["demo"], "a one-off step at module level, in no loop"
    return None


def assess(ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, facts: StepFacts,
           recurrent_is_gl103: bool) -> Assessment:
    """GL101's severity for one unclipped step: marginal -> info; a risk factor -> warning;
    nothing seen -> info."""
    if finding.noop_clip is not None:
        return Assessment(Severity.WARNING, "")  # the message already says what is wrong
    marginal = marginal_case(facts)
    if marginal is not None:
        case, seen = marginal
        return Assessment(Severity.INFO, f"marginal: {seen}; {case.why}", case.key != "lone-tensors", case.key)
    factor = risk_factor(ctx, analysis, finding, facts, recurrent_is_gl103)
    if factor:
        return Assessment(Severity.WARNING, f"risk factor: {factor}")
    return Assessment(Severity.INFO, NO_FACTOR)


def risk_factor(ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, facts: StepFacts,
                recurrent_is_gl103: bool) -> str | None:
    """The first exploding-gradient risk factor seen on the step's path, in words."""
    if facts.rl_signal:
        return f"an RL objective, {facts.rl_signal}"
    if facts.attention:
        return f"an attention model trained from scratch, {facts.attention}"
    if facts.recurrent is not None and not recurrent_is_gl103 and not facts.short_sequence:
        return f"a recurrent model, {facts.recurrent}"
    return flagged_model(ctx, analysis, finding)


def flagged_model(ctx: FileContext, analysis: TrainingAnalysis, finding: Finding) -> str | None:
    """A model the optimizer updates that GL201 (deep unnormalised stack) or GL301 (large init)
    reports, whatever the selection (the model analysis is the same)."""
    classes = analysis.model_classes(finding.event)
    if not classes:
        return None
    flagged = _model_rule_subjects(ctx)
    for name in sorted(classes):
        if name in flagged:
            return f"{flagged[name]} `{name}`"
    return None


def _model_rule_subjects(ctx: FileContext) -> dict[str, str]:
    memo = ctx.__dict__.get("_gl1_flagged_models")
    if memo is not None:
        return memo
    from gradlint.context import file_may_model
    from gradlint.rules import RULES_BY_CODE

    found: dict[str, str] = {}
    if file_may_model(ctx.source.text):
        for code, what in (("GL201", "a deep unnormalised stack (GL201) in"), ("GL301", "a large init (GL301) in")):
            rule = RULES_BY_CODE[code](ctx.settings.options_for(code))
            for diagnostic in rule.check(ctx):
                if diagnostic.subject and diagnostic.severity != Severity.INFO:
                    found.setdefault(diagnostic.subject, what)
    ctx.__dict__["_gl1_flagged_models"] = found
    return found


# --------------------------------------------------------------------------------------------
# Which max_norm


@dataclass(frozen=True)
class Threshold:
    max_norm: float
    why: str  # said in the fix's title


DEFAULT_MAX_NORMS = (
    ("Q-learning", 10.0, "DQN and multi-agent Q-learning (a TD target from a target network; a QMIX/VDN mixer), "
                         "as in SB3's DQN and PyMARL"),
    ("policy gradient", 0.5, "PPO/A2C (a ratio clip, a policy-gradient loss weighted by advantages), as in "
                             "Stable-Baselines3 and CleanRL"),
    ("default", 1.0, "everything else (supervised models, transformers), as in nanoGPT and the HF Trainer"),
)


def choose_max_norm(facts: StepFacts, override: float | None = None, measured: float | None = None) -> Threshold:
    """The `max_norm` the clipping fix inserts for one step: a value measured on the real run
    (`gradlint check --run-report`) wins, then the configured `max-norm` option, else the
    documented default for the algorithm the analysis sees."""
    if measured is not None:
        return Threshold(float(measured), "measured by `gradlint run` (90th percentile of the healthy norms)")
    if override is not None:
        return Threshold(float(override), "the configured max-norm")
    if facts.q_learning:
        return Threshold(10.0, f"the DQN/Q-learning default: {facts.q_learning}")
    if facts.policy_gradient:
        return Threshold(0.5, f"the PPO/A2C default: {facts.policy_gradient}")
    return Threshold(1.0, "the default")


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


def clip_fix(ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, threshold: Threshold) -> Fix | None:
    """Insert `clip_grad_norm_(<the optimizer's params>, max_norm=...)` right before the step
    (and `scaler.unscale_(opt)` first for an AMP step that has not been unscaled); where a clip
    of the loss tensor is in the way, give it the parameters instead."""
    step = finding.event
    if step.stmt is None or step.in_closure or step.optimizer is None:
        return None
    optimizer_code = ctx.text_of(step.optimizer)
    if "\n" in optimizer_code or "\r" in optimizer_code:
        return None
    params = analysis.optimizer_params(step)
    if finding.noop_clip is not None:
        return _retarget_clip(ctx, analysis, finding, params)
    if params is not None and analysis.params_valid_at(params[0], params[1], step):
        params_code = ctx.text_of(params[0])
        described = params_code
    elif step.wrapper:  # `optimizer.step_and_update_lr()`: the wrapper holds the optimizer
        inner = analysis.wrapper_step(step)
        if inner is None:
            return None
        groups = f"{optimizer_code}.{inner[1]}.param_groups"
        params_code = f'(p for group in {groups} for p in group["params"])'
        described = groups
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
    max_norm = threshold.max_norm
    statements.append(f"{name}({params_code}, max_norm={max_norm!r})")
    edits = [*extra, insert_before(ctx, step.stmt, *statements)]
    verb = "Unscale and clip" if len(statements) == 2 else "Clip"
    title = f"{verb} the gradient norm of {described} to {max_norm!r} ({threshold.why}) before the step"
    return Fix(title, tuple(edits), Applicability.SAFE)


def _retarget_clip(ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, params) -> Fix | None:
    """`clip_grad_norm_(policy_loss, 0.1)` -> `clip_grad_norm_(<the optimizer's params>, 0.1)`."""
    clip = finding.noop_clip
    if clip is None or params is None or not clip.call.args or not analysis.params_valid_at(params[0], params[1], clip):
        return None
    code = ctx.text_of(params[0])
    if "\n" in code:
        return None
    first = clip.call.args[0]
    return Fix(f"Clip {code} instead of the loss `{ctx.text_of(first)}`", (replace(ctx, first, code),),
               Applicability.SAFE)


def step_diagnostic(rule, ctx: FileContext, analysis: TrainingAnalysis, finding: Finding, message: str,
                    severity: Severity, facts: StepFacts, fixable: bool = True) -> Diagnostic:
    """The finding of GL101/GL103 at an unclipped step, with the clipping fix and the model."""
    step = finding.event
    models = sorted(c for c in analysis.model_classes(step)
                    if c in ctx.models.module_classes or ctx.project_model_file(c))
    measured = ctx.settings.max_norm_for(ctx.source.path, step.call.lineno)
    fix = clip_fix(ctx, analysis, finding, choose_max_norm(facts, rule.settings["max-norm"], measured)) if fixable else None
    return ctx.finding(rule.code, step.call, message, severity, fix, subject=models[0] if models else None)


def unclipped_message(ctx: FileContext, finding: Finding) -> str:
    """`X` runs after `loss.backward()` (line N) with no gradient clipping in between, or with
    a clip that clips nothing."""
    step = finding.event
    text = (f"`{describe_call(ctx, step)}` runs after {where(ctx, finding.backward)} with no gradient clipping "
            "in between")
    clip = finding.noop_clip
    if clip is not None:
        reason = ctx.training.clip_clips_nothing(clip)
        text += (f": {where(ctx, clip)} clips nothing ({reason}, a tensor with no `.grad`); "
                 "pass the parameters instead")
    return text


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
