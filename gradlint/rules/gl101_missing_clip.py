from __future__ import annotations

from collections.abc import Iterator

from gradlint.context import FileContext, file_may_train
from gradlint.diagnostics import Applicability, Diagnostic, Severity
from gradlint.rules._clipping import describe_call, step_diagnostic, where
from gradlint.rules.base import Option, Rule

MAX_NORM = Option("max-norm", float, 1.0, "the `max_norm` the fix passes to `clip_grad_norm_`")


class MissingGradientClipping(Rule):
    code = "GL101"
    name = "missing-gradient-clipping"
    summary = "Optimizer step after `backward()` with no gradient clipping in between"
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
        "file's own functions that clip; a clip behind an `if` (a config switch) counts."
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
        "for `scaler.step(opt)` inserts `scaler.unscale_(opt)` first."
    )
    references = (
        "Pascanu, Mikolov, Bengio. On the difficulty of training recurrent neural networks. ICML 2013.",
        "https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html",
    )
    options = (MAX_NORM,)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_train(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        analysis = ctx.training
        recurrent_rule_on = ctx.settings.is_enabled("GL103")
        for finding in analysis.missing_clip:
            if recurrent_rule_on and analysis.recurrent_model(finding.event):
                continue  # reported as GL103
            step = finding.event
            message = (
                f"`{describe_call(ctx, step)}` runs after {where(ctx, finding.backward)} with no "
                "gradient clipping in between: one exploding gradient becomes one huge update"
            )
            yield step_diagnostic(self, ctx, analysis, finding, message)
