from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.models import SQUASHING, ModelDescription
from gradlint.analysis.syntax import dotted, parenthesized_span
from gradlint.context import FileContext, file_may_model
from gradlint.diagnostics import Applicability, Diagnostic, Fix, Severity
from gradlint.rules._models import is_actor, is_critic, spelled
from gradlint.rules.base import Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


def output_tail(path) -> list:
    """The ops after the last weight layer of a path."""
    for index in range(len(path) - 1, -1, -1):
        if path[index].kind == "layer":
            return path[index + 1 :]
    return list(path)


def squashes_somewhere(ctx: FileContext, node: ast.AST) -> bool:
    """A tanh/sigmoid/clamp/clip/hardtanh anywhere in the class (SAC-style actors squash in a
    sampling method, not in forward)."""
    torch_name = ctx.symbols.torch_name
    for call, _ in ctx.symbols.calls(node):
        func = call.func
        name = (dotted(func) or "").rsplit(".", 1)[-1]
        if name in ("tanh", "sigmoid", "clamp", "clip", "hardtanh"):
            return True
        if torch_name(func) in ("Tanh", "Sigmoid", "Hardtanh"):
            return True
        if type(func) is ast.Attribute and func.attr in ("tanh", "sigmoid", "clamp", "clip"):
            return True
    return False


class UnboundedActorOutput(Rule):
    code = "GL204"
    name = "unbounded-action-output"
    summary = "Actor output is unbounded although the code shows a bounded action range"
    finds = (
        "an actor that keeps `max_action`/`action_bound`/`action_scale` but returns a linear layer's output "
        "unsquashed (never a critic: action in, value out)"
    )
    rationale = (
        "An actor whose last layer is linear can output any value, while the environment only "
        "accepts actions in [-max_action, max_action]. The critic is then trained on actions the "
        "environment clipped, the actor's gradient keeps pushing the pre-activation further out "
        "(the Q gradient does not vanish outside the range), and outputs and gradients grow "
        "without bound. DDPG/TD3 squash with tanh and scale to the range: "
        "`max_action * torch.tanh(self.out(x))`. The rule fires when a class that looks like an "
        "actor (by name, or because it keeps `max_action`/`action_bound`/`action_scale`) returns "
        "a linear layer's output with no tanh/sigmoid/clamp after it, and squashes nowhere else "
        "(SAC-style actors that squash in a separate method are not reported). A critic (the "
        "action among its forward inputs, a value out) is never an actor, even when it scales "
        "the action it is given by `max_action`.\n\n"
        "The fix changes what the model computes, so it is unsafe and needs --unsafe-fixes."
    )
    bad_example = """\
class Actor(nn.Module):
    def __init__(self, state_dim=3, action_dim=1, max_action=2.0):
        super().__init__()
        self.fc = nn.Linear(state_dim, action_dim)
        self.max_action = max_action

    def forward(self, state):
        return self.fc(state)
"""
    good_example = """\
class Actor(nn.Module):
    def __init__(self, state_dim=3, action_dim=1, max_action=2.0):
        super().__init__()
        self.fc = nn.Linear(state_dim, action_dim)
        self.max_action = max_action

    def forward(self, state):
        return self.max_action * torch.tanh(self.fc(state))
"""
    severity = Severity.WARNING
    fix_applicability = Applicability.UNSAFE
    fix_description = "Wraps the returned value: `torch.tanh(<value>) * self.max_action` (the attribute the class keeps)."
    references = ("Lillicrap et al. Continuous control with deep reinforcement learning (DDPG). ICLR 2016.",
                  "Fujimoto, van Hoof, Meger. Addressing Function Approximation Error in Actor-Critic Methods (TD3). ICML 2018.")

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """The model's outputs against its action bound, at unit-scale inputs or the env's bounds."""
        from gradlint.verify.verdict import action_bound_verdict

        return action_bound_verdict(cls.code, figures)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, "the run does not compare the actor's outputs with its action bound "
                       "yet; `gradlint verify` measures them at initialisation", {})

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_model(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        for model in ctx.models.models:
            if model.kind != "module" or not (model.bound or (model.bound_hint and is_actor(model))):
                continue
            if is_critic(model):
                continue  # the action is its input, a value its output
            if squashes_somewhere(ctx, model.node):
                continue
            for statement, path in model.returns:
                if not path or not any(op.kind == "layer" for op in path):
                    continue
                tail = output_tail(path)
                if any(op.kind == "act" and op.name in SQUASHING for op in tail):
                    continue
                if model.tuple_output and not any(
                    op.kind == "scale" and model.bound and model.bound in op.name for op in tail
                ):
                    continue  # (mean, log_std) heads are squashed by whoever samples from them
                message = (
                    f"{model.name} returns an unbounded output although the action range is bounded "
                    f"({model.bound or model.bound_hint}): squash and scale it, e.g. "
                    f"`torch.tanh(x) * {model.bound or 'max_action'}`"
                )
                fix = self._fix(ctx, model, statement, tail)
                yield ctx.finding(self.code, statement, message, self.severity, fix, subject=model.name)

    def _fix(self, ctx: FileContext, model: ModelDescription, statement: ast.Return, tail) -> Fix | None:
        if model.bound is None or tail or statement.value is None:
            return None
        start, end = parenthesized_span(ctx.source.text, *ctx.offsets_of(statement.value))
        value = ctx.source.text[start:end]
        if "\n" in value or "\r" in value:
            return None
        tanh, extra = spelled(ctx, "torch.tanh")
        space = " " if start and (ctx.source.text[start - 1].isalnum() or ctx.source.text[start - 1] == "_") else ""
        edit = ctx.edit(start, end, f"{space}{tanh}({value}) * {model.bound}")  # `return(x)` too
        return Fix(f"Return `{tanh}({value}) * {model.bound}`", (*extra, edit), Applicability.UNSAFE)
