"""`gradlint verify`: build each flagged model in an isolated process and measure whether its
gradients really grow. The linter never imports this package's torch-using modules.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from gradlint.verify.verdict import NOT_VERIFIED, Verdict, decide

INSTALL_HINT = "gradlint verify needs torch: pip install 'gradlint[verify]'"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass
class ModelReport:
    file: str
    model: str
    line: int
    status: str  # ok | error
    error: str | None = None
    construction: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "file": self.file, "model": self.model, "line": self.line, "status": self.status, "error": self.error,
            "construction": self.construction,
            "findings": [v.to_dict() for v in self.verdicts],
            "figures": {k: v for k, v in self.figures.items() if k not in ("layers", "remedy_layers")},
            "layers": self.figures.get("layers", []),
        }


def verify_model(model, example_inputs, codes=("GL201", "GL301", "GL101", "GL401"), thresholds: dict | None = None) -> dict:
    """Verify a model object you already have (e.g. in a notebook), in this process.

    Runs the probes the given finding codes need on `model` with `example_inputs` (a tensor or a
    list of tensors) and returns {"figures": ..., "verdicts": [...]}. No isolation: it is your
    own object, in your own process.
    """
    from gradlint.verify import probes

    inputs = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    figures: dict[str, Any] = {}
    profile = probes.gradient_profile(model, inputs)
    figures["gradients"] = probes.summarize(profile)
    figures["layers"] = profile["layers"]
    codes = set(codes)
    if codes & {"GL201", "GL301"}:
        figures["remedies"] = {"he_init": probes.summarize(probes.gradient_profile(probes.with_he_init(model), inputs))}
    if codes & {"GL401", "GL403", "GL204"}:
        figures["input_scale"] = probes.input_scale_profile(model, inputs, (1.0, 255.0) if "GL403" in codes else (1.0, 10.0, 100.0))
    if codes & {"GL103", "GL202"}:
        axis = 0 if inputs[0].dim() == 3 else None
        figures["recurrent"] = probes.recurrent_profile(model, inputs, axis)
    if codes & {"GL101", "GL103"}:
        figures["training"] = {"optimizer": "Adam", "lr": 1e-3,
                               "without_clip": probes.training_run(model, inputs, "Adam", 1e-3, 40, None, 100.0),
                               "with_clip": probes.training_run(model, inputs, "Adam", 1e-3, 40, 1.0, 100.0)}
    return {"figures": figures, "verdicts": [decide(code, figures, thresholds).to_dict() for code in sorted(codes)]}


__all__ = ["ModelReport", "verify_model", "torch_available", "INSTALL_HINT", "NOT_VERIFIED"]
