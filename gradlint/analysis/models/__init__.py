"""The static model description: what each network of a file is made of, in what order its
forward pass applies it, and how its weights are initialised. Nothing is executed.

The model rules (GL2xx, GL3xx) read it, `gradlint explain-model` prints it, and the runtime
verifier reads it to build inputs and place probes. What cannot be resolved statically is
`UNKNOWN` (or a path of `None`), and the rules stay silent about it.

- `description`: the data (ModelDescription, Layer, Init, Op) and the gain maths;
- `constructor`: the `__init__` interpreter (layers, sizes, inits) and init-call recognition;
- `forward`: the forward interpreter (the data path, returns, recurrences);
- `discovery`: ModelAnalysis, which finds the file's models and runs the two interpreters.
"""

from gradlint.analysis.models.description import (
    BOUND_NAMES,
    SQUASHING,
    UNBOUNDED_ACTIVATIONS,
    Init,
    Layer,
    ModelDescription,
    Op,
    Recurrence,
)
from gradlint.analysis.models.discovery import ModelAnalysis

__all__ = ["BOUND_NAMES", "SQUASHING", "UNBOUNDED_ACTIVATIONS", "Init", "Layer", "ModelAnalysis",
           "ModelDescription", "Op", "Recurrence"]
