from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.models import UNBOUNDED_ACTIVATIONS, Layer, ModelDescription, Op
from gradlint.analysis.values import known
from gradlint.context import FileContext, file_may_model
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.rules.base import Option, Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


GROWTH_ERROR = 10.0  # variance amplification c^L from which the stack is an error: clear growth
GROWTH_WARNING = 2.0  # below it (and above 1/2) the estimate is "about constant": no growth shown


def unbounded_runs(path: list[Op]) -> list[tuple[list[Layer], set[str]]]:
    """Runs of weight layers joined only by non-saturating activations (no norm, no skip)."""
    runs: list[tuple[list[Layer], set[str]]] = []
    layers: list[Layer] = []
    activations: set[str] = set()

    def close() -> None:
        nonlocal layers, activations
        if layers:
            runs.append((layers, activations))
        layers, activations = [], set()

    for op in path:
        if op.kind == "layer" and op.layer is not None:
            if op.layer.normalized:
                close()
                continue
            layers.append(op.layer)
        elif op.kind == "act":
            if op.name in UNBOUNDED_ACTIVATIONS:
                activations.add(op.name)
            else:
                close()
        elif op.kind in ("input", "scale", "concat"):
            continue
        else:  # norm, residual, recurrent, unknown: the chain of Jacobians is broken or unknown
            close()
    close()
    return [(run, acts) for run, acts in runs if acts]


class DeepUnboundedStack(Rule):
    code = "GL201"
    name = "deep-unbounded-activation-stack"
    summary = "Deep stack of layers joined by non-saturating activations with no normalization or residual path"
    finds = (
        "a run of >= 6 weight layers joined by ReLU-family activations with no normalization or residual "
        "path; an error when the init makes the estimated amplification c^L reach 10, info when it shows no "
        "growth (c^L < 2)"
    )
    severities = (Severity.ERROR, Severity.WARNING, Severity.INFO)
    rationale = (
        "Back-propagation multiplies one Jacobian per layer. Through ReLU-family activations "
        "(ReLU, LeakyReLU, ELU, GELU, SiLU, Softplus, ...) nothing bounds that product: with "
        "per-layer factor c = 1/2 * fan_in * E[w^2] (He et al. 2015) the variance of activations "
        "and gradients scales like c^L over L layers. With PyTorch's default nn.Linear init "
        "c = 1/6 and gradients shrink with depth; with He init c = 1; with normal_(std=1) on 256 "
        "inputs c = 128 and a few layers explode. Depth without normalization or skip connections "
        "also lets training push c above 1. The message gives the depth, the layers and, where "
        "every layer's init and fan-in resolve, the estimated amplification c^L. The severity "
        "follows that estimate: an error when it shows clear growth (c^L >= 10), a warning when it "
        "shows some (2 <= c^L < 10) or when some layer's init is unknown, info when the variance "
        "stays about constant or shrinks at initialisation (He/orthogonal init, PyTorch's default "
        "init: `gradlint verify` measures those as not confirmed), where the risk is only "
        "structural.\n\n"
        "Remedies: a normalization layer (LayerNorm for MLPs and RL, BatchNorm for CNNs) between "
        "layers, residual connections x + f(x), He/orthogonal init, or less depth. `gradlint "
        "verify` measures the per-layer gradient norms to confirm or refute the finding."
    )
    bad_example = """\
class Deep(nn.Module):
    def __init__(self, hidden=256, depth=8):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""
    good_example = """\
class Deep(nn.Module):
    def __init__(self, hidden=256, depth=8):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""
    severity = Severity.WARNING
    references = (
        "He, Zhang, Ren, Sun. Delving Deep into Rectifiers. ICCV 2015 (arXiv 1502.01852).",
        "Ba, Kiros, Hinton. Layer Normalization. 2016 (arXiv 1607.06450).",
        "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016.",
    )
    options = (Option("min-depth", int, 6, "the number of weight layers in a run that is reported"),)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """Per-layer gradients and activations at unit-scale inputs."""
        from gradlint.verify.verdict import model_verdict

        return model_verdict(cls.code, figures, thresholds)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """The same depth rule on the model's per-layer profile under the real inputs and loss."""
        from gradlint.verify.verdict import model_run_verdict

        return model_run_verdict(cls.code, diagnostic, run, thresholds)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_model(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        for model in ctx.models.models:
            if model.path is None:
                continue
            for run, activations in unbounded_runs(model.path):
                if len(run) < self.settings["min-depth"]:
                    continue
                yield self._report(ctx, model, run, activations)

    def _report(self, ctx: FileContext, model: ModelDescription, run: list[Layer], activations: set[str]) -> Diagnostic:
        gains = [layer.gain() for layer in run]
        depth = len(run)
        acts = "/".join(sorted(activations))
        message = (
            f"{model.name}: {depth} weight layers ({run[0].name} ... {run[-1].name}) joined by {acts} "
            "with no normalization or residual connection"
        )
        severity = self.severity
        if all(known(g) for g in gains):
            amplification = 1.0
            for gain in gains:
                amplification *= gain
            low, high = min(gains), max(gains)
            per_layer = f"c = {low:.3g}" if abs(high - low) < 1e-9 else f"c = {low:.3g}..{high:.3g}"
            if amplification >= GROWTH_ERROR:
                severity = Severity.ERROR
                message += (f"; with this init ({per_layer} per layer) gradient variance grows about "
                            f"{_big(amplification)}x across the stack")
            elif amplification >= GROWTH_WARNING:
                message += (f"; with this init ({per_layer} per layer) gradient variance grows about "
                            f"{_big(amplification)}x across the stack, and more if training pushes c up")
            else:
                severity = Severity.INFO
                trend = ("stays about constant" if amplification >= 1 / GROWTH_WARNING
                         else f"shrinks with depth ({_big(amplification)}x)")
                message += (f"; with this init ({per_layer} per layer) gradient variance {trend} at "
                            "initialisation: a structural risk only if training or a larger init pushes c above 1")
        else:
            message += "; the init scale of some layers is unknown"
        message += ". Add LayerNorm between layers or residual connections, or reduce depth"
        return ctx.model_finding(self.code, model.node, message, severity,
                                 subject=model.name if model.kind == "module" else None)


def _big(value: float) -> str:
    if value >= 1e4 or value < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3g}"
