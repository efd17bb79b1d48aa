"""Which tensors a model uses as a layer's weight. A Parameter is a weight when its methods use it
as the matrix operand of `x @ W`, `W @ x`, `torch.matmul`/`mm`/`bmm`, `F.linear(x, W)` or
`einsum` against activations; its fan-in is then read from that use (the contracted axes of its
shape), never from the shape alone. Parameters only added or concatenated to activations
(positional embeddings, cls/register/memory tokens) are not weights. A weight computed from
several tensors, `weight_mu + weight_sigma * weight_epsilon` (NoisyNet), becomes one derived
weight whose second moment is that of the sum."""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.description import Layer, ModelDescription
from gradlint.analysis.syntax import FUNCTIONS, dotted, ordered_arguments
from gradlint.analysis.values import UNKNOWN, evaluate, known

if TYPE_CHECKING:
    from gradlint.analysis.models.discovery import ModelAnalysis

_SEE_THROUGH_METHODS = {"to", "float", "double", "half", "contiguous", "clone", "detach", "unsqueeze", "expand",
                        "expand_as", "type_as", "cuda", "cpu"}
_TRANSPOSING = {"t", "transpose", "permute", "mT", "T"}
_MATMULS = {"matmul", "mm", "bmm"}
_WRAPPERS = {"Variable"}
_MAX_TERMS = 8


@dataclass(frozen=True)
class WeightUse:
    layer: Layer  # the Parameter, or the derived weight of several tensors
    operands: tuple[ast.expr, ...]  # the data operands of the operation


def find_weight_uses(analysis: "ModelAnalysis", description: ModelDescription,
                     methods: dict[str, Any]) -> dict[int, WeightUse]:
    """Scan every method but `__init__` for matrix products with a Parameter of the model;
    set the role and fan-in of those Parameters; map each such operation node's id to its use."""
    names = {name for name, layer in description.layers.items() if layer.kind == "Parameter" and layer.category == "param"}
    names |= {name for name, layer in description.layers.items() if layer.category == "container" and layer.children
              and all(child.kind == "Parameter" for child in layer.children)}
    if not names:
        return {}
    scanner = _Scanner(analysis, description)
    text = analysis.text
    for name, method in methods.items():
        if name == "__init__" or type(method) not in FUNCTIONS:
            continue
        start, end = analysis.offsets_of(method)
        if not any(text.find(f".{attr}", start, end) >= 0 for attr in names):
            continue  # the method reads none of the model's Parameters
        scanner.scan(method)
    return scanner.uses


