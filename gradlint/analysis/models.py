"""The static model description: what each network of a file is made of, in what order its
forward pass applies it, and how its weights are initialised. Nothing is executed.

The model rules (GL2xx, GL3xx) read it, `gradlint explain-model` prints it, and the runtime
verifier reads it to build inputs and place probes. What cannot be resolved statically is
`UNKNOWN` (or a path of `None`), and the rules stay silent about it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gradlint.lazy import lazy_module

from gradlint.analysis.cst_walk import iter_calls, iter_names, target_names, text_of
from gradlint.analysis.imports import ImportTable, dotted, receiver_text
from gradlint.analysis.values import UNKNOWN, evaluate, gain_for, known
from gradlint.prepass import Segment

cst = lazy_module("libcst")

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
    "chunk", "unbind", "narrow",
}
MERGES = {"cat", "concat", "concatenate", "stack", "hstack", "vstack", "add", "mul"}
INIT_FUNCTIONS = {
    "normal_", "uniform_", "orthogonal_", "xavier_normal_", "xavier_uniform_", "kaiming_normal_",
    "kaiming_uniform_", "constant_", "zeros_", "ones_", "trunc_normal_", "eye_", "dirac_",
    "sparse_",
}
TENSOR_INIT_METHODS = {"normal_", "uniform_", "fill_", "zero_", "mul_", "copy_"}
BOUND_NAMES = {
    "max_action", "action_bound", "action_bounds", "action_scale", "action_high", "max_act",
    "action_max", "action_lim", "action_limit", "act_limit", "max_u", "a_max", "action_range",
    "max_acceleration", "max_accel",
}
MODULE_BASES = {"Module", "LightningModule"}


# --------------------------------------------------------------------------------------------
# The description


@dataclass(eq=False, repr=False)
class Init:
    """One initialisation call that touches a layer's weight (or bias)."""

    method: str  # normal | uniform | orthogonal | xavier_normal | ... | default | randn | scale
    target: str  # weight | bias
    params: dict[str, Any]
    call: cst.Call | None = None
    segment: Segment | None = None
    anchor: cst.CSTNode | None = None

    def describe(self) -> str:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.target}: {self.method}({shown})"


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
    call: cst.Call | None = None
    segment: Segment | None = None
    anchor: cst.CSTNode | None = None
    inits: list[Init] = field(default_factory=list)
    children: list["Layer"] | None = None  # containers, in order, repeats expanded
    count_known: bool = True
    normalized: bool = False  # weight_norm / spectral_norm

    @property
    def is_weight(self) -> bool:
        return self.category in ("weight", "param")

    def weight_variance(self) -> Any:
        """Var[w] after default init and every init call, in order (UNKNOWN if any step is)."""
        variance: Any = UNKNOWN
        if self.kind in WEIGHT_LAYERS and known(self.fan_in) and self.fan_in:
            variance = 1.0 / (3.0 * self.fan_in)  # kaiming_uniform_(a=sqrt(5)), torch's default
        for init in self.inits:
            if init.target != "weight":
                continue
            variance = _variance_after(init, variance, self.fan_in, self.fan_out)
        return variance

    def gain(self) -> Any:
        """He's per-layer factor c = 1/2 * fan_in * Var[w]: 1 keeps ReLU activations' variance,
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


@dataclass(frozen=True, eq=False)
class Op:
    """One step of the forward data path."""

    kind: str  # input | layer | act | norm | residual | recurrent | concat | scale | unknown
    layer: Layer | None = None
    name: str = ""

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
    statement: cst.CSTNode
    segment: Segment


@dataclass(eq=False, repr=False)
class ModelDescription:
    name: str
    kind: str  # module | sequential
    node: cst.CSTNode  # the ClassDef, or the nn.Sequential call
    segment: Segment
    anchor: cst.CSTNode  # the statement holding `node`
    layers: dict[str, Layer] = field(default_factory=dict)
    path: list[Op] | None = None
    returns: list[tuple[cst.Return, list[Op] | None]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    init_params: dict[str, Any] = field(default_factory=dict)
    bound: str | None = None  # how forward can read the action bound (`self.max_action`)
    bound_hint: str | None = None  # why the range is bounded (`max_action` argument)
    squashes_somewhere: bool = False
    recurrences: list[Recurrence] = field(default_factory=list)
    tuple_output: bool = False

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
                for layer in self.all_layers()
                if layer.category != "container"
            ],
            "path": None if self.path is None else [op.describe() for op in self.path],
            "bound": self.bound,
            "recurrences": [f"{r.variable} = {r.activation}(...)" for r in self.recurrences],
        }


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
    return value


def _variance_after(init: Init, previous: Any, fan_in: Any, fan_out: Any) -> Any:
    p = init.params
    method = init.method
    if method == "scale":
        factor = p.get("factor", UNKNOWN)
        return previous * factor**2 if known(previous) and known(factor) else UNKNOWN
    if method in ("normal", "trunc_normal", "randn"):
        std = p.get("std", 1.0)
        return std**2 if known(std) else UNKNOWN
    if method == "uniform":
        low, high = p.get("a", 0.0), p.get("b", 1.0)
        return (high - low) ** 2 / 12.0 if known(low) and known(high) else UNKNOWN
    if method in ("zeros", "constant_zero"):
        return 0.0
    if method in ("constant", "ones"):
        return 0.0  # no spread at all; flagged separately as symmetric
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


# --------------------------------------------------------------------------------------------
# Building it


def _call_args(call: cst.Call, names: tuple[str, ...], env: dict[str, Any]) -> dict[str, Any]:
    """Resolve a constructor call's arguments by position and keyword."""
    values: dict[str, Any] = {}
    position = 0
    for arg in call.args:
        if arg.star:
            return values
        if arg.keyword is not None:
            values[arg.keyword.value] = evaluate(arg.value, env)
        elif position < len(names):
            values[names[position]] = evaluate(arg.value, env)
            position += 1
    return values


def _arg_node(call: cst.Call, name: str, position: int) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if 0 <= position < len(positional):
        return positional[position].value
    return None


def _prod(value: Any, dims: int) -> Any:
    if isinstance(value, (tuple, list)):
        result = 1
        for v in value:
            if not known(v):
                return UNKNOWN
            result *= v
        return result
    return value**dims if known(value) and isinstance(value, (int, float)) else UNKNOWN


