"""Values of expressions about one layer, read without running anything: `m.in_features`,
`layer.weight.data.size()[0]`, `nn.init._calculate_fan_in_and_fan_out(m.weight)`, and the
value an in-file helper returns when called on a layer (`hidden_init(self.fc1)` ->
`(-1/sqrt(256), 1/sqrt(256))`). Init code written for "whatever layer it is given" then
resolves per layer; what does not resolve stays UNKNOWN."""

from __future__ import annotations

import ast
import copy
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.description import Layer
from gradlint.analysis.syntax import FUNCTIONS, defaults, dotted, ordered_arguments
from gradlint.analysis.values import UNKNOWN, evaluate, known

if TYPE_CHECKING:
    from gradlint.analysis.models.discovery import ModelAnalysis

_SIZE_ATTRIBUTES = {
    "in_features": "in", "out_features": "out", "in_channels": "in_channels", "out_channels": "out_channels",
    "input_size": "in", "hidden_size": "out", "num_embeddings": "out", "embedding_dim": "in",
}
_MAX_HELPER_STATEMENTS = 64  # statements of a helper read before giving up
_MAX_HELPER_DEPTH = 3  # helpers calling helpers


def weight_shape(layer: Layer) -> tuple | None:
    """The shape of a layer's weight, as far as it resolves (None for an unknown layer kind)."""
    kind = layer.kind
    if kind in ("Linear", "LazyLinear"):
        return (layer.fan_out, layer.args.get("in_features", layer.fan_in))
    if kind.startswith(("Conv", "LazyConv")):
        out, into = layer.args.get("out_channels", UNKNOWN), layer.args.get("in_channels", UNKNOWN)
        groups = layer.args.get("groups", 1)
        dims = int(kind[-2]) if kind[-2].isdigit() else 2
        kernel = layer.args.get("kernel_size", UNKNOWN)
        kernel_dims = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,) * dims
        if "Transpose" in kind:  # (in, out / groups, *kernel)
            return (into, _per_group(out, groups), *kernel_dims)
        return (out, _per_group(into, groups), *kernel_dims)
    if kind == "Parameter":
        shape = layer.args.get("shape")
        return tuple(shape) if isinstance(shape, tuple) else None
    return None


def _per_group(channels: Any, groups: Any) -> Any:
    if isinstance(channels, int) and isinstance(groups, int) and groups > 0:
        return channels // groups
    return UNKNOWN


def _size(layer: Layer, attribute: str) -> Any:
    key = _SIZE_ATTRIBUTES[attribute]
    if key == "in":
        return layer.args.get("in_features", layer.fan_in if layer.kind in ("Linear", "LazyLinear") else UNKNOWN)
    if key == "out":
        return layer.args.get("out_features", layer.fan_out if layer.kind in ("Linear", "LazyLinear") else UNKNOWN)
    return layer.args.get(key, UNKNOWN)


class _Binder(ast.NodeTransformer):
    """Replaces the layer-size expressions of the bound names with their values."""

    def __init__(self, layers: dict[str, Layer]) -> None:
        self.layers = layers

    def _layer(self, node: ast.expr) -> Layer | None:
        return self.layers.get(node.id) if type(node) is ast.Name else None  # type: ignore[attr-defined]

    def _weight_of(self, node: ast.expr) -> Layer | None:
        """`m.weight` or `m.weight.data` -> m's layer."""
        if type(node) is ast.Attribute and node.attr == "data":  # type: ignore[attr-defined]
            node = node.value  # type: ignore[attr-defined]
        if type(node) is ast.Attribute and node.attr == "weight":  # type: ignore[attr-defined]
            return self._layer(node.value)  # type: ignore[attr-defined]
        return None

    @staticmethod
    def _constant(value: Any, like: ast.AST) -> ast.expr:
        if isinstance(value, tuple):
            node: ast.expr = ast.Tuple(elts=[_Binder._constant(v, like) for v in value], ctx=ast.Load())
        elif known(value) and isinstance(value, (int, float)):
            node = ast.Constant(value=value)
        else:
            node = ast.Name(id="<unknown>", ctx=ast.Load())
        return ast.copy_location(node, like)

    def _dim(self, layer: Layer, index: Any) -> Any:
        shape = weight_shape(layer)
        if shape is None or not isinstance(index, int) or not -len(shape) <= index < len(shape):
            return UNKNOWN
        return shape[index]

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        layer = self._layer(node.value)
        if layer is not None and node.attr in _SIZE_ATTRIBUTES:
            return self._constant(_size(layer, node.attr), node)
        return self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        value = node.value
        index = evaluate(node.slice, {})
        # m.weight.shape[k], m.weight.data.size()[k]
        if type(value) is ast.Attribute and value.attr == "shape":
            layer = self._weight_of(value.value)
            if layer is not None:
                return self._constant(self._dim(layer, index), node)
        if type(value) is ast.Call and type(value.func) is ast.Attribute and value.func.attr == "size" and not value.args:
            layer = self._weight_of(value.func.value)
            if layer is not None:
                return self._constant(self._dim(layer, index), node)
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if type(func) is ast.Attribute and func.attr == "size" and len(node.args) == 1:
            layer = self._weight_of(func.value)
            if layer is not None:
                return self._constant(self._dim(layer, evaluate(node.args[0], {})), node)
        if type(func) is ast.Attribute and func.attr in ("_calculate_fan_in_and_fan_out", "calculate_fan_in_and_fan_out") \
                and len(node.args) == 1:
            layer = self._weight_of(node.args[0])
            if layer is not None:
                return self._constant((layer.fan_in, layer.fan_out), node)
        return self.generic_visit(node)


