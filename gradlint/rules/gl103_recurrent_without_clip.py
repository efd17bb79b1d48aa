from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.context import FileContext, file_may_train
from gradlint.diagnostics import Applicability, Diagnostic, Severity
from gradlint.analysis.step_facts import step_facts
from gradlint.rules._clipping import MARGINAL, describe_call, step_diagnostic, where
from gradlint.rules.base import Rule
from gradlint.rules.gl101_missing_clip import MAX_NORM

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


class RecurrentWithoutClipping(Rule):
    code = "GL103"
    name = "recurrent-model-without-clipping"
    summary = "Recurrent model (RNN/LSTM/GRU or a hand-written recurrence) trained without gradient clipping"
    finds = (
        "the same as GL101 when the optimizer updates an RNN/LSTM/GRU or a hand-written recurrence: an error "
        "for a vanilla RNN or a hand-written recurrence, a warning for gated LSTM/GRU cells, info for the "
        "marginal cases GL101 names (a one-off step, short sequences)"
    )
    severities = (Severity.ERROR, Severity.WARNING, Severity.INFO)
    rationale = (
        "Back-propagation through time multiplies one Jacobian per time step, "
        "W_rec^T diag(sigma'(h_t)). When the largest singular value of W_rec exceeds 1/gamma "
        "(gamma = 1 for tanh) the gradient can grow like that value to the power of the sequence "
        "length; Pascanu, Mikolov and Bengio (2013) show this is the regime where training "
        "diverges and introduce norm clipping as the remedy. LSTM and GRU gates damp this but do "
        "not remove it, which is why recurrent reference code clips (PyTorch's word language "
        "model: 0.25; MAPPO's recurrent policies: 10).\n\n"
        "The model is found from the optimizer's parameters: `Adam(model.parameters())` where "
        "`model` is built from `nn.LSTM`/`nn.GRU`/`nn.RNN` (or their cells), from a class of the "
        "file that contains one or a hand-written loop `h = f(W h + U x)`, or from an imported "
        "class whose name says RNN/LSTM/GRU, through a name or a list sum (`params = "
        "list(agent.parameters()) + list(mixer.parameters())`) and through classes of sibling modules, "
        "star-imported ones included. When GL103 is disabled these steps are reported as GL101.\n\n"
        "Severity: error for a vanilla (tanh/ReLU) RNN or a hand-written recurrence, whose Jacobian "
        "product is unguarded; warning for gated cells (LSTM/GRU), whose additive cell path keeps most "
        "gradients bounded, though not all of them; warning when only a name says recurrent. Info for "
        f"{MARGINAL['demo'].case} ({MARGINAL['demo'].why}), and for "
        f"{MARGINAL['short-sequences'].case.removeprefix('(GL103) ')} ({MARGINAL['short-sequences'].why})."
    )
    bad_example = """\
model = nn.LSTM(32, 64)
optimizer = torch.optim.Adam(model.parameters())
loss.backward()
optimizer.step()
"""
    good_example = """\
model = nn.LSTM(32, 64)
optimizer = torch.optim.Adam(model.parameters())
loss.backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
optimizer.step()
"""
    severity = Severity.ERROR  # the highest it reports: a vanilla RNN or a hand-written recurrence
    fix_applicability = Applicability.SAFE
    fix_description = "Same fix as GL101: insert `clip_grad_norm_` before the step."
    references = (
        "Pascanu, Mikolov, Bengio. On the difficulty of training recurrent neural networks. ICML 2013.",
    )
    options = (MAX_NORM,)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """The model part only: gradients growing with the sequence length confirm it; a model
        that does not grow at initialisation leaves the training loop to `gradlint run`."""
        from gradlint.verify.verdict import NEEDS_RUN, NOT_CONFIRMED, NOT_VERIFIED, Verdict, recurrence_verdict

        verdict = recurrence_verdict(cls.code, figures, thresholds)
        if verdict.verdict == NOT_CONFIRMED:
            return Verdict(cls.code, NOT_VERIFIED, f"at initialisation {verdict.reason}; whether training makes it "
                           f"grow {NEEDS_RUN}", verdict.figures)
        return verdict

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """As GL101: the optimizer stepped at the finding's line."""
        from gradlint.verify.verdict import step_run_verdict

        return step_run_verdict(cls.code, diagnostic, run, thresholds)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_train(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        analysis = ctx.training
        for finding in analysis.missing_clip:
            model = analysis.recurrent_model(finding.event)
            if not model:
                continue
            step = finding.event
            facts = step_facts(analysis, finding)
            message = (
                f"`{describe_call(ctx, step)}` updates a recurrent model ({model}) after "
                f"{where(ctx, finding.backward)} with no gradient clipping: gradients through "
                "time can grow exponentially with sequence length"
            )
            if finding.noop_clip is not None:
                message += f"; {where(ctx, finding.noop_clip)} clips nothing (its first argument is the loss)"
            if facts.demo:
                severity = Severity.INFO
                message += f" (marginal: a one-off step at module level, in no loop; {MARGINAL['demo'].why})"
            elif facts.short_sequence:
                severity = Severity.INFO
                message += (f" (marginal: short sequences, {facts.short_sequence}; "
                            f"{MARGINAL['short-sequences'].why})")
            elif model.gated is False:
                severity = Severity.ERROR
            else:
                severity = Severity.WARNING
                if model.gated:
                    message += " (gated cells damp this; a clip still bounds the rare spike)"
            yield step_diagnostic(self, ctx, analysis, finding, message, severity, facts)
