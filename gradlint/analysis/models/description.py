"""What a model description is made of: layers, init calls, the ops of a forward path, and the
gain maths (the variance a layer's weights end up with, He's per-layer factor c). Plain data;
the interpreters in `constructor` and `forward` fill it in."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

from gradlint.analysis.values import UNKNOWN, gain_for, known

WEIGHT_LAYERS = {
    "Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
    "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d",
}
NORM_LAYERS = {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm", "LocalResponseNorm",
    "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
}
RECURRENT_LAYERS = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}
IDENTITY_LAYERS = {"Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Flatten", "Unflatten"}
# shape-only layers of other libraries, by qualified name (einops' `Rearrange('b h i j -> b i j h')`)
RESHAPE_LAYERS = {"einops.layers.torch.Rearrange"}
ACTIVATION_MODULES = {
    "ReLU": "relu", "LeakyReLU": "leaky_relu", "PReLU": "prelu", "RReLU": "rrelu", "ELU": "elu",
    "SELU": "selu", "CELU": "celu", "GELU": "gelu", "SiLU": "silu", "Mish": "mish",
    "Softplus": "softplus", "Hardswish": "hardswish", "ReLU6": "relu6", "Tanh": "tanh",
    "Sigmoid": "sigmoid", "Softsign": "softsign", "Hardtanh": "hardtanh",
    "Hardsigmoid": "hardsigmoid", "LogSigmoid": "logsigmoid", "Softmax": "softmax",
    "LogSoftmax": "log_softmax", "Tanhshrink": "tanhshrink", "Softshrink": "softshrink",
    "Hardshrink": "hardshrink", "Threshold": "threshold", "GLU": "glu",
}
FUNCTIONAL_ACTIVATIONS = {
    "relu", "relu_", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "elu", "elu_", "selu", "celu",
    "gelu", "silu", "mish", "softplus", "hardswish", "relu6", "tanh", "tanh_", "sigmoid",
    "sigmoid_", "softsign", "hardtanh", "hardsigmoid", "logsigmoid", "softmax", "log_softmax",
    "tanhshrink", "glu", "clamp", "clamp_", "clip", "swish",
}
UNBOUNDED_ACTIVATIONS = {
    "relu", "leaky_relu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "softplus", "hardswish", "swish", "threshold",
}
SQUASHING = {"tanh", "sigmoid", "hardtanh", "softsign", "clamp", "hardsigmoid", "relu6", "softmax", "log_softmax", "logsigmoid"}
PASS_THROUGH = {
    "view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose", "contiguous",
    "float", "double", "half", "to", "dropout", "clone", "expand", "expand_as", "type_as",
    "view_as", "reshape_as", "cuda", "cpu", "squeeze_", "unsqueeze_", "alpha_dropout", "split",
    "chunk", "unbind", "narrow", "rearrange",
}
MERGES = {"cat", "concat", "concatenate", "stack", "hstack", "vstack", "add", "mul"}
INIT_FUNCTIONS = {
    "normal_", "uniform_", "orthogonal_", "xavier_normal_", "xavier_uniform_", "kaiming_normal_",
    "kaiming_uniform_", "constant_", "zeros_", "ones_", "trunc_normal_", "eye_", "dirac_",
    "sparse_",
}
TENSOR_INIT_METHODS = {"normal_", "uniform_", "fill_", "zero_", "mul_", "copy_"}
# a tensor named like this is exploration noise drawn afresh (NoisyNet's `weight_epsilon`), never
# a weight: an init call on it is no weight init
NOISE_NAMES = ("epsilon", "noise", "eps")
BOUND_NAMES = {
    "max_action", "action_bound", "action_bounds", "action_scale", "action_high", "max_act",
    "action_max", "action_lim", "action_limit", "act_limit", "max_u", "a_max", "action_range",
    "max_acceleration", "max_accel",
}
MODULE_BASES = {"Module", "LightningModule"}


@dataclass(eq=False, repr=False)
class Init:
    """One initialisation call that touches a layer's weight (or bias)."""

    method: str  # normal | uniform | orthogonal | xavier_normal | ... | default | randn | scale
    target: str  # weight | bias
    params: dict[str, Any]
    call: ast.Call | None = None
    anchor: ast.stmt | None = None  # the statement holding the call
    # a parameter whose value is a constructor argument: {param: (argument name, values the
    # file's call sites pass, in order)} (`constant_(m.weight, constant_weight)`)
    sources: dict[str, tuple[str, tuple]] = field(default_factory=dict)
    nodes: dict[str, ast.expr] = field(default_factory=dict)  # the argument bound to each parameter

    def describe(self) -> str:
        shown = ", ".join(f"{k}={self._shown(k, v)}" for k, v in self.params.items())
        return f"{self.target}: {self.method}({shown})"

    def _shown(self, key: str, value: Any) -> str:
        if key in self.sources and not known(value):
            return self.sources[key][0]
        return _fmt(value)


