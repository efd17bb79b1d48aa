from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.models import Layer, ModelDescription
from gradlint.context import FileContext, file_may_model
from gradlint.diagnostics import Applicability, Diagnostic, Fix, Severity
from gradlint.edits import insert_after
from gradlint.rules._models import is_rl_head_model, small_init, spelled
from gradlint.rules.base import Option, Rule
from gradlint.rules.gl201_deep_unbounded_stack import unbounded_runs
from gradlint.rules.gl301_large_init import large_layers

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


class OutputLayerInit(Rule):
    code = "GL302"
    name = "output-layer-without-small-init"
    summary = "Actor/critic/Q output layer without a small initialisation, in a model already at risk"
    finds = "an actor/critic/Q head without DDPG's small U(-3e-3, 3e-3) init, in a model already at risk"
    rationale = (
        "DDPG initialises the last layer of actor and critic from U(-3e-3, 3e-3) so that initial "
        "outputs are near zero: the actor does not start saturated at the action bounds (where "
        "tanh's gradient vanishes and a linear head's outputs run away) and the critic's first TD "
        "targets are not dominated by large random Q-values that feed large gradients back. "
        "PPO implementations do the same with orthogonal gain 0.01 on the policy head. The rule "
        "reports an actor/critic/Q/value network (by class name) whose last layer keeps a "
        "standard init, but only where the model is already at risk: another model rule fires on "
        "it (a deep unbounded stack, a large init) or an optimizer step that updates it is not "
        "clipped in the same file.\n\n"
        "Off by default (enable with `extend-select = [\"GL302\"]`): on real code it mostly fires on "
        "reference implementations that train fine. The fix changes what the model computes, so it "
        "is unsafe and needs --unsafe-fixes."
    )
    bad_example = """\
class Critic(nn.Module):
    def __init__(self, state_dim=8, hidden=256):
        super().__init__()
        self.fc = nn.Linear(state_dim, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, state):
        return self.out(torch.relu(self.fc(state)))

critic = Critic()
critic_optimizer = torch.optim.Adam(critic.parameters())
loss.backward()
critic_optimizer.step()
"""
    good_example = """\
class Critic(nn.Module):
    def __init__(self, state_dim=8, hidden=256):
        super().__init__()
        self.fc = nn.Linear(state_dim, hidden)
        self.out = nn.Linear(hidden, 1)
        nn.init.uniform_(self.out.weight, -3e-3, 3e-3)

    def forward(self, state):
        return self.out(torch.relu(self.fc(state)))

critic = Critic()
critic_optimizer = torch.optim.Adam(critic.parameters())
loss.backward()
critic_optimizer.step()
"""
    severity = Severity.INFO
    # Off by default: on 31 real model files it was 10 of the 23 model-rule findings, all on
    # reference implementations (TD3, CleanRL, minimalRL) that train fine with standard heads.
    default_enabled = False
    fix_applicability = Applicability.UNSAFE
    fix_description = "Inserts `nn.init.uniform_(self.<out>.weight, -3e-3, 3e-3)` after the output layer is built."
    references = ("Lillicrap et al. Continuous control with deep reinforcement learning (DDPG). ICLR 2016, section 7.",)
    options = (Option("bound", float, 3e-3, "the weight bound the fix uses: U(-bound, bound)"),)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NO_PROBE, NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, f"{NO_PROBE} yet", {})

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, "an initialisation choice with no measurement of its own yet", {})

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_model(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        unclipped: set[str] = set()
        if "backward" in ctx.source.text and ".step(" in ctx.source.text:
            training = ctx.training
            for finding in training.missing_clip:
                unclipped |= training.model_classes(finding.event)
        for model in ctx.models.models:
            if model.kind != "module" or not is_rl_head_model(model):
                continue
            layers = model.weight_layers()
            if not layers or small_init(layers[-1]):
                continue
            reason = self._risk(model, unclipped)
            if reason is None:
                continue
            out = layers[-1]
            message = (
                f"{model.name}: output layer {out.name} keeps a standard init while {reason}; start it "
                f"near zero (DDPG: nn.init.uniform_(weight, -3e-3, 3e-3)) so early outputs and their "
                "gradients stay small"
            )
            yield ctx.model_finding(self.code, model.node, message, self.severity, self._fix(ctx, model, out),
                                    subject=model.name)

    def _risk(self, model: ModelDescription, unclipped: set[str]) -> str | None:
        if model.name in unclipped:
            return "an optimizer step that updates it has no gradient clipping"
        if model.path and any(len(run) >= 6 for run, _ in unbounded_runs(model.path)):
            return "the network is a deep unbounded stack"
        if large_layers(model, 2.0):
            return "its hidden layers have a large init"
        return None

    def _fix(self, ctx: FileContext, model: ModelDescription, out: Layer) -> Fix | None:
        if out.anchor is None:
            return None
        if "." not in out.name and out.name in model.layers:
            target = f"self.{out.name}"
        else:
            container, _, index = out.name.rpartition(".")
            parent = model.layers.get(container)
            if parent is None or not parent.children or parent.children[-1] is not out:
                return None
            target = f"self.{container}[-1]"
        uniform, extra = spelled(ctx, "torch.nn.init.uniform_")
        bound = self.settings["bound"]
        code = f"{uniform}({target}.weight, -{bound!r}, {bound!r})"
        edit = insert_after(ctx, out.anchor, code)
        if edit is None:
            return None
        return Fix(f"Initialise {target} from U(-{bound!r}, {bound!r})", (*extra, edit), Applicability.UNSAFE)
