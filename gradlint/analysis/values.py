"""Static values: numbers, booleans and strings an expression resolves to without running it.

Used to read layer sizes (`nn.Linear(hidden, 2 * hidden)`), loop counts (`range(depth)`) and
init scales (`std=1 / math.sqrt(fan_in)`) from literals, default arguments and module constants.
Anything else is `UNKNOWN`, and rules stay silent about what they cannot resolve.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from typing import Any

from gradlint.lazy import lazy_module

from gradlint.analysis.imports import dotted

cst = lazy_module("libcst")


class _Unknown:
    def __repr__(self) -> str:
        return "unknown"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()

_BINARY_NAMES = {
    "Add": operator.add, "Subtract": operator.sub, "Multiply": operator.mul, "Divide": operator.truediv,
    "FloorDivide": operator.floordiv, "Power": operator.pow, "Modulo": operator.mod,
}
_AST_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod,
}
_SQRT = {"sqrt"}


def known(value: Any) -> bool:
    return value is not UNKNOWN and value is not None


def evaluate(node: cst.BaseExpression | None, env: dict[str, Any]) -> Any:
    """The value of an expression built from literals, names in `env`, arithmetic and sqrt."""
    try:
        return _evaluate(node, env)
    except (ArithmeticError, TypeError, ValueError, RecursionError):
        return UNKNOWN


@functools.lru_cache(maxsize=1024)
def number_literal(text: str) -> int | float:
    """The value of an Integer or Float literal's text (`1_000`, `0x10`, `3e-4`). libcst's
    `evaluated_value` calls `ast.literal_eval`, 20x slower and a reference cycle per call."""
    plain = text.replace("_", "")
    try:
        return int(plain, 0)
    except ValueError:
        return float(plain)


def _evaluate(node, env) -> Any:
    if node is None:
        return UNKNOWN
    if type(node) is cst.Integer or type(node) is cst.Float:
        return number_literal(node.value)
    if type(node) is cst.SimpleString:
        return node.evaluated_value
    if type(node) is cst.Name:
        if node.value in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.value]
        return env.get(node.value, UNKNOWN)
    if type(node) is cst.UnaryOperation:
        value = _evaluate(node.expression, env)
        if not known(value):
            return UNKNOWN
        if type(node.operator) is cst.Minus:
            return -value
        if type(node.operator) is cst.Plus:
            return value
        if type(node.operator) is cst.Not:
            return not value
        return UNKNOWN
    if type(node) is cst.BinaryOperation:
        function = _BINARY_NAMES.get(type(node.operator).__name__)
        left, right = _evaluate(node.left, env), _evaluate(node.right, env)
        if function is None or not known(left) or not known(right):
            return UNKNOWN
        if isinstance(left, str) or isinstance(right, str):
            return UNKNOWN
        return function(left, right)
    if type(node) is cst.Call:
        name = (dotted(node.func) or "").rsplit(".", 1)[-1]
        args = [a for a in node.args if a.keyword is None]
        if name in _SQRT and len(args) == 1:
            value = _evaluate(args[0].value, env)
            return math.sqrt(value) if known(value) else UNKNOWN
        if name in ("int", "float") and len(args) == 1:
            value = _evaluate(args[0].value, env)
            return {"int": int, "float": float}[name](value) if known(value) else UNKNOWN
        if name == "calculate_gain" and args:  # nn.init.calculate_gain('relu')
            nonlinearity = _evaluate(args[0].value, env)
            return gain_for(nonlinearity) if isinstance(nonlinearity, str) else UNKNOWN
        return UNKNOWN
    if type(node) is cst.Attribute and dotted(node) in ("math.pi", "np.pi", "numpy.pi"):
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
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _evaluate_ast(node.value, env)
            if known(value):
                env[node.targets[0].id] = value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            value = _evaluate_ast(node.value, env)
            if known(value):
                env[node.target.id] = value
    return env


def _evaluate_ast(node: ast.AST, env: dict[str, Any]) -> Any:
    try:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
            return node.value
        if isinstance(node, ast.Name):
            return env.get(node.id, UNKNOWN)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = _evaluate_ast(node.operand, env)
            return -value if known(value) else UNKNOWN
        if isinstance(node, ast.BinOp) and type(node.op) in _AST_BINARY:
            left, right = _evaluate_ast(node.left, env), _evaluate_ast(node.right, env)
            if known(left) and known(right) and not isinstance(left, str) and not isinstance(right, str):
                return _AST_BINARY[type(node.op)](left, right)
    except (ArithmeticError, TypeError, ValueError):
        pass
    return UNKNOWN