class ModelAnalysis:
    """Every model of one file."""

    def __init__(self, imports: ImportTable, segments: list[Segment], constants: dict[str, Any],
                 text: str | None = None) -> None:
        self.imports = imports
        self.text = text
        self.constants = constants
        self.classes: dict[str, tuple[cst.ClassDef, Segment]] = {}
        self.functions: dict[str, tuple[cst.FunctionDef, Segment]] = {}
        self.models: list[ModelDescription] = []
        self.free_inits: list[tuple[Init, str]] = []  # inits outside models, with the function name
        self.softsign: list[tuple[cst.Call, Segment, cst.CSTNode]] = []
        self._described: dict[str, ModelDescription | None] = {}
        for segment in segments:
            for statement in segment.module.body:
                if type(statement) is cst.ClassDef:
                    self.classes.setdefault(statement.name.value, (statement, segment))
                elif type(statement) is cst.FunctionDef:
                    self.functions.setdefault(statement.name.value, (statement, segment))
        self.module_classes = self._find_module_classes()
        for name in self.classes:
            if name in self.module_classes:
                self.describe_class(name)
        self._scan_outside_models(segments)

    # which classes are modules ------------------------------------------------------------

    def _find_module_classes(self) -> set[str]:
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, (node, _) in self.classes.items():
                if name in found:
                    continue
                for base in node.bases:
                    text = dotted(base.value) or ""
                    qualified = self.imports.resolve(text) or text
                    last = qualified.rsplit(".", 1)[-1]
                    is_torch = qualified.startswith(("torch.", "pytorch_lightning.", "lightning.")) or qualified == last
                    if (last in MODULE_BASES and is_torch) or last in found:
                        found.add(name)
                        changed = True
                        break
        return found

    def qualified(self, node: cst.BaseExpression) -> str:
        text = dotted(node) or ""
        return self.imports.resolve(text) or text

    def torch_name(self, node: cst.BaseExpression) -> str | None:
        """`nn.Linear` -> `Linear` when it is torch's (or imported from torch), else None."""
        qualified = self.qualified(node)
        if not qualified:
            return None
        last = qualified.rsplit(".", 1)[-1]
        if qualified.startswith("torch.") or qualified == last and last not in self.classes:
            return last
        return None

    # classes ------------------------------------------------------------------------------

    def describe_class(self, name: str) -> ModelDescription | None:
        if name in self._described:
            return self._described[name]
        self._described[name] = None  # recursion guard
        node, segment = self.classes[name]
        description = ModelDescription(name, "module", node, segment, node)
        builder = _ClassBuilder(self, description, node, segment)
        builder.build()
        self._described[name] = description
        self.models.append(description)
        return description

    def _scan_outside_models(self, segments: list[Segment]) -> None:
        """`nn.Sequential(...)` outside classes, init calls in free functions, Softsign anywhere."""
        if self.text is not None and not any(m in self.text for m in ("oftsign", "Sequential", "init", "normal_", "uniform_", "fill_")):
            return  # nothing to find: skip the walk
        for segment in segments:
            for statement in segment.module.body:
                self._scan_statement(statement, segment, None)

    def _scan_statement(self, statement: cst.CSTNode, segment: Segment, function: str | None) -> None:
        if type(statement) is cst.ClassDef:
            for call, anchor in _calls_with_statements(statement):
                self._note_softsign(call, segment, anchor)
            return
        if type(statement) is cst.FunctionDef:
            rescaled = _rescaled_targets(statement)
            for call, anchor in _calls_with_statements(statement.body):
                self._note_softsign(call, segment, anchor)
                init = _init_from_call(self, call, {}, segment, anchor)
                if init is not None and init[0] not in rescaled and init[1].method != "scale":
                    self.free_inits.append((init[1], statement.name.value))
                if self.torch_name(call.func) == "Sequential":
                    self._describe_sequential(call, segment, anchor)
            return
        for call, anchor in _calls_with_statements(statement):
            self._note_softsign(call, segment, anchor)
            if self.torch_name(call.func) == "Sequential":
                self._describe_sequential(call, segment, anchor)

    def _note_softsign(self, call: cst.Call, segment: Segment, anchor: cst.CSTNode) -> None:
        name = self.torch_name(call.func)
        if name in ("Softsign", "softsign"):
            self.softsign.append((call, segment, anchor))

    def _describe_sequential(self, call: cst.Call, segment: Segment, anchor: cst.CSTNode) -> None:
        for model in self.models:  # nested inside another top-level Sequential
            if model.kind == "sequential" and _contains(model.node, call):
                return
        description = ModelDescription("nn.Sequential", "sequential", call, segment, anchor)
        builder = _ClassBuilder(self, description, None, segment)
        layer = builder.layer_from(call, "seq", dict(self.constants), {}, anchor)
        if layer is not None:
            description.layers["seq"] = layer
            description.path = [Op("input", name="x")] + builder.apply_layer(layer, 0)
            description.inputs = ["x"]
        self.models.append(description)


def _rescaled_targets(function: cst.FunctionDef) -> set[str]:
    """Tensors a function rescales after initialising them (`w.data *= 1 / norm`, `w.mul_(k)`):
    their final scale is not the init's."""
    found: set[str] = set()
    for call, _ in iter_calls(function.body):
        if type(call.func) is cst.Attribute and call.func.attr.value in ("mul_", "div_"):
            text = receiver_text(call.func.value) or ""
            found.add(text.removesuffix(".data"))
    for small in _statements(function.body):
        if type(small) is cst.AugAssign and type(small.operator) in (cst.MultiplyAssign, cst.DivideAssign):
            found.add((receiver_text(small.target) or "").removesuffix(".data"))
    return found


