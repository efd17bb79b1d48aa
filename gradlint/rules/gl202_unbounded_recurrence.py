from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.models import UNBOUNDED_ACTIVATIONS
from gradlint.context import FileContext, file_may_model
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.rules.base import Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


class UnboundedRecurrence(Rule):
    code = "GL202"
    name = "recurrence-with-unbounded-activation"
    summary = "Recurrent layer with an unbounded nonlinearity (ReLU RNN, hand-written h = relu(W h + U x))"
    finds = '`nn.RNN(nonlinearity="relu")`, or a hand-written `h = relu(W h + U x)` in a loop'
    rationale = (
        "A recurrence applies the same weights at every time step, so the gradient through T "
        "steps is a product of T Jacobians W_rec^T diag(sigma'(h_t)). With tanh, sigma' <= 1 and the "
        "states saturate, which bounds the forward pass and lets the gradient explode only when "
        "the largest singular value of W_rec exceeds 1 (Pascanu et al. 2013). With ReLU nothing "
        "saturates: states can grow without bound forward, and whenever W_rec's spectral radius "
        "is above 1 both states and gradients grow geometrically with sequence length. "
        "ReLU RNNs can work (IRNN: identity init, small learning rate, clipping) but need those "
        "precautions; prefer tanh, or LSTM/GRU, and clip gradients."
    )
    bad_example = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(16, 64, nonlinearity="relu")
"""
    good_example = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(16, 64, nonlinearity="tanh")
"""
    severity = Severity.WARNING
    references = (
        "Pascanu, Mikolov, Bengio. On the difficulty of training recurrent neural networks. ICML 2013.",
        "Le, Jaitly, Hinton. A Simple Way to Initialize Recurrent Networks of Rectified Linear Units. 2015.",
    )

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """The gradient w.r.t. the first input, unrolled over growing sequence lengths."""
        from gradlint.verify.verdict import recurrence_verdict

        return recurrence_verdict(cls.code, figures, thresholds)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """Through training: the loop rule on the optimizer that updates the model (the growth
        with sequence length itself is `gradlint verify`'s)."""
        from gradlint.verify.verdict import CONFIRMED, NOT_VERIFIED, Verdict, loop_verdict

        updated = run.optimizers_of(run.models_for(diagnostic))
        if not updated:
            return Verdict(cls.code, NOT_VERIFIED, f"no optimizer stepped {run.subject(diagnostic)} in the "
                           f"{run.steps} steps of the run", {})
        verdict = loop_verdict(cls.code, updated[0], thresholds)
        reason = f"through training: {verdict.reason}"
        if verdict.verdict == CONFIRMED:
            return Verdict(cls.code, CONFIRMED, reason, verdict.figures)
        return Verdict(cls.code, verdict.verdict, reason + " (the growth with sequence length itself: `gradlint "
                       "verify`)", verdict.figures)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_model(text) and ("relu" in text or "elu" in text or "softplus" in text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        for model in ctx.models.models:
            for layer in model.all_layers():
                if layer.category == "recurrent" and layer.args.get("nonlinearity") == "relu" and layer.call is not None:
                    message = (
                        f"{model.name}.{layer.name}: nn.{layer.kind} with nonlinearity=\"relu\": "
                        "nothing bounds the hidden state, so states and gradients grow geometrically "
                        "with sequence length once the recurrent weights' spectral radius exceeds 1; "
                        "use tanh (or LSTM/GRU) and clip gradients"
                    )
                    yield ctx.finding(self.code, layer.call, message, self.severity,
                                      subject=model.name if model.kind == "module" else None)
            for recurrence in model.recurrences:
                if recurrence.activation in UNBOUNDED_ACTIVATIONS:
                    message = (
                        f"{model.name}: hand-written recurrence `{recurrence.variable} = "
                        f"{recurrence.activation}(...)` in a loop: an unbounded activation on a state fed "
                        "back every step lets it and its gradient grow geometrically with sequence "
                        "length; use tanh, or a gated cell (nn.GRUCell/nn.LSTMCell)"
                    )
                    yield ctx.finding(self.code, recurrence.statement, message, self.severity, subject=model.name)
