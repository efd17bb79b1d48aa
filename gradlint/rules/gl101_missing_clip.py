from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.context import FileContext, file_may_train
from gradlint.diagnostics import Applicability, Diagnostic, Severity
from gradlint.analysis.step_facts import step_facts
from gradlint.rules._clipping import DEFAULT_MAX_NORMS, assess, severity_policy, step_diagnostic, unclipped_message
from gradlint.rules.base import Option, Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict

MAX_NORM = Option(
    "max-norm", float, None,
    "the `max_norm` the fix passes to `clip_grad_norm_`; unset, it follows the algorithm seen: "
    + "; ".join(f"{value:g} for {what}" for _, value, what in DEFAULT_MAX_NORMS),
)


class MissingGradientClipping(Rule):
    code = "GL101"
    name = "missing-gradient-clipping"
    summary = "Optimizer step after `backward()` with no gradient clipping in between"
    finds = (
        "an optimizer step reached after `backward()` with no gradient clipping in between (or only a clip of"
        " the loss tensor); a warning when a risk factor is seen on the step's path (an RL objective, an "
        "attention model trained from scratch, a deep stack or large init the model rules flag), info "
        "otherwise and for marginal cases (an optimizer of lone tensors such as SAC's `log_alpha`, a Huber TD"
        " loss against a target network, a one-off module-level step)"
    )
    severities = (Severity.WARNING, Severity.INFO)
    rationale = (
        "The update an optimizer applies is proportional to the gradient (for SGD) or follows its "
        "sign and scale history (Adam). One batch with an exploding gradient - a rare large reward, "
        "an outlier sample, a deep or recurrent path whose Jacobians multiply above 1 - then moves "
        "the weights far away, and training can diverge or collapse to repeating one action. "
        "Clipping the global gradient norm between `backward()` and `step()` bounds every update "
        "without changing its direction (Pascanu, Mikolov and Bengio 2013). Common thresholds: "
        "0.5 in PPO/A2C (Stable-Baselines3, CleanRL), 10 in DQN and multi-agent Q-learning "
        "(SB3 DQN, PyMARL), 1.0 for supervised and language models (nanoGPT, HF Trainer).\n\n"
        "The step is recognised on optimizers built from `torch.optim` (or imported optimizer "
        "classes) and on names such as `optimizer`, `actor_optim`, `opt_d`; `scaler.step(opt)` "
        "counts as a step. Never `env.step()`, `scheduler.step()` or `self.step()`. Clipping is "
        "recognised as `clip_grad_norm_`/`clip_grad_value_` (any import spelling), "
        "`accelerator.clip_grad_norm_`, `fabric.clip_gradients`, `p.grad.clamp_()`, and the "
        "file's own functions that clip; a clip behind an `if` (a config switch) counts. A clip "
        "counts only when its first argument can be the gradients' owners (`.parameters()`, a params "
        "list or generator, an optimizer's param groups, a name bound to one, or a name that cannot be "
        "resolved); a clip of the loss tensor (`clip_grad_norm_(policy_loss, 0.1)`, a name that is "
        "the receiver of `.backward()` or is bound to a loss expression) clips nothing, and the step is "
        "reported with that clip named.\n\n" + severity_policy()
    )
    bad_example = """\
loss.backward()
optimizer.step()
"""
    good_example = """\
loss.backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
optimizer.step()
"""
    severity = Severity.WARNING
    fix_applicability = Applicability.SAFE
    fix_description = (
        "Inserts `torch.nn.utils.clip_grad_norm_(<params>, max_norm=<max-norm>)` right before "
        "the step, with `<params>` taken from the optimizer's construction where it can be "
        "written at the step (else the optimizer's `param_groups`); adds `import torch` if needed; "
        "for `scaler.step(opt)` inserts `scaler.unscale_(opt)` first. `max_norm` is the configured "
        "`max-norm`, else the documented default for what the analysis sees (10 for DQN and "
        "multi-agent Q-learning, 0.5 for PPO/A2C, 1.0 otherwise), named in the fix's title. A clip "
        "of the loss tensor gets the parameters as its first argument instead. No fix for an optimizer "
        "of lone tensors."
    )
    references = (
        "Pascanu, Mikolov, Bengio. On the difficulty of training recurrent neural networks. ICML 2013.",
        "https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html",
    )
    options = (MAX_NORM,)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import loop_probe_verdict

        return loop_probe_verdict(cls.code)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """The optimizer stepped at the finding's line: non-finite gradients, norm spikes, a
        diverging loss or an AMP scale below 1 confirm it."""
        from gradlint.verify.verdict import step_run_verdict

        return step_run_verdict(cls.code, diagnostic, run, thresholds)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_train(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        analysis = ctx.training
        recurrent_rule_on = ctx.settings.is_enabled("GL103")
        for finding in analysis.missing_clip:
            if recurrent_rule_on and analysis.recurrent_model(finding.event):
                continue  # reported as GL103
            facts = step_facts(analysis, finding)
            if facts.optimised_inputs:
                continue  # an input optimised through a network (style transfer): no network is trained
            graded = assess(ctx, analysis, finding, facts, recurrent_rule_on)
            message = unclipped_message(ctx, finding)
            if graded.severity is not Severity.INFO:
                message += ": one exploding gradient becomes one huge update"
            if graded.note:
                message += f" ({graded.note})"
            yield step_diagnostic(self, ctx, analysis, finding, message, graded.severity, facts, graded.fixable)