@dataclass(eq=False, repr=False)
class Layer:
    """A module the model declares (or a weight tensor used directly, `kind='Parameter'`)."""

    name: str
    kind: str
    category: str  # weight | norm | activation | recurrent | container | module | param | identity | other
    activation: str | None = None
    fan_in: Any = UNKNOWN
    fan_out: Any = UNKNOWN
    args: dict[str, Any] = field(default_factory=dict)
    call: ast.Call | None = None
    anchor: ast.stmt | None = None  # the statement that builds it (in `__init__`, or the Sequential's)
    inits: list[Init] = field(default_factory=list)
    children: list["Layer"] | None = None  # containers, in order, repeats expanded
    count_known: bool = True
    normalized: bool = False  # weight_norm / spectral_norm
    # Parameters only: "weight" once the model uses the tensor as a layer's weight (the matrix
    # operand of `x @ W`, `F.linear`, `matmul`, `einsum` against activations); None otherwise
    # (positional embeddings, cls/register/memory tokens added or concatenated to activations)
    role: str | None = None
    shape_nodes: tuple = ()  # Parameters: the expressions of the creating call's shape
    fan_axes: tuple[int, ...] | None = None  # Parameters used as weights: the axes their fan-in spans
    # Parameters: the factors of the creating expression (`torch.randn(n, d) * d ** -0.5`), as
    # (expression, divides); and the scale factors applied to its output in forward, likewise
    factor_nodes: tuple = ()
    scale_nodes: list = field(default_factory=list)
    # a weight computed from several tensors, `weight_mu + weight_sigma * weight_epsilon`
    # (NoisyNet): the products of its sum, each a list of layers (a noise buffer: `noise=True`)
    terms: list[list["Layer"]] | None = None
    noise: bool = False  # a buffer drawn afresh as exploration noise (`weight_epsilon`)
    # the ops right before and after this layer on the model's forward paths (`norm`, `act:softmax`,
    # `scale`, ...): a weight followed only by a normalisation is normalised
    before: set[str] = field(default_factory=set)
    after: set[str] = field(default_factory=set)
    scales: list[Any] = field(default_factory=list)  # factors multiplying its output right after it (c uses their square)

    @property
    def is_weight(self) -> bool:
        return self.category in ("weight", "param")

    @property
    def judged(self) -> bool:
        """A layer whose weight the init rules judge: a weight layer's, or a Parameter the model
        uses as a weight (not a token or embedding added to activations, not a noise buffer)."""
        return self.category == "weight" or (self.category == "param" and self.role == "weight")

    def weight_variance(self) -> Any:
        """E[w^2] (the variance, for zero-mean inits) after default init and every init call, in
        order (UNKNOWN if any step is). A composite weight sums its products' second moments,
        a noise buffer counting 1 (unit-variance noise)."""
        if self.terms is not None:
            return _composite_moment(self.terms)
        if self.noise:
            return 1.0
        variance: Any = UNKNOWN
        if self.kind in WEIGHT_LAYERS and known(self.fan_in) and self.fan_in:
            variance = 1.0 / (3.0 * self.fan_in)  # kaiming_uniform_(a=sqrt(5)), torch's default
        for init in self.inits:
            if init.target != "weight":
                continue
            variance = _variance_after(init, variance, self.fan_in, self.fan_out)
        return variance

    def gain(self) -> Any:
        """He's per-layer factor c = 1/2 * fan_in * E[w^2]: 1 keeps ReLU activations' variance,
        below shrinks it, above grows it by c per layer (He et al. 2015)."""
        init = self.last_weight_init()
        if init is not None and init.method in ("orthogonal", "eye"):
            gain = init.params.get("gain", 1.0)
            scale = 1.0
            for later in self.inits[self.inits.index(init) + 1 :]:
                if later.target == "weight" and later.method == "scale" and known(later.params.get("factor")):
                    scale *= later.params["factor"]
            return 0.5 * (gain * scale) ** 2 if known(gain) else UNKNOWN
        variance = self.weight_variance()
        if not known(variance) or not known(self.fan_in):
            return UNKNOWN
        return 0.5 * self.fan_in * variance

    def effective_gain(self) -> Any:
        """`gain()` with the constant factors that multiply the layer's output right after it
        (`(q @ k) * self.scale`)."""
        gain = self.gain()
        for factor in self.scales:
            gain = gain * factor**2 if known(gain) and known(factor) else UNKNOWN
        return gain

    def last_weight_init(self) -> Init | None:
        for init in reversed(self.inits):
            if init.target == "weight" and init.method != "scale":
                return init
        return None

    def summary(self) -> str:
        parts = [self.kind]
        if self.args:
            parts.append("(" + ", ".join(f"{k}={_fmt(v)}" for k, v in self.args.items()) + ")")
        return "".join(parts)

    def copy(self) -> "Layer":
        """Another instance of the same layer (a repeat in a loop): own args and inits, the same
        children and construction site."""
        return Layer(self.name, self.kind, self.category, self.activation, self.fan_in, self.fan_out,
                     dict(self.args), self.call, self.anchor, list(self.inits), self.children,
                     self.count_known, self.normalized, role=self.role, shape_nodes=self.shape_nodes,
                     fan_axes=self.fan_axes, terms=self.terms, noise=self.noise, factor_nodes=self.factor_nodes)