def _contains(outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    return any(call is inner for call, _ in iter_calls(outer))


def _statements(node: cst.CSTNode):
    """Every small and compound statement under `node`, in source order (a compound one
    before its bodies)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is cst.SimpleStatementLine:
            yield from current.body
        elif isinstance(current, cst.BaseSmallStatement):
            yield current
        elif isinstance(current, cst.BaseSuite):
            stack.extend(reversed(current.body))
        elif isinstance(current, cst.BaseCompoundStatement):
            yield current
            inner = []
            for part in ("body", "orelse", "finalbody"):
                child = getattr(current, part, None)
                if child is not None:
                    inner.append(child.body if type(child) in (cst.Else, cst.Finally) else child)
            inner.extend(handler.body for handler in getattr(current, "handlers", ()))
            inner.extend(case.body for case in getattr(current, "cases", ()))
            stack.extend(reversed(inner))


def _calls_with_statements(node: cst.CSTNode):
    """(call, the statement holding it) for every call under `node`; calls in a compound
    statement's header (`if`, `for`, `while`, `with`, `match`) belong to that statement."""
    for statement in _statements(node):
        if isinstance(statement, cst.BaseSmallStatement):
            headers = [statement]
        else:
            headers = [getattr(statement, name, None) for name in ("test", "iter", "subject")]
            if type(statement) is cst.With:
                headers.extend(item.item for item in statement.items)
        for header in headers:
            if header is not None:
                for call, _ in iter_calls(header):
                    yield call, statement


def _init_from_call(analysis: ModelAnalysis, call: cst.Call, env: dict[str, Any], segment: Segment,
                    anchor: cst.CSTNode) -> tuple[str, Init] | None:
    """(`self.fc.weight` target text, Init) for `nn.init.normal_(self.fc.weight, std=1)`,
    `self.fc.weight.data.normal_()`, `w.uniform_(-a, a)`, `w.data.mul_(0.1)`; else None."""
    func = call.func
    qualified = analysis.qualified(func)
    last = qualified.rsplit(".", 1)[-1] if qualified else ""
    if last in INIT_FUNCTIONS and ("init" in qualified.split(".") or qualified == last) and call.args:
        target = receiver_text(call.args[0].value)
        if target is None:
            return None
        method = last.rstrip("_")
        names = {
            "normal": ("mean", "std"), "trunc_normal": ("mean", "std", "a", "b"), "uniform": ("a", "b"),
            "orthogonal": ("gain",), "xavier_normal": ("gain",), "xavier_uniform": ("gain",),
            "kaiming_normal": ("a", "mode", "nonlinearity"), "kaiming_uniform": ("a", "mode", "nonlinearity"),
            "constant": ("val",), "sparse": ("sparsity", "std"),
        }.get(method, ())
        rest = cst.Call(func=call.func, args=call.args[1:])
        params = _call_args(rest, names, env)
        if method == "constant":
            value = params.get("val", UNKNOWN)
            method = "constant_zero" if value == 0 else "constant"
        return target, Init(method, _target_kind(target), params, call, segment, anchor)
    if type(func) is cst.Attribute and func.attr.value in TENSOR_INIT_METHODS:
        owner = receiver_text(func.value)
        if owner is None:
            return None
        target = owner[:-5] if owner.endswith(".data") else owner
        kind = _target_kind(target)
        method = func.attr.value
        if method == "normal_":
            params = _call_args(call, ("mean", "std"), env)
            params.setdefault("std", 1.0)
            return target, Init("normal", kind, params, call, segment, anchor)
        if method == "uniform_":
            params = _call_args(call, ("a", "b"), env)
            params = {"a": params.get("a", 0.0), "b": params.get("b", 1.0)}
            return target, Init("uniform", kind, params, call, segment, anchor)
        if method == "fill_":
            value = _call_args(call, ("val",), env).get("val", UNKNOWN)
            return target, Init("constant_zero" if value == 0 else "constant", kind, {"val": value}, call, segment, anchor)
        if method == "zero_":
            return target, Init("constant_zero", kind, {}, call, segment, anchor)
        if method == "mul_":
            factor = _call_args(call, ("factor",), env).get("factor", UNKNOWN)
            return target, Init("scale", kind, {"factor": factor}, call, segment, anchor)
    return None


def _target_kind(target: str) -> str:
    """weight | bias | param (a tensor that may be a weight: `self.W_hh`)."""
    last = target.rsplit(".", 1)[-1]
    if last.startswith("weight"):
        return "weight"
    if last.startswith("bias") or last == "b":
        return "bias"
    return "param"


class _ClassBuilder:
    """Reads one class: `__init__` for layers and inits, `forward` for the data path."""

    def __init__(self, analysis: ModelAnalysis, description: ModelDescription, node: cst.ClassDef | None,
                 segment: Segment) -> None:
        self.analysis = analysis
        self.description = description
        self.node = node
        self.segment = segment
        self.methods: dict[str, cst.FunctionDef] = {}
        if node is not None:
            for statement in node.body.body:
                if type(statement) is cst.FunctionDef:
                    self.methods[statement.name.value] = statement
        self.param_nodes: dict[str, cst.BaseExpression] = {}
        self.attribute_values: dict[str, cst.BaseExpression] = {}
        self.typed_inits: list[tuple[set[str], str, Init]] = []  # (layer kinds, attr of m, init)
        self._inlined: set[str] = set()
        self._depth = 0

    # __init__ -----------------------------------------------------------------------------

    def build(self) -> None:
        init = self.methods.get("__init__")
        env = dict(self.analysis.constants)
        if init is not None:
            params = init.params
            for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
                name = param.name.value
                if name == "self":
                    continue
                if param.default is not None:
                    self.param_nodes[name] = param.default
                    env[name] = evaluate(param.default, env)
                    self.description.init_params[name] = env[name]
                else:
                    env[name] = UNKNOWN
                    self.description.init_params[name] = UNKNOWN
                if name in BOUND_NAMES:
                    self.description.bound_hint = f"`{name}` argument"
            self.body(init.body.body, env, {}, 1)
        for kinds, attr, init_ in self.typed_inits:
            for layer in self.description.all_layers():
                if layer.kind in kinds or ("*" in kinds and layer.is_weight):
                    if _target_kind(attr) == init_.target:
                        layer.inits.append(init_)
        self.description.squashes_somewhere = self._squashes_anywhere()
        if self.node is not None and self.description.bound_hint is None:
            text = text_of(self.node)
            if "action_space.high" in text:
                self.description.bound_hint = "`action_space.high`"
        self.forward()

    def body(self, statements, env: dict[str, Any], lists: dict[str, list[Layer]], multiplicity: Any) -> None:
        for statement in statements:
            self.statement(statement, env, lists, multiplicity)

    def statement(self, statement, env, lists, multiplicity) -> None:
        if type(statement) is cst.SimpleStatementLine:
            for small in statement.body:
                self.small(small, env, lists, multiplicity)
        elif isinstance(statement, cst.BaseSmallStatement):
            self.small(statement, env, lists, multiplicity)
        elif type(statement) is cst.If:
            condition = evaluate(statement.test, env)
            orelse = statement.orelse
            other = [orelse] if type(orelse) is cst.If else (orelse.body.body if type(orelse) is cst.Else else [])
            if condition is UNKNOWN:  # both; the `if` branch wins (usually the feature that is on)
                self.body(other, env, lists, multiplicity)
                self.body(statement.body.body, env, lists, multiplicity)
            elif condition:
                self.body(statement.body.body, env, lists, multiplicity)
            else:
                self.body(other, env, lists, multiplicity)
        elif type(statement) is cst.For:
            count = self.loop_count(statement.iter, env)
            saved = {name: env.get(name, UNKNOWN) for name in target_names(statement.target)}
            for name in saved:
                env[name] = UNKNOWN
            if self._is_module_loop(statement):
                self.module_loop(statement, env, lists)
            else:
                # one pass of the body, then what it appended is repeated as a group, in order
                before = {name: len(items) for name, items in lists.items()}
                self.body(statement.body.body, env, lists, 1)
                for name, items in lists.items():
                    if name.startswith("<var>"):
                        continue
                    start = before.get(name, 0)
                    items[start:] = self._repeat_group(items[start:], count)
            env.update(saved)
        elif type(statement) in (cst.With, cst.Try):
            self.body(statement.body.body, env, lists, multiplicity)

    def loop_count(self, iterable: cst.BaseExpression, env: dict[str, Any]) -> Any:
        if type(iterable) is cst.Call and (dotted(iterable.func) or "") == "range":
            args = [evaluate(a.value, env) for a in iterable.args if a.keyword is None]
            if not all(known(a) and isinstance(a, int) for a in args) or not args:
                return UNKNOWN
            start, stop, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) > 2 else 1)
            return max(0, math.ceil((stop - start) / step)) if step else UNKNOWN
        if type(iterable) in (cst.List, cst.Tuple):
            return len(iterable.elements)
        if type(iterable) is cst.Name:
            value = env.get(iterable.value, UNKNOWN)
            if isinstance(value, (list, tuple)):
                return len(value)
        return UNKNOWN

    def _is_module_loop(self, statement: cst.For) -> bool:
        """`for m in self.modules():` with isinstance checks and init calls."""
        return type(statement.iter) is cst.Call and type(statement.iter.func) is cst.Attribute and \
            statement.iter.func.attr.value in ("modules", "children", "named_modules")

    def module_loop(self, statement: cst.For, env, lists) -> None:
        names = target_names(statement.target)
        variable = names[-1] if names else None
        self._typed_init_block(statement.body.body, variable, env, {"*"})

    def _typed_init_block(self, statements, variable: str | None, env, kinds: set[str]) -> None:
        """Init calls on `m.weight` under `isinstance(m, nn.Linear)` checks."""
        for statement in statements:
            if type(statement) is cst.If:
                # an `isinstance(m, nn.Linear)` test narrows the layers; any other test
                # (`classname.find("Linear")`) leaves them unknown: attach nowhere
                narrowed = self._isinstance_kinds(statement.test, variable)
                self._typed_init_block(statement.body.body, variable, env, narrowed or {"?"})
                orelse = statement.orelse
                if type(orelse) is cst.If:
                    self._typed_init_block([orelse], variable, env, kinds)
                elif type(orelse) is cst.Else:
                    self._typed_init_block(orelse.body.body, variable, env, kinds)
            elif type(statement) is cst.SimpleStatementLine:
                for small in statement.body:
                    if type(small) is cst.AugAssign and variable:  # `m.weight.data *= scale`
                        target = receiver_text(small.target) or ""
                        if target.split(".")[0] == variable and type(small.operator) in (cst.MultiplyAssign, cst.DivideAssign):
                            factor = evaluate(small.value, env)
                            if known(factor) and type(small.operator) is cst.DivideAssign:
                                factor = 1 / factor
                            attr = target.split(".", 1)[1].removesuffix(".data") if "." in target else ""
                            self.typed_inits.append((kinds, attr, Init("scale", _target_kind(attr), {"factor": factor})))
                        continue
                    for call, _ in iter_calls(small):
                        found = _init_from_call(self.analysis, call, env, self.segment, small)
                        if found and variable and found[0].split(".")[0] == variable:
                            attr = found[0].split(".", 1)[1] if "." in found[0] else ""
                            self.typed_inits.append((kinds, attr, found[1]))
            elif type(statement) in (cst.For, cst.With):
                self._typed_init_block(statement.body.body, variable, env, kinds)

    def _isinstance_kinds(self, test: cst.BaseExpression, variable: str | None) -> set[str] | None:
        for call, _ in iter_calls(test):
            if dotted(call.func) == "isinstance" and len(call.args) == 2:
                if receiver_text(call.args[0].value) != variable:
                    continue
                types = call.args[1].value
                elements = [e.value for e in types.elements] if type(types) is cst.Tuple else [types]
                kinds = {self.analysis.torch_name(e) or dotted(e) or "" for e in elements}
                return {k for k in kinds if k}
        return None

    def small(self, small, env, lists, multiplicity) -> None:
        if type(small) is cst.Assign:
            for target in small.targets:
                self.assign(target.target, small.value, env, lists, multiplicity, small)
        elif type(small) is cst.AnnAssign and small.value is not None:
            self.assign(small.target, small.value, env, lists, multiplicity, small)
        elif type(small) is cst.AugAssign and type(small.target) is cst.Name:
            name = small.target.value
            if name in lists and type(small.operator) is cst.AddAssign:
                lists[name].extend(self.list_items(small.value, env, lists, multiplicity, small))
            elif type(small.operator) is cst.AddAssign:
                value = evaluate(small.value, env)
                env[name] = env.get(name, UNKNOWN) + value if known(env.get(name)) and known(value) else UNKNOWN
        elif type(small) is cst.Expr and type(small.value) is cst.Call:
            self.call_statement(small.value, env, lists, multiplicity, small)

    def assign(self, target, value, env, lists, multiplicity, statement) -> None:
        if type(target) is cst.Attribute and type(target.value) is cst.Name and target.value.value == "self":
            attr = target.attr.value
            self.attribute_values[attr] = value
            if attr in BOUND_NAMES or any(b in attr for b in ("max_action", "action_bound", "action_scale")):
                self.description.bound = f"self.{attr}"
                self.description.bound_hint = self.description.bound_hint or f"`self.{attr}`"
            layer = self.layer_from(value, attr, env, lists, statement)
            if layer is not None:
                self.description.layers[attr] = layer
            return
        if type(target) is cst.Name:
            name = target.value
            if type(value) in (cst.List, cst.Tuple) and not value.elements or (
                type(value) is cst.Call and dotted(value.func) == "list" and not value.args
            ):
                lists[name] = []
                return
            if type(value) in (cst.List, cst.ListComp) and name not in env:
                items = self.list_items(value, env, lists, multiplicity, statement)
                if items:
                    lists[name] = items
                    return
            layer = self.layer_from(value, name, env, lists, statement)
            if layer is not None and layer.category != "other":
                lists.setdefault(f"<var>{name}", []).clear()
                lists[f"<var>{name}"].append(layer)
                return
            env[name] = evaluate(value, env)

    def call_statement(self, call: cst.Call, env, lists, multiplicity, statement) -> None:
        func = call.func
        if type(func) is cst.Attribute and type(func.value) is cst.Name:
            owner, method = func.value.value, func.attr.value
            if owner in lists and method in ("append", "extend", "insert"):
                argument = call.args[-1].value if call.args else None
                if argument is not None:
                    if method == "extend":
                        lists[owner].extend(self.list_items(argument, env, lists, multiplicity, statement))
                    else:
                        layer = self.layer_from(argument, f"{owner}[]", env, lists, statement)
                        if layer is not None:
                            lists[owner].extend(self._repeat(layer, multiplicity))
                return
            if owner == "self" and method == "apply" and call.args:
                self.apply_function(call.args[0].value, env)
                return
            if owner == "self" and method in self.methods and method not in self._inlined and method != "forward":
                self._inlined.add(method)  # `self.reset_parameters()`
                self.body(self.methods[method].body.body, env, lists, multiplicity)
                return
        if type(func) is cst.Attribute and func.attr.value == "add_module" and len(call.args) == 2:
            name = evaluate(call.args[0].value, env)
            layer = self.layer_from(call.args[1].value, str(name), env, lists, statement)
            if layer is not None and isinstance(name, str):
                self.description.layers[name] = layer
            return
        found = _init_from_call(self.analysis, call, env, self.segment, statement)
        if found is not None:
            self.attach_init(found[0], found[1], lists)

    def attach_init(self, target: str, init: Init, lists) -> None:
        parts = target.split(".")
        if parts[0] == "self" and len(parts) >= 3:
            layer = self.description.layers.get(parts[1])
            if layer is not None:
                layer.inits.append(init)
                return
        if len(parts) == 2 and f"<var>{parts[0]}" in lists:  # `layer = nn.Linear(); init(layer.weight)`
            for layer in lists[f"<var>{parts[0]}"]:
                layer.inits.append(init)
            return
        if parts[0] == "self" and len(parts) == 2 and parts[1] in self.description.layers:
            layer = self.description.layers[parts[1]]  # `nn.init.orthogonal_(self.W_hh)`: a Parameter
            if layer.kind == "Parameter" and init.target == "param":
                init.target = "weight"
                layer.category = "param" if known(layer.fan_in) or layer.category == "param" else layer.category
            layer.inits.append(init)
            return
        self.analysis.free_inits.append((init, self.description.name))

    def apply_function(self, function: cst.BaseExpression, env) -> None:
        """`self.apply(self._init_weights)` / `self.apply(weights_init)`."""
        text = dotted(function) or ""
        node: cst.FunctionDef | None = None
        if text.startswith("self.") and text[5:] in self.methods:
            node = self.methods[text[5:]]
        elif text in self.analysis.functions:
            node = self.analysis.functions[text][0]
        if node is None:
            return
        params = [p.name.value for p in node.params.params if p.name.value != "self"]
        if params:
            self._typed_init_block(node.body.body, params[0], dict(self.analysis.constants), {"*"})

    def _repeat_group(self, group: list[Layer], multiplicity: Any) -> list[Layer]:
        if known(multiplicity) and isinstance(multiplicity, int) and multiplicity * len(group) <= 512:
            if multiplicity == 1:
                return group
            return [_copy_layer(layer, layer.name) for _ in range(multiplicity) for layer in group]
        result = [_copy_layer(layer, layer.name) for layer in group]
        for layer in result:
            layer.count_known = False
        return result

    def _repeat(self, layer: Layer, multiplicity: Any) -> list[Layer]:
        if known(multiplicity) and isinstance(multiplicity, int) and multiplicity <= 256:
            if multiplicity == 1:
                return [layer]
            return [_copy_layer(layer, layer.name) for _ in range(multiplicity)]
        unknown = _copy_layer(layer, layer.name)
        unknown.count_known = False
        return [unknown]

    def list_items(self, value, env, lists, multiplicity, statement) -> list[Layer]:
        """Layers a list expression holds: literals, `*other`, comprehensions over range(n)."""
        if type(value) is cst.Name and value.value in lists:
            return list(lists[value.value])
        if type(value) in (cst.List, cst.Tuple):
            group: list[Layer] = []  # one pass of the loop, repeated as a whole, in order
            for element in value.elements:
                if type(element) is cst.StarredElement:
                    group.extend(self.list_items(element.value, env, lists, 1, statement))
                    continue
                layer = self.layer_from(element.value, "item", env, lists, statement)
                if layer is not None:
                    group.append(layer)
            return self._repeat_group(group, multiplicity)
        if type(value) in (cst.ListComp, cst.GeneratorExp):
            count = self.loop_count(value.for_in.iter, env)
            inner = multiplicity * count if known(count) and known(multiplicity) else UNKNOWN
            if value.for_in.inner_for_in is not None:
                inner = UNKNOWN
            local = dict(env)
            for name in target_names(value.for_in.target):
                local[name] = UNKNOWN
            layer = self.layer_from(value.elt, "item", local, lists, statement)
            return self._repeat(layer, inner) if layer is not None else []
        if type(value) is cst.BinaryOperation and type(value.operator) is cst.Add:  # [a] + [b for ...]
            return (self.list_items(value.left, env, lists, multiplicity, statement)
                    + self.list_items(value.right, env, lists, multiplicity, statement))
        if type(value) is cst.BinaryOperation and type(value.operator) is cst.Multiply:
            count = evaluate(value.right, env)
            items = self.list_items(value.left, env, lists, multiplicity, statement)
            if known(count) and isinstance(count, int):
                return [_copy_layer(item, item.name) for _ in range(count) for item in items]
        return []

    def layer_from(self, value, name: str, env, lists, statement) -> Layer | None:
        """What an expression in `__init__` builds, as a Layer (None if it is not a module)."""
        if type(value) is cst.Name:
            if f"<var>{value.value}" in lists and lists[f"<var>{value.value}"]:
                return lists[f"<var>{value.value}"][0]
            default = self.param_nodes.get(value.value)
            if default is not None and default is not value:
                return self.layer_from(default, name, env, lists, statement)
            return None
        if type(value) is cst.IfExp:  # `nn.Linear(w, w) if i not in skips else nn.Linear(w + c, w)`
            return self.layer_from(value.body, name, env, lists, statement)
        if type(value) is cst.Lambda:
            body = value.body
            params = [p.name.value for p in value.params.params]
            if type(body) is cst.Name and params and body.value == params[0]:
                return Layer(name, "Identity", "identity")
            return None
        if type(value) in (cst.Attribute,):
            text = self.analysis.qualified(value)
            last = text.rsplit(".", 1)[-1]
            if last in FUNCTIONAL_ACTIVATIONS and text.startswith("torch"):
                return Layer(name, last, "activation", activation=_activation_name(last))
            return None
        if type(value) is not cst.Call:
            return None
        kind = self.analysis.torch_name(value.func)
        anchor = statement
        if kind in WEIGHT_LAYERS:
            return self.weight_layer(kind, value, name, env, anchor)
        if kind in NORM_LAYERS:
            return Layer(name, kind, "norm", call=value, segment=self.segment, anchor=anchor)
        if kind in ACTIVATION_MODULES:
            return Layer(name, kind, "activation", activation=ACTIVATION_MODULES[kind], call=value,
                         segment=self.segment, anchor=anchor)
        if kind in IDENTITY_LAYERS:
            return Layer(name, kind, "identity", call=value, segment=self.segment, anchor=anchor)
        if kind in RECURRENT_LAYERS:
            args = _call_args(value, ("input_size", "hidden_size", "num_layers", "nonlinearity"), env)
            if kind in ("RNN", "RNNCell") and "nonlinearity" not in args:
                args["nonlinearity"] = "tanh"
            return Layer(name, kind, "recurrent", args=args, fan_in=args.get("input_size", UNKNOWN),
                         call=value, segment=self.segment, anchor=anchor)
        if kind == "Parameter" and value.args:
            return self.parameter(value, name, env, anchor)
        if kind == "Sequential":
            children: list[Layer] = []
            for i, arg in enumerate(value.args):
                if arg.star:
                    children.extend(self.list_items(arg.value, env, lists, 1, statement))
                    continue
                if arg.keyword is not None:
                    continue
                child = self.layer_from(arg.value, f"{name}.{i}", env, lists, statement)
                if child is not None:
                    children.append(child)
                else:
                    children.append(Layer(f"{name}.{i}", "?", "other"))
            return Layer(name, "Sequential", "container", children=_named(children, name), call=value,
                         segment=self.segment, anchor=anchor)
        if kind in ("ModuleList", "ParameterList"):
            children = self.list_items(value.args[0].value, env, lists, 1, statement) if value.args else []
            return Layer(name, kind, "container", children=_named(children, name), call=value,
                         segment=self.segment, anchor=anchor)
        if kind in ("weight_norm", "spectral_norm") and value.args:
            inner = self.layer_from(value.args[0].value, name, env, lists, statement)
            if inner is not None:
                inner.normalized = True
            return inner
        qualified = self.analysis.qualified(value.func)
        last = qualified.rsplit(".", 1)[-1] if qualified else ""
        if last in self.analysis.module_classes:
            return Layer(name, last, "module", call=value, segment=self.segment, anchor=anchor)
        if last in self.analysis.functions and value.args:  # `layer_init(nn.Linear(...), std=0.01)`
            return self.helper_layer(last, value, name, env, lists, statement)
        return Layer(name, last or "?", "other", call=value, segment=self.segment, anchor=anchor)

    def weight_layer(self, kind: str, call: cst.Call, name: str, env, anchor) -> Layer:
        if kind in ("Linear", "LazyLinear", "Bilinear"):
            names = ("out_features",) if kind == "LazyLinear" else (
                ("in1_features", "in2_features", "out_features") if kind == "Bilinear" else ("in_features", "out_features"))
            args = _call_args(call, names, env)
            fan_in = args.get("in_features", args.get("in1_features", UNKNOWN))
            fan_out = args.get("out_features", UNKNOWN)
        else:
            dims = int(kind[-2]) if kind[-2].isdigit() else 2
            names = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
            if kind.startswith("Lazy"):
                names = names[1:]
            args = _call_args(call, names, env)
            groups = args.get("groups", 1)
            kernel = _prod(args.get("kernel_size", UNKNOWN), dims)
            channels_in, channels_out = args.get("in_channels", UNKNOWN), args.get("out_channels", UNKNOWN)
            if "Transpose" in kind:
                channels_in, channels_out = channels_out, channels_in
            fan_in = channels_in / groups * kernel if known(channels_in) and known(kernel) and known(groups) else UNKNOWN
            fan_out = channels_out / groups * kernel if known(channels_out) and known(kernel) and known(groups) else UNKNOWN
            if isinstance(fan_in, float) and fan_in.is_integer():
                fan_in = int(fan_in)
            if isinstance(fan_out, float) and fan_out.is_integer():
                fan_out = int(fan_out)
        shown = {k: v for k, v in args.items() if k in names}
        return Layer(name, kind, "weight", fan_in=fan_in, fan_out=fan_out, args=shown, call=call,
                     segment=self.segment, anchor=anchor)

    def parameter(self, call: cst.Call, name: str, env, anchor) -> Layer | None:
        """`nn.Parameter(torch.randn(n, m) / math.sqrt(n))` -> a weight with an init."""
        value = call.args[0].value
        factor: Any = 1.0
        while type(value) is cst.BinaryOperation and type(value.operator) in (cst.Multiply, cst.Divide):
            scale = evaluate(value.right, env)
            if type(value.right) is cst.Call and type(value.left) in (cst.Integer, cst.Float):
                scale, value_next = evaluate(value.left, env), value.right
                value = value_next
                factor = factor * scale if known(scale) else UNKNOWN
                continue
            if not known(scale):
                factor = UNKNOWN
            else:
                factor = factor * scale if type(value.operator) is cst.Multiply else factor / scale
            value = value.left
        if type(value) is not cst.Call:
            return None
        creator = (self.analysis.qualified(value.func) or "").rsplit(".", 1)[-1]
        shape = [evaluate(a.value, env) for a in value.args if a.keyword is None]
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = list(shape[0])
        if creator in ("zeros", "ones", "empty", "zeros_like", "ones_like", "tensor", "FloatTensor", "Tensor") or len(shape) < 2:
            layer = Layer(name, "Parameter", "other", call=call, segment=self.segment, anchor=anchor)
            if len(shape) == 2 and creator in ("empty", "Tensor", "FloatTensor"):
                layer.category = "param"
                layer.fan_in = min(s for s in shape) if all(known(s) for s in shape) else UNKNOWN
            return layer
        fan_in = min(shape) if all(known(s) and isinstance(s, (int, float)) for s in shape) else UNKNOWN
        layer = Layer(name, "Parameter", "param", fan_in=fan_in, fan_out=fan_in,
                      args={"shape": tuple(shape)}, call=call, segment=self.segment, anchor=anchor)
        if creator in ("randn", "randn_like", "normal"):
            std = factor if known(factor) else UNKNOWN
            layer.inits.append(Init("randn", "weight", {"std": abs(std) if known(std) else UNKNOWN}, value,
                                    self.segment, anchor))
        return layer

    def helper_layer(self, function: str, call: cst.Call, name: str, env, lists, statement) -> Layer | None:
        """An in-file function that initialises a layer and returns it (`layer_init`)."""
        node, _ = self.analysis.functions[function]
        params = [p for p in node.params.params]
        if not params:
            return None
        inner = self.layer_from(call.args[0].value, name, env, lists, statement)
        if inner is None:
            return None
        local = dict(self.analysis.constants)
        for position, param in enumerate(params):
            argument = _arg_node(call, param.name.value, position)
            if argument is not None:
                local[param.name.value] = evaluate(argument, env)
            elif param.default is not None:
                local[param.name.value] = evaluate(param.default, local)
        layer_param = params[0].name.value
        for call_, anchor in _calls_with_statements(node.body):
            found = _init_from_call(self.analysis, call_, local, self.segment, statement)
            if found and found[0].split(".")[0] == layer_param:
                inner.inits.append(found[1])
        return inner

    def _squashes_anywhere(self) -> bool:
        if self.node is None:
            return False
        for call, _ in iter_calls(self.node):
            name = (dotted(call.func) or "").rsplit(".", 1)[-1]
            qualified = self.analysis.torch_name(call.func)
            if name in ("tanh", "sigmoid", "clamp", "clip", "hardtanh") or qualified in ("Tanh", "Sigmoid", "Hardtanh"):
                return True
            if type(call.func) is cst.Attribute and call.func.attr.value in ("tanh", "sigmoid", "clamp", "clip"):
                return True
        return False

    # forward ------------------------------------------------------------------------------

    def forward(self) -> None:
        forward = self.methods.get("forward")
        if forward is None:
            return
        params = [p.name.value for p in forward.params.params if p.name.value != "self"]
        self.description.inputs = params
        env: dict[str, Any] = {p: (Op("input", name=p),) for p in params}
        self._returns: list[tuple[cst.Return, tuple | None]] = []
        self.run(forward.body.body, env, in_loop=False)
        self.description.returns = [(r, list(p) if p is not None else None) for r, p in self._returns]
        paths = [p for _, p in self._returns if p is not None]
        if paths:
            self.description.path = list(max(paths, key=len))

    def run(self, statements, env: dict[str, Any], in_loop: bool) -> None:
        for statement in statements:
            if type(statement) is cst.SimpleStatementLine:
                for small in statement.body:
                    self.run_small(small, env, in_loop)
            elif type(statement) is cst.If:
                first = dict(env)
                self.run(statement.body.body, first, in_loop)
                second = dict(env)
                orelse = statement.orelse
                if type(orelse) is cst.If:
                    self.run([orelse], second, in_loop)
                elif type(orelse) is cst.Else:
                    self.run(orelse.body.body, second, in_loop)
                for name in set(first) | set(second):
                    env[name] = _prefer(first.get(name), second.get(name))
            elif type(statement) is cst.For:
                self.run_for(statement, env)
            elif type(statement) is cst.While:
                self.run(statement.body.body, env, True)
            elif type(statement) in (cst.With, cst.Try):
                self.run(statement.body.body, env, in_loop)

    def run_small(self, small, env, in_loop: bool) -> None:
        if type(small) is cst.Return:
            if small.value is not None:
                value = small.value
                if type(value) is cst.Tuple and value.elements:
                    self.description.tuple_output = True
                    value = value.elements[0].value
                self._returns.append((small, self.evaluate(value, env)))
            return
        if type(small) in (cst.Assign, cst.AnnAssign, cst.AugAssign):
            value = small.value
            if value is None:
                return
            if type(small) is cst.AugAssign:
                value = cst.BinaryOperation(left=small.target, operator=_binary_for(small.operator), right=value)
                targets = [small.target]
            elif type(small) is cst.Assign:
                targets = [t.target for t in small.targets]
            else:
                targets = [small.target]
            path = self.evaluate(value, env)
            for target in targets:
                for name in target_names(target) or ([receiver_text(target)] if receiver_text(target) else []):
                    env[name] = path
                    if in_loop and name in set(iter_names(value)):
                        activation = self._outer_activation(value)
                        if activation and all(r.statement is not small for r in self.description.recurrences):
                            self.description.recurrences.append(Recurrence(name, activation, small, self.segment))

    def _outer_activation(self, value: cst.BaseExpression) -> str | None:
        if type(value) is cst.Call:
            name = self._activation_of_call(value)
            if name:
                return name
        return None

    def run_for(self, statement: cst.For, env) -> None:
        names = target_names(statement.target)
        elements = self.loop_elements(statement.iter, env)
        if elements is None or not names:  # a loop over time steps, or unknown: run the body once
            carried = self.evaluate(statement.iter, env)
            for name in names:
                env[name] = carried
            self.run(statement.body.body, env, True)
            return
        enumerated = type(statement.iter) is cst.Call and (dotted(statement.iter.func) or "") == "enumerate"
        for position, element in enumerate(elements[:256]):  # a loop over layers: unrolled, not a recurrence
            env[names[-1]] = element
            if len(names) > 1:
                env[names[0]] = _Index(position) if enumerated else UNKNOWN
            self.run(statement.body.body, env, False)

    def loop_elements(self, iterable, env) -> list | None:
        """The layers a `for` over a ModuleList/Sequential visits, or range indices."""
        if type(iterable) is cst.Call and (dotted(iterable.func) or "") == "enumerate" and iterable.args:
            return self.loop_elements(iterable.args[0].value, env)
        layer = self.layer_of(iterable)
        if layer is not None and layer.children is not None:
            if not all(child.count_known for child in layer.children):
                return None
            return [_LayerRef(child) for child in layer.children]
        if type(iterable) is cst.Call and (dotted(iterable.func) or "") == "range":
            count = _ClassBuilder.loop_count(self, iterable, {**self.analysis.constants, **self._numbers()})
            if known(count) and isinstance(count, int):
                return [_Index(i) for i in range(count)]
        return None

    def _numbers(self) -> dict[str, Any]:
        numbers = dict(self.description.init_params)
        for attr, value in self.attribute_values.items():
            resolved = evaluate(value, numbers)
            if known(resolved):
                numbers[f"self.{attr}"] = resolved
        return numbers

    def layer_of(self, node: cst.BaseExpression) -> Layer | None:
        if type(node) is cst.Attribute and type(node.value) is cst.Name and node.value.value == "self":
            return self.description.layers.get(node.attr.value)
        return None

    def evaluate(self, node: cst.BaseExpression, env: dict[str, Any]) -> tuple | None:
        """The data path an expression carries, or None if it carries none we can follow."""
        if type(node) is cst.Name:
            value = env.get(node.value)
            return value if isinstance(value, tuple) else None
        if type(node) in (cst.Subscript,):
            inner = self.evaluate(node.value, env)
            return inner
        if type(node) is cst.Attribute:
            if type(node.value) is cst.Name and node.value.value == "self":
                return None
            return self.evaluate(node.value, env)
        if type(node) is cst.BinaryOperation:
            return self.binary(node, env)
        if type(node) is cst.UnaryOperation:
            return self.evaluate(node.expression, env)
        if type(node) is cst.IfExp:
            return _prefer(self.evaluate(node.body, env), self.evaluate(node.orelse, env))
        if type(node) is cst.Call:
            return self.call(node, env)
        if type(node) in (cst.Tuple, cst.List) and node.elements:
            paths = [self.evaluate(e.value, env) for e in node.elements]
            known_paths = [p for p in paths if p]
            return max(known_paths, key=len) if known_paths else None
        return None

    def binary(self, node: cst.BinaryOperation, env) -> tuple | None:
        left, right = self.evaluate(node.left, env), self.evaluate(node.right, env)
        operator = node.operator
        if type(operator) is cst.MatrixMultiply:
            path = left or right
            weight = self._param_of(node.right) or self._param_of(node.left)
            if path is not None and weight is not None:
                return path + (Op("layer", weight),)
            return path + (Op("unknown", name="matmul"),) if path else None
        if left and right:
            if type(operator) is cst.Add or type(operator) is cst.Subtract:
                shorter, longer = sorted((left, right), key=len)
                if longer[: len(shorter)] == shorter:  # x + f(x): a skip connection
                    return longer[: len(shorter)] + (Op("residual"),)
                return longer + (Op("concat", name="add"),)
            return max(left, right, key=len) + (Op("concat", name="product"),)
        path = left or right
        if path is None:
            return None
        if type(operator) in (cst.Multiply, cst.Divide):
            other = node.right if left else node.left
            return path + (Op("scale", name=cst.Module([]).code_for_node(other)),)
        return path

    def _param_of(self, node: cst.BaseExpression) -> Layer | None:
        layer = self.layer_of(node)
        return layer if layer is not None and layer.category in ("param", "other") and layer.kind == "Parameter" else None

    def call(self, node: cst.Call, env) -> tuple | None:
        func = node.func
        first = next((a.value for a in node.args if a.keyword is None and not a.star), None)
        # a layer of the model: self.fc(x), self.layers[i](x), layer(x)
        layer = self.layer_of(func)
        if layer is None and type(func) is cst.Subscript:
            container = self.layer_of(func.value)
            if container is not None and container.children:
                index = func.slice[0].slice if func.slice else None
                if type(index) is cst.Index:
                    index = index.value
                position = self._index(index, env)
                if position is not None and -len(container.children) <= position < len(container.children):
                    layer = container.children[position]
        if layer is None and type(func) is cst.Name and isinstance(env.get(func.value), _LayerRef):
            layer = env[func.value].layer
        if layer is not None:
            path = self.evaluate(first, env) if first is not None else None
            if path is None:
                return None
            return path + tuple(self.apply_layer(layer, 0))
        # activations and pass-through in any spelling
        activation = self._activation_of_call(node)
        receiver = func.value if type(func) is cst.Attribute else None
        if activation:
            source = first if not _is_method_on_value(func, self.analysis) else receiver
            path = self.evaluate(source, env) if source is not None else None
            return path + (Op("act", name=activation),) if path else None
        name = (dotted(func) or "").rsplit(".", 1)[-1] if dotted(func) else (func.attr.value if type(func) is cst.Attribute else "")
        if name in PASS_THROUGH:
            if receiver is not None and not self.analysis.qualified(func).startswith("torch"):
                path = self.evaluate(receiver, env)
                if path is not None:
                    return path
            return self.evaluate(first, env) if first is not None else None
        qualified = self.analysis.qualified(func)
        if qualified.endswith(("normalize", "layer_norm", "batch_norm", "group_norm", "rms_norm")):
            path = self.evaluate(first, env) if first is not None else None
            return path + (Op("norm", name=name),) if path else None
        if name == "linear" and qualified.startswith("torch") and len(node.args) >= 2:
            path = self.evaluate(node.args[0].value, env)
            weight = self._param_of(node.args[1].value)
            if path is not None:
                return path + ((Op("layer", weight),) if weight is not None else (Op("unknown", name="linear"),))
        if name in MERGES and first is not None:
            if type(first) in (cst.List, cst.Tuple):
                path = self.evaluate(first, env)
            else:
                path = max((p for p in (self.evaluate(a.value, env) for a in node.args) if p), key=len, default=None)
            return path + (Op("concat", name=name),) if path else None
        # a method of this model: inline it
        if type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == "self":
            method = self.methods.get(func.attr.value)
            if method is not None and self._depth < 4:
                return self.inline_method(method, node, env)
        # anything else that consumes our data: unknown from here on
        for arg in node.args:
            path = self.evaluate(arg.value, env)
            if path is not None:
                return path + (Op("unknown", name=name or "call"),)
        if receiver is not None:
            path = self.evaluate(receiver, env)
            if path is not None:
                return path + (Op("unknown", name=name or "call"),)
        return None

    def inline_method(self, method: cst.FunctionDef, call: cst.Call, env) -> tuple | None:
        params = [p.name.value for p in method.params.params if p.name.value != "self"]
        local: dict[str, Any] = {}
        for position, param in enumerate(params):
            argument = _arg_node(call, param, position)
            local[param] = self.evaluate(argument, env) if argument is not None else None
        saved = self._returns
        self._returns = []
        self._depth += 1
        try:
            self.run(method.body.body, local, in_loop=False)
            paths = [p for _, p in self._returns if p is not None]
        finally:
            self._depth -= 1
            self._returns = saved
        return max(paths, key=len) if paths else None

    def _index(self, node, env) -> int | None:
        if node is None:
            return None
        if type(node) is cst.Name and isinstance(env.get(node.value), _Index):
            return env[node.value].value
        value = evaluate(node, {})
        return value if isinstance(value, int) else None

    def _activation_of_call(self, node: cst.Call) -> str | None:
        func = node.func
        layer = self.layer_of(func)
        if layer is not None and layer.category == "activation":
            return layer.activation
        qualified = self.analysis.qualified(func)
        last = qualified.rsplit(".", 1)[-1] if qualified else (func.attr.value if type(func) is cst.Attribute else "")
        if last in FUNCTIONAL_ACTIVATIONS and (qualified.startswith("torch") or _is_method_on_value(func, self.analysis)):
            return _activation_name(last)
        return None

    def apply_layer(self, layer: Layer, depth: int) -> list[Op]:
        """The ops one declared layer contributes to the data path."""
        if layer.category == "weight" or layer.category == "param":
            return [Op("layer", layer)]
        if layer.category == "norm":
            return [Op("norm", layer, name=layer.kind)]
        if layer.category == "activation":
            return [Op("act", layer, name=layer.activation or layer.kind)]
        if layer.category == "identity":
            return []
        if layer.category == "recurrent":
            return [Op("recurrent", layer, name=layer.kind)]
        if layer.category == "container":
            if not all(child.count_known for child in layer.children or []):
                return [Op("unknown", layer, name="repeat count unknown")]
            ops: list[Op] = []
            for child in layer.children or []:
                ops.extend(self.apply_layer(child, depth + 1))
            return ops
        if layer.category == "module" and depth < 6:
            inner = self.analysis.describe_class(layer.kind)
            if inner is not None and inner.path is not None:
                return [op for op in inner.path if op.kind != "input"]
        return [Op("unknown", layer, name=layer.kind)]


