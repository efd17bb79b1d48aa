"""Static values: numbers, booleans, strings and tuples an expression resolves to without running it.

Used to read layer sizes (`nn.Linear(hidden, 2 * hidden)`), loop counts (`range(depth)`) and
init scales (`std=1 / math.sqrt(fan_in)`) from literals, default arguments and module constants.
Anything else is `UNKNOWN`, and rules stay silent about what they cannot resolve. This is the
project's one constant evaluator, on `ast` expressions.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any


class _Unknown:
    def __repr__(self) -> str:
        return "unknown"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod,
}
_NAMED = {"True": True, "False": False, "None": None}
_PI = {"math.pi", "np.pi", "numpy.pi"}
_MAX_POWER = 1024  # `10 ** 10 ** 10` is not a layer size; refuse before Python computes it


def known(value: Any) -> bool:
    return value is not UNKNOWN and value is not None


def evaluate(node: Any, env: dict[str, Any]) -> Any:
    """The value of an expression built from literals, names in `env`, arithmetic, tuples, and
    `sqrt`/`int`/`float`/`calculate_gain` calls; UNKNOWN for anything else."""
    if node is None:
        return UNKNOWN
    try:
        return _evaluate(node, env)
    except (ArithmeticError, TypeError, ValueError, RecursionError):
        return UNKNOWN


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    kind = type(node)
    if kind is ast.Constant:
        value = node.value  # type: ignore[attr-defined]
        return value if type(value) in (int, float, str, bool) or value is None else UNKNOWN
    if kind is ast.Name:
        name = node.id  # type: ignore[attr-defined]
        if name in _NAMED:
            return _NAMED[name]
        return env.get(name, UNKNOWN)
    if kind is ast.UnaryOp:
        value = _evaluate(node.operand, env)  # type: ignore[attr-defined]
        if not known(value):
            return UNKNOWN
        op = type(node.op)  # type: ignore[attr-defined]
        if op is ast.USub:
            return -value
        if op is ast.UAdd:
            return +value
        if op is ast.Not:
            return not value
        return UNKNOWN
    if kind is ast.BinOp:
        function = _BINARY.get(type(node.op))  # type: ignore[attr-defined]
        left, right = _evaluate(node.left, env), _evaluate(node.right, env)  # type: ignore[attr-defined]
        if function is None or not known(left) or not known(right):
            return UNKNOWN
        if isinstance(left, (str, tuple)) or isinstance(right, (str, tuple)):
            return UNKNOWN
        if function is operator.pow and isinstance(right, (int, float)) and abs(right) > _MAX_POWER:
            return UNKNOWN
        return function(left, right)
    if kind is ast.Tuple:
        values = tuple(_evaluate(e, env) for e in node.elts)  # type: ignore[attr-defined]
        return values if all(known(v) for v in values) else UNKNOWN
    if kind is ast.Call:
        func = node.func  # type: ignore[attr-defined]
        name = func.attr if type(func) is ast.Attribute else (func.id if type(func) is ast.Name else "")
        args = node.args  # type: ignore[attr-defined]
        if len(args) == 1 and type(args[0]) is not ast.Starred and name in ("sqrt", "int", "float"):
            value = _evaluate(args[0], env)
            if not known(value) or isinstance(value, (str, tuple)):
                return UNKNOWN
            return {"sqrt": math.sqrt, "int": int, "float": float}[name](value)
        if name == "calculate_gain" and args:  # nn.init.calculate_gain('relu')
            nonlinearity = _evaluate(args[0], env)
            return gain_for(nonlinearity) if isinstance(nonlinearity, str) else UNKNOWN
        return UNKNOWN
    if kind is ast.Attribute:
        from gradlint.analysis.syntax import dotted

        if dotted(node) in _PI:
            return math.pi
    return UNKNOWN


def gain_for(nonlinearity: str, param: float | None = None) -> Any:
    """torch.nn.init.calculate_gain."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    return UNKNOWN


def module_constants(tree: ast.Module) -> dict[str, Any]:
    """`HIDDEN = 256`, `DEPTH = 2 * 4`: the module's simple constants, in order."""
    env: dict[str, Any] = {}
    for node in tree.body:
        if type(node) is ast.Assign and len(node.targets) == 1 and type(node.targets[0]) is ast.Name:
            value = evaluate(node.value, env)
            if known(value):
                env[node.targets[0].id] = value
        elif type(node) is ast.AnnAssign and type(node.target) is ast.Name and node.value is not None:
            value = evaluate(node.value, env)
            if known(value):
                env[node.target.id] = value
    return env