@dataclass(frozen=True, eq=False)
class Op:
    """One step of the forward data path."""

    kind: str  # input | layer | act | norm | residual | recurrent | concat | scale | unknown
    layer: Layer | None = None
    name: str = ""
    factor: Any = UNKNOWN  # a scale's value, where it resolves
    node: ast.expr | None = None  # a scale's factor, as written
    divides: bool = False  # a scale written `x / factor`

    def describe(self) -> str:
        if self.kind == "layer" and self.layer is not None:
            return f"{self.layer.name}:{self.layer.kind}"
        if self.kind in ("act", "norm", "recurrent", "input", "scale"):
            return f"{self.kind}:{self.name}" if self.name else self.kind
        return self.kind


@dataclass(eq=False, repr=False)
class Recurrence:
    """`h = relu(W h + U x)` in a loop of a forward pass."""

    variable: str
    activation: str
    statement: ast.stmt


@dataclass(eq=False, repr=False)
class ModelDescription:
    name: str
    kind: str  # module | sequential
    node: ast.ClassDef | ast.Call  # the class, or the nn.Sequential call
    anchor: ast.stmt  # the statement holding `node` (the class itself for a class)
    layers: dict[str, Layer] = field(default_factory=dict)
    path: list[Op] | None = None
    returns: list[tuple[ast.Return, list[Op] | None]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    init_params: dict[str, Any] = field(default_factory=dict)
    bound: str | None = None  # how forward can read the action bound (`self.max_action`)
    bound_hint: str | None = None  # why the range is bounded (`max_action` argument)
    recurrences: list[Recurrence] = field(default_factory=list)
    tuple_output: bool = False
    buffers: dict[str, Layer] = field(default_factory=dict)  # `self.register_buffer(name, ...)`
    attributes: dict[str, ast.expr] = field(default_factory=dict)  # `self.x = <expr>` in `__init__`
    derived: list[Layer] = field(default_factory=list)  # weights computed in forward (mu + sigma * eps)

    @property
    def line(self) -> int:
        """The line of `class Name` (or of the nn.Sequential call)."""
        return self.node.lineno

    def weight_layers(self) -> list[Layer]:
        return [op.layer for op in (self.path or []) if op.kind == "layer" and op.layer is not None]

    def all_layers(self) -> list[Layer]:
        seen: list[Layer] = []
        stack = list(reversed(self.layers.values()))  # depth first, in declaration order
        while stack:
            layer = stack.pop()
            if layer in seen:
                continue
            seen.append(layer)
            stack.extend(reversed(layer.children or []))
        return seen

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "inputs": self.inputs,
            "init_params": {k: _jsonable(v) for k, v in self.init_params.items()},
            "layers": [
                {
                    "name": layer.name, "kind": layer.kind, "category": layer.category,
                    "fan_in": _jsonable(layer.fan_in), "fan_out": _jsonable(layer.fan_out),
                    "args": {k: _jsonable(v) for k, v in layer.args.items()},
                    "inits": [i.describe() for i in layer.inits],
                    "gain": _jsonable(layer.gain()) if layer.is_weight else None,
                }
                for layer in [*self.all_layers(), *self.derived]
                if layer.category != "container"
            ],
            "path": None if self.path is None else [op.describe() for op in self.path],
            "bound": self.bound,
            "recurrences": [f"{r.variable} = {r.activation}(...)" for r in self.recurrences],
        }