class _Attributes(ast.NodeTransformer):
    """Replaces `self.x` chains whose value `env` holds (under "self.x") by that value."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        text = dotted(node)
        if text is not None and text in self.env:
            value = self.env[text]
            if isinstance(value, (int, float, str, bool, tuple)):
                return _Binder._constant(value, node) if not isinstance(value, (str, bool)) else \
                    ast.copy_location(ast.Constant(value=value), node)
        return self.generic_visit(node)


SELF_VALUES = "<self>"  # the key an environment holding `self.x` values is marked with


def evaluate_with_self(node: Any, env: dict[str, Any]) -> Any:
    """`evaluate`, reading `self.in_features` from an environment that holds the constructor's
    `self.x = ...` values (under "self.x")."""
    kind = type(node)
    if kind is not ast.Constant and kind is not ast.Name and env.get(SELF_VALUES) and isinstance(node, ast.expr) \
            and any(type(n) is ast.Attribute and type(n.value) is ast.Name and n.value.id == "self"  # type: ignore[attr-defined]
                    for n in ast.walk(node)):
        node = _Attributes(env).visit(copy.deepcopy(node))
    return evaluate(node, env)


def bind_layers(expression: ast.expr, layers: dict[str, Layer]) -> ast.expr:
    """A copy of `expression` with the size expressions of the names in `layers` replaced by
    their values (UNKNOWN ones by a name no environment holds)."""
    if not layers:
        return expression
    return _Binder(layers).visit(copy.deepcopy(expression))


def evaluate_bound(expression: ast.expr, env: dict[str, Any], layers: dict[str, Layer]) -> Any:
    return evaluate(bind_layers(expression, layers), env)


def straight_line_env(body: list[ast.stmt], env: dict[str, Any], layers: dict[str, Layer], budget,
                      stop: ast.AST | None = None) -> dict[str, Any]:
    """`env` plus the plain `name = expression` assignments of a body, in order, up to the
    statement `stop` (nested blocks are read in order too); tuple targets take tuple values."""
    local = dict(env)
    stack = list(reversed(body))
    read = 0
    while stack and read < _MAX_HELPER_STATEMENTS:
        statement = stack.pop()
        read += 1
        budget.spend()
        if statement is stop:
            break
        kind = type(statement)
        if kind is ast.Assign and len(statement.targets) == 1:  # type: ignore[attr-defined]
            _bind(statement.targets[0], evaluate_bound(statement.value, local, layers), local)  # type: ignore[attr-defined]
        elif kind in FUNCTIONS or kind is ast.ClassDef:
            continue
        else:
            for block in reversed(_blocks(statement)):
                stack.extend(reversed(block))
    return local


def _blocks(statement: ast.stmt) -> list[list[ast.stmt]]:
    from gradlint.analysis.syntax import bodies

    return bodies(statement)


def _bind(target: ast.expr, value: Any, env: dict[str, Any]) -> None:
    if type(target) is ast.Name:
        env[target.id] = value
    elif type(target) in (ast.Tuple, ast.List):
        elements = target.elts  # type: ignore[attr-defined]
        values = value if isinstance(value, tuple) and len(value) == len(elements) else (UNKNOWN,) * len(elements)
        for element, item in zip(elements, values):
            _bind(element, item, env)


def helper_value(analysis: "ModelAnalysis", call: ast.Call, env: dict[str, Any],
                 layer_of: Any, depth: int = 0) -> Any:
    """What an in-file function returns when called with these arguments, where its body is
    straight-line arithmetic on its parameters and the sizes of the layers it is given
    (`def hidden_init(layer): fan_in = layer.weight.data.size()[0]; lim = 1. / np.sqrt(fan_in);
    return (-lim, lim)`). `layer_of(expression)` says which layer an argument is (or None)."""
    if type(call.func) is not ast.Name or depth > _MAX_HELPER_DEPTH:
        return UNKNOWN
    function = analysis.symbols.functions.get(call.func.id)
    if function is None:
        return UNKNOWN
    analysis.budget.spend()
    params = [p.arg for p in [*function.args.posonlyargs, *function.args.args]]
    found = defaults(function)
    local: dict[str, Any] = dict(analysis.constants)
    layers: dict[str, Layer] = {}
    arguments = ordered_arguments(call)
    if any(star for _, _, star in arguments):
        return UNKNOWN
    bound: dict[str, ast.expr] = {}
    positional = [value for name, value, _ in arguments if name is None]
    for position, param in enumerate(params):
        node = positional[position] if position < len(positional) else next(
            (value for name, value, _ in arguments if name == param), None)
        if node is not None:
            bound[param] = node
    for param in params:
        node = bound.get(param)
        if node is not None:
            layer = layer_of(node)
            if layer is not None:
                layers[param] = layer
            else:
                local[param] = evaluate(node, env)
        elif param in found:
            local[param] = evaluate(found[param], local)
        else:
            local[param] = UNKNOWN
    returns = [s for s in function.body if type(s) is ast.Return]
    if len(returns) != 1 or returns[0].value is None:
        return UNKNOWN
    local = straight_line_env(function.body, local, layers, analysis.budget, stop=returns[0])
    return evaluate_bound(returns[0].value, local, layers)


__all__ = ["SELF_VALUES", "bind_layers", "evaluate_bound", "evaluate_with_self", "helper_value", "straight_line_env",
           "weight_shape"]
