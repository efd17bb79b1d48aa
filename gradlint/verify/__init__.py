"""`gradlint verify`: build each flagged model in an isolated process and measure whether its
gradients really grow. The linter never imports this package's torch-using modules.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from gradlint.verify.verdict import NOT_VERIFIED, Verdict, decide

INSTALL_HINT = "gradlint verify needs torch and libcst: pip install 'gradlint[verify]'"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def verify_available() -> bool:
    """torch to build and measure the models, libcst for the model-only source transform."""
    return torch_available() and importlib.util.find_spec("libcst") is not None


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
    cell: int | None = None  # notebooks: the code cell, and `line` is the line in that cell (as the linter's)
    findings_of: str | None = None  # the file whose findings this answers, when the model is defined in another

    def to_dict(self) -> dict:
        return {
            "file": self.file, "model": self.model, **({"cell": self.cell} if self.cell else {}), "line": self.line,
            "status": self.status, "error": self.error,
            "construction": self.construction,
            "findings": [v.to_dict() for v in self.verdicts],
            "figures": {k: v for k, v in self.figures.items() if k not in ("layers", "remedy_layers")},
            "layers": self.figures.get("layers", []),
        }


def verify_model(model, example_inputs, codes=("GL201", "GL301"), thresholds: dict | None = None,
                 env_id: str | None = None) -> dict:
    """Verify a model object you already have (e.g. in a notebook), in this process.

    Runs the probes the given finding codes need on `model` with `example_inputs` (a tensor or a
    list of tensors, at unit scale) and returns {"figures": ..., "verdicts": [...]}. Data
    findings (GL401/GL403) are probed at the observation bounds of `env_id` when it is a known
    registered env; training-loop findings need `gradlint run`. No isolation: it is your own
    object, in your own process.
    """
    from gradlint.verify import probes
    from gradlint.analysis.envs import env_spec
    from gradlint.verify.worker import _env_figures

    inputs = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    figures: dict[str, Any] = {}
    profile = probes.gradient_profile(model, inputs)
    figures["gradients"] = probes.summarize(profile)
    figures["layers"] = profile["layers"]
    codes = set(codes)
    if codes & {"GL201", "GL301"}:
        figures["remedies"] = {"he_init": probes.summarize(probes.gradient_profile(probes.with_he_init(model), inputs))}
    spec = env_spec(env_id) if env_id else None
    if codes & {"GL401", "GL403"} and spec is not None:
        figures["env"] = _env_figures(model, inputs, {"id": spec.env_id, "low": list(spec.low), "high": list(spec.high),
                                                      "dtype": spec.dtype, "source": spec.source})
    if codes & {"GL103", "GL202"}:
        axis = 0 if inputs[0].dim() == 3 else None
        figures["recurrent"] = probes.recurrent_profile(model, inputs, axis)
    return {"figures": figures, "verdicts": [decide(code, figures, thresholds).to_dict() for code in sorted(codes)]}


__all__ = ["ModelReport", "verify_model", "torch_available", "verify_available", "INSTALL_HINT", "NOT_VERIFIED"]