class _Scanner:
    def __init__(self, analysis: "ModelAnalysis", description: ModelDescription) -> None:
        self.analysis = analysis
        self.description = description
        self.uses: dict[int, WeightUse] = {}
        self.derived: dict[str, Layer] = {layer.name: layer for layer in description.derived}
        self.aliases: dict[str, ast.expr] = {}

    def scan(self, method: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.aliases = {}
        for node in ast.walk(method):
            self.analysis.budget.spend()
            kind = type(node)
            if kind is ast.Assign and len(node.targets) == 1 and type(node.targets[0]) is ast.Name:  # type: ignore[attr-defined]
                self.aliases[node.targets[0].id] = node.value  # type: ignore[attr-defined]
            elif kind is ast.BinOp and type(node.op) is ast.MatMult:  # type: ignore[attr-defined]
                self.product(node, node.left, node.right)  # type: ignore[attr-defined]
            elif kind is ast.Call:
                self.call(node)  # type: ignore[arg-type]

    # operations ---------------------------------------------------------------------------

    def call(self, node: ast.Call) -> None:
        func = node.func
        qualified = self.analysis.symbols.qualified(func)
        name = qualified.rsplit(".", 1)[-1] if qualified else (func.attr if type(func) is ast.Attribute else "")
        arguments = [value for keyword, value, star in ordered_arguments(node) if keyword is None and not star]
        from_torch = qualified.startswith(("torch.", "einops."))
        if name in _MATMULS:
            if from_torch and len(arguments) >= 2:
                self.product(node, arguments[0], arguments[1])
            elif not from_torch and type(func) is ast.Attribute and arguments:  # x.matmul(W)
                self.product(node, func.value, arguments[0])
        elif name == "linear" and from_torch and len(arguments) >= 2:
            weight = self.weight(arguments[1])
            if weight is not None and self.weight(arguments[0]) is None:
                layer, transposed = weight
                self.use(node, layer, (-2,) if transposed else (-1,), (arguments[0],))
        elif name == "einsum" and from_torch:
            self.einsum(node, arguments)

    def product(self, node: ast.AST, left: ast.expr, right: ast.expr) -> None:
        """`left @ right`: a weight on the right contracts its rows, on the left its columns."""
        on_left, on_right = self.weight(left), self.weight(right)
        if (on_left is None) == (on_right is None) or _constant(left) or _constant(right):
            return  # no weight, or two (a product of parameters is no layer)
        if on_right is not None:
            layer, transposed = on_right
            self.use(node, layer, (-1,) if transposed else (-2,), (left,))
        else:
            layer, transposed = on_left  # type: ignore[misc]
            self.use(node, layer, (-2,) if transposed else (-1,), (right,))

    def einsum(self, node: ast.Call, arguments: list[ast.expr]) -> None:
        """`einsum('b h i j, h g -> b g i j', dots, W)` (torch) or `einsum(dots, W, '... -> ...')`
        (einops): W's fan-in is the product of its contracted axes."""
        if not arguments:
            return
        spec_node = arguments[0] if type(arguments[0]) is ast.Constant else arguments[-1]
        spec = spec_node.value if type(spec_node) is ast.Constant else None  # type: ignore[attr-defined]
        if not isinstance(spec, str) or "->" not in spec:
            return
        operands = [a for a in arguments if a is not spec_node]
        if len(operands) == 1 and type(operands[0]) in (ast.List, ast.Tuple):
            operands = list(operands[0].elts)  # type: ignore[attr-defined]
        inputs, output = spec.split("->", 1)
        specs = [_axes(part) for part in inputs.split(",")]
        if len(specs) != len(operands) or len(operands) < 2:
            return
        weights = [self.weight(operand) for operand in operands]
        found = [i for i, w in enumerate(weights) if w is not None]
        if len(found) != 1:
            return
        index = found[0]
        layer, transposed = weights[index]  # type: ignore[misc]
        axes = specs[index]
        if axes is None or transposed:
            self.use(node, layer, None, tuple(o for i, o in enumerate(operands) if i != index))
            return
        kept = set(_axes(output) or ())
        others = {axis for i, spec_axes in enumerate(specs) if i != index for axis in (spec_axes or ())}
        contracted = tuple(position - len(axes) for position, axis in enumerate(axes) if axis not in kept and axis in others)
        self.use(node, layer, contracted or None, tuple(o for i, o in enumerate(operands) if i != index))

    def use(self, node: ast.AST, layer: Layer, fan_axes: tuple[int, ...] | None, data: tuple[ast.expr, ...]) -> None:
        if id(node) in self.uses:
            return
        self.uses[id(node)] = WeightUse(layer, data)
        if layer.role == "weight" and layer.terms is None:
            return  # the first use decides the fan-in
        layer.role = "weight"
        shape = layer.args.get("shape") if layer.terms is None else _first_shape(layer)
        if fan_axes is None or not isinstance(shape, tuple) or len(shape) < 2:
            layer.fan_in = UNKNOWN
            return
        fan_in: Any = 1
        for axis in fan_axes:
            if not -len(shape) <= axis < len(shape) or not known(shape[axis]) or not isinstance(shape[axis], (int, float)):
                fan_in = UNKNOWN
                break
            fan_in *= shape[axis]
        layer.fan_in = fan_in
        layer.fan_axes = fan_axes

    # operands -------------------------------------------------------------------------------

    def weight(self, node: ast.expr, depth: int = 0) -> tuple[Layer, bool] | None:
        """The Parameter (or derived weight) an operand is, and whether it is transposed."""
        transposed = False
        while depth < 16:
            depth += 1
            kind = type(node)
            if kind is ast.Attribute:
                if node.attr in ("T", "mT"):  # type: ignore[attr-defined]
                    transposed = not transposed
                    node = node.value  # type: ignore[attr-defined]
                    continue
                if node.attr == "data":  # type: ignore[attr-defined]
                    node = node.value  # type: ignore[attr-defined]
                    continue
                if type(node.value) is ast.Name and node.value.id == "self":  # type: ignore[attr-defined]
                    layer = self.description.layers.get(node.attr)  # type: ignore[attr-defined]
                    if layer is not None and layer.kind == "Parameter" and layer.category == "param":
                        return layer, transposed
                return None
            if kind is ast.Subscript:  # `self.weights[i]` of a ParameterList
                container = node.value  # type: ignore[attr-defined]
                if type(container) is ast.Attribute and type(container.value) is ast.Name and container.value.id == "self":
                    layer = self.description.layers.get(container.attr)
                    children = layer.children if layer is not None else None
                    if children and all(c.kind == "Parameter" and c.category == "param" for c in children):
                        position = evaluate(node.slice, {})  # type: ignore[attr-defined]
                        child = children[position] if isinstance(position, int) and -len(children) <= position < len(children) else children[0]
                        return child, transposed
                return None
            if kind is ast.Call:
                func = node.func  # type: ignore[attr-defined]
                if type(func) is ast.Attribute and func.attr in _SEE_THROUGH_METHODS | _TRANSPOSING:
                    if func.attr in _TRANSPOSING:
                        transposed = not transposed
                    node = func.value
                    continue
                if type(func) is ast.Name and func.id in _WRAPPERS and node.args:  # type: ignore[attr-defined]
                    node = node.args[0]  # type: ignore[attr-defined]
                    continue
                return None
            if kind is ast.Name and node.id in self.aliases:  # type: ignore[attr-defined]
                alias = self.aliases.pop(node.id)  # type: ignore[attr-defined]
                try:
                    return self.weight(alias, depth)
                finally:
                    self.aliases[node.id] = alias  # type: ignore[attr-defined]
            if kind is ast.BinOp and type(node.op) in (ast.Add, ast.Mult):  # type: ignore[attr-defined]
                derived = self.composite(node)
                return (derived, transposed) if derived is not None else None
            return None
        return None

    def composite(self, node: ast.expr) -> Layer | None:
        """`self.weight_mu + self.weight_sigma * self.weight_epsilon` as one derived weight."""
        terms = self._terms(node)
        if terms is None or len(terms) < 2 and all(len(t) < 2 for t in terms):
            return None
        name = " + ".join(" * ".join(f.name for f in factors) for factors in terms)
        existing = self.derived.get(name)
        if existing is not None:
            return existing
        first = terms[0][0]
        layer = Layer(name, "Parameter", "param", args={"shape": first.args.get("shape")}, call=first.call,
                      anchor=first.anchor, terms=terms)
        self.derived[name] = layer
        self.description.derived.append(layer)
        return layer

    def _terms(self, node: ast.expr) -> list[list[Layer]] | None:
        kind = type(node)
        if kind is ast.BinOp and type(node.op) is ast.Add:  # type: ignore[attr-defined]
            left, right = self._terms(node.left), self._terms(node.right)  # type: ignore[attr-defined]
            return left + right if left is not None and right is not None and len(left) + len(right) <= _MAX_TERMS else None
        if kind is ast.Call and type(node.func) is ast.Attribute and node.func.attr in ("add", "mul") and len(node.args) == 1:  # type: ignore[attr-defined]
            fake = ast.BinOp(left=node.func.value, op=ast.Add() if node.func.attr == "add" else ast.Mult(), right=node.args[0])  # type: ignore[attr-defined]
            return self._terms(fake)
        factors = self._factors(node)
        return [factors] if factors is not None else None

    def _factors(self, node: ast.expr) -> list[Layer] | None:
        kind = type(node)
        if kind is ast.BinOp and type(node.op) is ast.Mult:  # type: ignore[attr-defined]
            left, right = self._factors(node.left), self._factors(node.right)  # type: ignore[attr-defined]
            return left + right if left is not None and right is not None else None
        if kind is ast.Call and type(node.func) is ast.Attribute and node.func.attr == "mul" and len(node.args) == 1:  # type: ignore[attr-defined]
            left, right = self._factors(node.func.value), self._factors(node.args[0])  # type: ignore[attr-defined]
            return left + right if left is not None and right is not None else None
        if kind is ast.Call and type(node.func) is ast.Name and node.func.id in _WRAPPERS and node.args:  # type: ignore[attr-defined]
            return self._factors(node.args[0])  # type: ignore[attr-defined]
        if kind is ast.Attribute and node.attr == "data":  # type: ignore[attr-defined]
            return self._factors(node.value)  # type: ignore[attr-defined]
        if kind is ast.Attribute and type(node.value) is ast.Name and node.value.id == "self":  # type: ignore[attr-defined]
            attr = node.attr  # type: ignore[attr-defined]
            layer = self.description.layers.get(attr)
            if layer is not None and layer.kind == "Parameter" and layer.category == "param":
                return [layer]
            buffer = self.description.buffers.get(attr)
            if buffer is not None:
                return [buffer]
        return None


def _axes(spec: str) -> list[str] | None:
    """The axis names of one einsum operand (`'b h i j'` or `'bhij'`); None with an ellipsis."""
    spec = spec.strip()
    if "..." in spec or "(" in spec:
        return None
    return spec.split() if any(ch.isspace() for ch in spec) else list(spec)


def _constant(node: ast.expr) -> bool:
    return type(node) is ast.Constant


def _first_shape(layer: Layer) -> Any:
    for factors in layer.terms or []:
        for factor in factors:
            shape = factor.args.get("shape")
            if isinstance(shape, tuple):
                return shape
    return None




_PROBES = (61, 3989)  # sizes substituted for unresolved constructor arguments
_MAX_ATTRIBUTE_DEPTH = 4


def probed_gain(analysis: "ModelAnalysis", description: ModelDescription, layer: Layer) -> Any:
    """He's c of a Parameter weight whose sizes come from constructor arguments that cancel out:
    `torch.randn(k, dim)` used as `queries @ x^T` and then scaled by `self.scale = dim ** -0.5`
    has c = 1/2 whatever `dim` is. The sizes, the creating factors and the scales that follow
    the weight are evaluated with the unresolved arguments set to two different sizes; c is
    known when both give the same value."""
    if layer.kind != "Parameter" or layer.terms is not None or not layer.fan_axes or not layer.shape_nodes:
        return UNKNOWN
    moment = layer.weight_variance()
    created = len(layer.inits) == 1 and layer.inits[0].method == "randn" and layer.inits[0].anchor is layer.anchor
    if not known(moment) and not created:
        return UNKNOWN
    results = []
    for probe in _PROBES:
        analysis.budget.spend()
        env = dict(analysis.constants)
        for name, value in description.init_params.items():
            env[name] = value if known(value) and isinstance(value, (int, float)) and not isinstance(value, bool) else probe

        def value_of(node: ast.expr) -> Any:
            return evaluate(_resolve_attributes(node, description.attributes), env)

        shape: list[Any] = []
        for node in layer.shape_nodes:
            value = value_of(node)
            shape.extend(value if isinstance(value, tuple) else (value,))
        fan: Any = 1
        for axis in layer.fan_axes:
            size = shape[axis] if -len(shape) <= axis < len(shape) else UNKNOWN
            fan = fan * size if known(size) and isinstance(size, (int, float)) else UNKNOWN
        variance: Any = moment if known(moment) else 1.0
        factors = [] if known(moment) else list(layer.factor_nodes)
        for node, divides in [*factors, *layer.scale_nodes]:
            factor = value_of(node) if node is not None else UNKNOWN
            if not known(factor) or not isinstance(factor, (int, float)) or (divides and not factor):
                return UNKNOWN
            variance = variance / factor**2 if divides else variance * factor**2
        if not known(fan):
            return UNKNOWN
        results.append(0.5 * fan * variance)
    first, second = results
    return first if abs(first - second) <= 1e-9 * max(abs(first), abs(second), 1e-12) else UNKNOWN


class _Attributes(ast.NodeTransformer):
    def __init__(self, attributes: dict[str, ast.expr], depth: int) -> None:
        self.attributes = attributes
        self.depth = depth

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if type(node.value) is ast.Name and node.value.id == "self" and node.attr in self.attributes \
                and self.depth < _MAX_ATTRIBUTE_DEPTH:
            return _resolve_attributes(self.attributes[node.attr], self.attributes, self.depth + 1)
        return self.generic_visit(node)


def _resolve_attributes(node: ast.expr, attributes: dict[str, ast.expr], depth: int = 0) -> ast.expr:
    """A copy of `node` with `self.x` replaced by what `__init__` assigned to it."""
    if not attributes or "self" not in {n.id for n in ast.walk(node) if type(n) is ast.Name}:
        return node
    return _Attributes(attributes, depth).visit(copy.deepcopy(node))


__all__ = ["WeightUse", "find_weight_uses", "probed_gain"]
