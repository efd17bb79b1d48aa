from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.syntax import last_name
from gradlint.context import FileContext
from gradlint.diagnostics import Applicability, Diagnostic, Fix, Severity
from gradlint.edits import replace
from gradlint.rules._models import spelled
from gradlint.rules.base import Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict

SOFTSIGN = frozenset({"Softsign", "softsign"})
NOTHING_TO_MEASURE = "a design preference (gradient damping in saturation), not an explosion to measure"


class SoftsignActivation(Rule):
    code = "GL203"
    name = "softsign-activation"
    summary = "Softsign where Tanh serves: Softsign passes more gradient once inputs leave [-1.5, 1.5]"
    finds = "`nn.Softsign` / `F.softsign` where tanh damps large-input gradients more"
    rationale = (
        "Softsign x/(1+|x|) and tanh both have derivative 1 at 0, so near zero they behave the "
        "same (the same gamma = 1 in Pascanu et al.'s bound). They differ in the tails: "
        "softsign'(x) = 1/(1+|x|)^2 decays polynomially, tanh'(x) = 1 - tanh(x)^2 exponentially. "
        "At x = 1 softsign passes less gradient (0.25 vs 0.42), but from |x| of about 1.5 on it passes "
        "more: 0.11 vs 0.07 at x = 2, 0.063 vs 0.0099 at x = 3, 0.028 vs 0.00018 at x = 5. In a "
        "network whose pre-activations have grown large, tanh damps the backward pass more. This "
        "is a mild damping, not a cure: the background advice is to prefer tanh, and to fix the "
        "cause (clipping, init, normalization).\n\n"
        "The fix changes what the model computes, so it is unsafe and needs --unsafe-fixes."
    )
    bad_example = """\
policy = nn.Sequential(nn.Linear(10, 64), nn.Softsign(), nn.Linear(64, 2))
"""
    good_example = """\
policy = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 2))
"""
    severity = Severity.INFO
    fix_applicability = Applicability.UNSAFE
    fix_description = "`nn.Softsign()` -> `nn.Tanh()`, `F.softsign(x)` -> `torch.tanh(x)`."
    references = (
        "Pascanu, Mikolov, Bengio. On the difficulty of training recurrent neural networks. ICML 2013.",
    )

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, NOTHING_TO_MEASURE, {})

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, NOTHING_TO_MEASURE, {})

    @classmethod
    def wants(cls, text: str) -> bool:
        return "oftsign" in text

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        torch_name = ctx.symbols.torch_name
        spellings = ctx.models.spellings(SOFTSIGN)
        for call, _ in ctx.symbols.calls(ctx.tree):
            if last_name(call.func) not in spellings:
                continue
            name = torch_name(call.func)
            if name != "Softsign" and name != "softsign":
                continue
            callee = ctx.text_of(call.func)
            if name == "Softsign":
                replacement = callee[: -len("Softsign")] + "Tanh" if callee.endswith(".Softsign") else None
                extra = []
                if replacement is None:
                    replacement, extra = spelled(ctx, "torch.nn.Tanh")
                message = "nn.Softsign: tanh has the same slope at 0 and damps gradients more once |x| > ~1.5; prefer nn.Tanh"
            else:
                replacement, extra = spelled(ctx, "torch.tanh")
                message = "softsign: tanh has the same slope at 0 and damps gradients more once |x| > ~1.5; prefer torch.tanh"
            fix = Fix(f"Replace `{callee}` with `{replacement}`", (*extra, replace(ctx, call.func, replacement)),
                      Applicability.UNSAFE)
            owner = next((m.name for m in ctx.models.models if m.kind == "module"
                          and any(layer.call is call for layer in m.all_layers())), None)
            yield ctx.finding(self.code, call, message, self.severity, fix, subject=owner)