def target_kind(target: str) -> str:
    """weight | bias | param (a tensor that may be a weight: `self.W_hh`) | noise (an
    exploration-noise buffer: `self.weight_epsilon`), from an init call's target text."""
    last = target.rsplit(".", 1)[-1]
    if is_noise_name(last):
        return "noise"
    if last.startswith("weight"):
        return "weight"
    if last.startswith("bias") or last == "b":
        return "bias"
    return "param"


def is_noise_name(name: str) -> bool:
    """`weight_epsilon`, `eps_in`, `noise`: a tensor of exploration noise, by its name."""
    return any(part in NOISE_NAMES for part in name.lower().split("_")) or "epsilon" in name.lower()


def activation_name(name: str) -> str:
    """The canonical name of an activation function (`relu_` -> relu, `swish` -> silu)."""
    name = name.rstrip("_")
    return {"clip": "clamp", "swish": "silu"}.get(name, name)


def named(children: list[Layer], container: str) -> list[Layer]:
    """Name the layers of a container by position, as `named_modules()` would (`net.3`)."""
    for index, child in enumerate(children):
        child.name = f"{container}.{index}"
    return children


def _fmt(value: Any) -> str:
    if value is UNKNOWN:
        return "?"
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _jsonable(value: Any) -> Any:
    if value is UNKNOWN:
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, tuple) and not all(known(v) for v in value):  # a Parameter's shape
        return tuple(_jsonable(v) for v in value)
    return value


def _composite_moment(terms: list[list[Layer]]) -> Any:
    """E[w^2] of a sum of products of independent tensors: the sum of the products of their
    second moments (NoisyNet's mu + sigma * eps)."""
    total = 0.0
    for factors in terms:
        product = 1.0
        for layer in factors:
            moment = layer.weight_variance()
            if not known(moment):
                return UNKNOWN
            product *= moment
        total += product
    return total


def _variance_after(init: Init, previous: Any, fan_in: Any, fan_out: Any) -> Any:
    """E[w^2] after `init` (mean included: He's c assumes zero-mean weights, and a non-zero
    mean only adds to the growth)."""
    p = init.params
    method = init.method
    if method == "scale":
        factor = p.get("factor", UNKNOWN)
        return previous * factor**2 if known(previous) and known(factor) else UNKNOWN
    if method in ("normal", "trunc_normal", "randn"):
        std, mean = p.get("std", 1.0), p.get("mean", 0.0)
        return std**2 + mean**2 if known(std) and known(mean) and not isinstance(mean, str) else UNKNOWN
    if method == "uniform":
        low, high = p.get("a", 0.0), p.get("b", 1.0)
        return (low * low + low * high + high * high) / 3.0 if known(low) and known(high) else UNKNOWN
    if method in ("zeros", "constant_zero"):
        return 0.0
    if method == "ones":
        return 1.0
    if method == "constant":
        value = p.get("val", UNKNOWN)  # no spread at all: flagged separately as symmetric
        return value * value if known(value) and isinstance(value, (int, float)) else UNKNOWN
    if method in ("xavier_normal", "xavier_uniform"):
        gain = p.get("gain", 1.0)
        if known(gain) and known(fan_in) and known(fan_out) and fan_in + fan_out:
            return gain**2 * 2.0 / (fan_in + fan_out)
        return UNKNOWN
    if method in ("kaiming_normal", "kaiming_uniform"):
        a = p.get("a", 0.0)
        nonlinearity = p.get("nonlinearity", "leaky_relu")
        mode = p.get("mode", "fan_in")
        if not (known(a) and isinstance(nonlinearity, str) and isinstance(mode, str)):
            return UNKNOWN
        gain = gain_for(nonlinearity, a)
        fan = fan_in if mode == "fan_in" else fan_out
        return gain**2 / fan if known(gain) and known(fan) and fan else UNKNOWN
    return UNKNOWN