@dataclass(frozen=True)
class _LayerRef:
    layer: Layer


@dataclass(frozen=True)
class _Index:
    value: int


def _is_method_on_value(func: cst.BaseExpression, analysis: ModelAnalysis) -> bool:
    """`x.relu()` (a tensor method) rather than `F.relu(x)`."""
    if type(func) is not cst.Attribute:
        return False
    qualified = analysis.qualified(func)
    return not qualified.startswith("torch")


def _activation_name(name: str) -> str:
    name = name.rstrip("_")
    return {"clip": "clamp", "swish": "silu"}.get(name, name)


def _prefer(first: Any, second: Any) -> Any:
    """Merge two branches' paths: the one with more normalisation/skip connections, else the
    longer (so an optional LayerNorm is assumed on: the rules stay silent rather than guess)."""
    if not isinstance(first, tuple):
        return second if isinstance(second, tuple) else first
    if not isinstance(second, tuple):
        return first

    def safety(path: tuple) -> int:
        return sum(1 for op in path if op.kind in ("norm", "residual"))

    return max((first, second), key=lambda p: (safety(p), len(p)))


def _binary_for(operator: cst.BaseAugOp) -> cst.BaseBinaryOp:
    mapping = {
        cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract, cst.MultiplyAssign: cst.Multiply,
        cst.DivideAssign: cst.Divide, cst.MatrixMultiplyAssign: cst.MatrixMultiply,
    }
    return mapping.get(type(operator), cst.Add)()


def _named(children: list[Layer], container: str) -> list[Layer]:
    """Name the layers of a container by position, as `named_modules()` would (`net.3`)."""
    for index, child in enumerate(children):
        child.name = f"{container}.{index}"
    return children


def _copy_layer(layer: Layer, name: str) -> Layer:
    copy = Layer(layer.name if name is None else name, layer.kind, layer.category, layer.activation,
                 layer.fan_in, layer.fan_out, dict(layer.args), layer.call, layer.segment, layer.anchor,
                 list(layer.inits), layer.children, layer.count_known, layer.normalized)
    return copy
