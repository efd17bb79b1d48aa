"""The forward interpreter: the order in which a model's `forward` applies its layers,
activations, normalisations, skip connections and merges (the data path), what each `return`
carries, and the hand-written recurrences of its loops. Loops over a ModuleList are unrolled;
methods of the model it calls are inlined (to a bounded depth)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.constructor import argument_node, loop_count
from gradlint.analysis.models.description import (
    FUNCTIONAL_ACTIVATIONS,
    MERGES,
    PASS_THROUGH,
    Layer,
    ModelDescription,
    Op,
    Recurrence,
    activation_name,
)
from gradlint.analysis.models.weights import WeightUse, find_weight_uses
from gradlint.analysis.symbols import names_read
from gradlint.analysis.syntax import dotted, ordered_arguments, receiver_text, target_names
from gradlint.analysis.values import UNKNOWN, evaluate, known

if TYPE_CHECKING:
    from gradlint.analysis.models.discovery import ModelAnalysis

Path = tuple  # of Op, or None where no data path is followed

_MAX_INLINE_DEPTH = 4  # methods of the model inlined into one another
_MAX_MODULE_DEPTH = 6  # model classes used as layers of model classes
_MAX_UNROLLED = 256  # iterations of a loop over layers


@dataclass(frozen=True)
class _LayerRef:
    layer: Layer


@dataclass(frozen=True)
class _Index:
    value: int


def layer_ops(analysis: "ModelAnalysis", layer: Layer, depth: int = 0) -> list[Op]:
    """The ops one declared layer contributes to the data path."""
    category = layer.category
    if category == "weight" or category == "param":
        return [Op("layer", layer)]
    if category == "norm":
        return [Op("norm", layer, name=layer.kind)]
    if category == "activation":
        return [Op("act", layer, name=layer.activation or layer.kind)]
    if category == "identity":
        return []
    if category == "recurrent":
        return [Op("recurrent", layer, name=layer.kind)]
    if category == "container":
        if not all(child.count_known for child in layer.children or []):
            return [Op("unknown", layer, name="repeat count unknown")]
        ops: list[Op] = []
        for child in layer.children or []:
            ops.extend(layer_ops(analysis, child, depth + 1))
        return ops
    if category == "module" and depth < _MAX_MODULE_DEPTH:
        inner = analysis.describe_class(layer.kind)
        if inner is not None and inner.path is not None:
            return [op for op in inner.path if op.kind != "input"]
    return [Op("unknown", layer, name=layer.kind)]


class ForwardInterpreter:
    """Runs one class's `forward` over symbolic data paths."""

    def __init__(self, analysis: "ModelAnalysis", description: ModelDescription,
                 methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef], attribute_values: dict[str, ast.expr]) -> None:
        self.analysis = analysis
        self.symbols = analysis.symbols
        self.budget = analysis.budget
        self.description = description
        self.methods = methods
        self.attribute_values = attribute_values
        self._returns: list[tuple[ast.Return, Path | None]] = []
        self._depth = 0
        self.uses = find_weight_uses(analysis, description, methods)

    def run(self) -> None:
        forward = self.methods.get("forward")
        if forward is None:
            return
        params = [p.arg for p in forward.args.args if p.arg != "self"]
        self.description.inputs = params
        env: dict[str, Any] = {p: (Op("input", name=p),) for p in params}
        self.block(forward.body, env, in_loop=False)
        self.description.returns = [(r, list(p) if p is not None else None) for r, p in self._returns]
        paths = [p for _, p in self._returns if p is not None]
        if paths:
            self.description.path = list(max(paths, key=len))

    # statements ---------------------------------------------------------------------------

    def block(self, body: list[ast.stmt], env: dict[str, Any], in_loop: bool) -> None:
        for statement in body:
            self.budget.spend()
            kind = type(statement)
            if kind is ast.If:
                self.branches(statement, env, in_loop)
            elif kind is ast.For or kind is ast.AsyncFor:
                self.loop(statement, env)
            elif kind is ast.While:
                self.block(statement.body, env, True)
            elif kind is ast.With or kind is ast.AsyncWith or kind is ast.Try:
                self.block(statement.body, env, in_loop)
            elif kind is ast.Return:
                self.returned(statement, env)
            elif kind is ast.Assign or kind is ast.AnnAssign or kind is ast.AugAssign:
                self.assigned(statement, env, in_loop)

    def branches(self, statement: ast.If, env: dict[str, Any], in_loop: bool) -> None:
        """Both branches of an `if` from the same state, merged (`_prefer`); an `elif` ladder
        is walked, not recursed into."""
        taken: list[dict[str, Any]] = []
        branch = statement
        while True:
            first = dict(env)
            self.block(branch.body, first, in_loop)
            taken.append(first)
            if len(branch.orelse) == 1 and type(branch.orelse[0]) is ast.If:  # `elif`
                branch = branch.orelse[0]
                self.budget.spend()
                continue
            merged = dict(env)
            self.block(branch.orelse, merged, in_loop)
            break
        for first in reversed(taken):
            merged = {name: _prefer(first.get(name), merged.get(name)) for name in set(first) | set(merged)}
        env.update(merged)

    def returned(self, statement: ast.Return, env) -> None:
        value = statement.value
        if value is None:
            return
        if type(value) is ast.Tuple and value.elts:
            self.description.tuple_output = True
            for element in value.elts[1:]:
                _mark_output(self.evaluate(element.value if type(element) is ast.Starred else element, env))
            value = value.elts[0]
            if type(value) is ast.Starred:
                value = value.value
        path = self.evaluate(value, env)
        _mark_output(path)
        self._returns.append((statement, path))

    def assigned(self, statement: ast.Assign | ast.AnnAssign | ast.AugAssign, env, in_loop: bool) -> None:
        value = statement.value
        if value is None:
            return
        if type(statement) is ast.AugAssign:
            value = ast.BinOp(left=statement.target, op=statement.op, right=value)
            targets = [statement.target]
        elif type(statement) is ast.Assign:
            targets = statement.targets
        else:
            targets = [statement.target]
        path = self.evaluate(value, env)
        for target in targets:
            text = receiver_text(target)
            for name in target_names(target) or ([text] if text else []):
                env[name] = path
                if in_loop and name in names_read(value):
                    activation = self._activation_of_call(value) if type(value) is ast.Call else None
                    if activation and all(r.statement is not statement for r in self.description.recurrences):
                        self.description.recurrences.append(Recurrence(name, activation, statement))

    def loop(self, statement: ast.For | ast.AsyncFor, env) -> None:
        names = target_names(statement.target)
        elements = self.loop_elements(statement.iter, env)
        if elements is None and names and self._over_layers(statement.iter):
            elements = [_LayerRef(Layer("?", "repeat count unknown", "other"))]  # layers, not time steps
        if elements is None or not names:  # a loop over time steps, or unknown: run the body once
            carried = self.evaluate(statement.iter, env)
            for name in names:
                env[name] = carried
            self.block(statement.body, env, True)
            return
        iterable = statement.iter
        enumerated = type(iterable) is ast.Call and (dotted(iterable.func) or "") == "enumerate"
        for position, element in enumerate(elements[:_MAX_UNROLLED]):  # a loop over layers: unrolled, not a recurrence
            env[names[-1]] = element
            if len(names) > 1:
                env[names[0]] = _Index(position) if enumerated else UNKNOWN
            self.block(statement.body, env, False)

    def loop_elements(self, iterable: ast.expr, env) -> list | None:
        """The layers a `for` over a ModuleList/Sequential visits, or range indices."""
        if type(iterable) is ast.Call and (dotted(iterable.func) or "") == "enumerate":
            arguments = ordered_arguments(iterable)
            if arguments:
                return self.loop_elements(arguments[0][1], env)
        layer = self.layer_of(iterable)
        if layer is not None and layer.children is not None:
            if not all(child.count_known for child in layer.children):
                return None
            return [_LayerRef(child) for child in layer.children]
        if type(iterable) is ast.Call and (dotted(iterable.func) or "") == "range":
            count = loop_count(iterable, {**self.analysis.constants, **self._numbers()})
            if known(count) and isinstance(count, int):
                return [_Index(i) for i in range(count)]
        return None

    def _over_layers(self, iterable: ast.expr) -> bool:
        """A loop over a container of the model whose length is unknown."""
        if type(iterable) is ast.Call and (dotted(iterable.func) or "") == "enumerate" and iterable.args:
            iterable = iterable.args[0]
        layer = self.layer_of(iterable)
        return layer is not None and layer.children is not None

    def _numbers(self) -> dict[str, Any]:
        numbers = dict(self.description.init_params)
        for attr, value in self.attribute_values.items():
            resolved = evaluate(value, numbers)
            if known(resolved):
                numbers[f"self.{attr}"] = resolved
        return numbers

    def layer_of(self, node: ast.expr | None) -> Layer | None:
        if type(node) is ast.Attribute and type(node.value) is ast.Name and node.value.id == "self":
            return self.description.layers.get(node.attr)
        return None

    # expressions --------------------------------------------------------------------------

    def evaluate(self, node: ast.expr | None, env: dict[str, Any]) -> Path | None:
        """The data path an expression carries, or None if it carries none we can follow."""
        kind = type(node)
        if kind is ast.Name:
            value = env.get(node.id)  # type: ignore[union-attr]
            return value if isinstance(value, tuple) else None
        if kind is ast.Subscript:
            return self.evaluate(node.value, env)  # type: ignore[union-attr]
        if kind is ast.Attribute:
            if type(node.value) is ast.Name and node.value.id == "self":  # type: ignore[union-attr]
                return None
            return self.evaluate(node.value, env)  # type: ignore[union-attr]
        if kind is ast.BinOp:
            return self.binary(node, env)  # type: ignore[arg-type]
        if kind is ast.UnaryOp:
            return self.evaluate(node.operand, env)  # type: ignore[union-attr]
        if kind is ast.IfExp:
            return _prefer(self.evaluate(node.body, env), self.evaluate(node.orelse, env))  # type: ignore[union-attr]
        if kind is ast.Call:
            return self.call(node, env)  # type: ignore[arg-type]
        if (kind is ast.Tuple or kind is ast.List) and node.elts:  # type: ignore[union-attr]
            paths = [self.evaluate(e.value if type(e) is ast.Starred else e, env) for e in node.elts]  # type: ignore[union-attr]
            known_paths = [p for p in paths if p]
            return max(known_paths, key=len) if known_paths else None
        return None

    def binary(self, node: ast.BinOp, env) -> Path | None:
        left, right = self.evaluate(node.left, env), self.evaluate(node.right, env)
        operator = type(node.op)
        if operator is ast.MatMult:
            use = self.uses.get(id(node))
            if use is not None:
                path = self._data_path(use, env)
                return self._then(path, Op("layer", use.layer)) if path is not None else None
            path = left or right
            return self._then(path, Op("unknown", name="matmul")) if path else None
        if left and right:
            if operator is ast.Add or operator is ast.Sub:
                shorter, longer = sorted((left, right), key=len)
                if longer[: len(shorter)] == shorter:  # x + f(x): a skip connection
                    return self._then(longer[: len(shorter)], Op("residual"))
                return self._then(longer, Op("concat", name="add"))
            return self._then(max(left, right, key=len), Op("concat", name="product"))
        path = left or right
        if path is None:
            return None
        if operator is ast.Mult or operator is ast.Div:
            other = node.right if left else node.left
            factor = self._number(other)
            if known(factor) and operator is ast.Div and left:
                factor = 1 / factor if factor else UNKNOWN
            elif operator is ast.Div and not left:
                factor = UNKNOWN  # `k / x` is no scaling
            return self._then(path, Op("scale", name=self.analysis.text_with_parentheses(other), factor=factor,
                                       node=other, divides=operator is ast.Div and bool(left)))
        return path

    def _number(self, node: ast.expr) -> Any:
        """The value of a scale factor (`self.scale`, `dim ** -0.5`, `0.1`), where it resolves."""
        numbers = self._numbers()
        if type(node) is ast.Attribute and type(node.value) is ast.Name and node.value.id == "self":
            value = self.attribute_values.get(node.attr)
            return evaluate(value, numbers) if value is not None else UNKNOWN
        value = evaluate(node, numbers)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else UNKNOWN

    def _data_path(self, use: WeightUse, env) -> Path | None:
        paths = [p for p in (self.evaluate(operand, env) for operand in use.operands) if p is not None]
        return max(paths, key=len) if paths else None

    def _then(self, path: Path, *ops: Op) -> Path:
        """`path` followed by `ops`. Copying a path is charged to the budget by its length: a
        loop over layers inside another one makes paths as long as the iterations. Each weight
        layer learns what comes right before and after it (scale factors looked through)."""
        self.budget.spend(len(path) >> 6)
        previous = next((op for op in reversed(path) if op.kind != "scale"), None) if path else None
        for op in ops:
            if op.kind == "scale":
                if previous is not None and previous.layer is not None and previous.kind == "layer":
                    layer = previous.layer  # each scale once, however many paths carry it
                    if op.node is None or all(node is not op.node for node, _ in layer.scale_nodes):
                        layer.scales.append(op.factor)
                        layer.scale_nodes.append((op.node, op.divides))
                continue
            if previous is not None and previous.kind == "layer" and previous.layer is not None:
                previous.layer.after.add(_kind(op))
            if op.kind == "layer" and op.layer is not None and previous is not None:
                op.layer.before.add(_kind(previous))
            previous = op
        return path + ops

    def call(self, node: ast.Call, env) -> Path | None:
        func = node.func
        first = next((a for a in node.args if type(a) is not ast.Starred), None)
        # a layer of the model: self.fc(x), self.layers[i](x), layer(x)
        layer = self.layer_of(func)
        if layer is None and type(func) is ast.Subscript:
            container = self.layer_of(func.value)
            if container is not None and container.children:
                position = self._index(func.slice, env)
                if position is not None and -len(container.children) <= position < len(container.children):
                    layer = container.children[position]
        if layer is None and type(func) is ast.Name and isinstance(env.get(func.id), _LayerRef):
            layer = env[func.id].layer
        if layer is not None:
            path = self.evaluate(first, env) if first is not None else None
            if path is None:
                return None
            return self._then(path, *layer_ops(self.analysis, layer))
        # a Parameter used as a weight: F.linear(x, W), torch.matmul(x, W), einsum(..., x, W)
        use = self.uses.get(id(node))
        if use is not None:
            path = self._data_path(use, env)
            return self._then(path, Op("layer", use.layer)) if path is not None else None
        # activations and pass-through in any spelling
        activation = self._activation_of_call(node)
        receiver = func.value if type(func) is ast.Attribute else None
        qualified = self.symbols.qualified(func)
        if activation:
            source = first if not _is_method_on_value(func, qualified) else receiver
            path = self.evaluate(source, env) if source is not None else None
            return self._then(path, Op("act", name=activation)) if path else None
        text = dotted(func)
        name = text.rsplit(".", 1)[-1] if text else (func.attr if type(func) is ast.Attribute else "")
        if name in PASS_THROUGH:
            if receiver is not None and not qualified.startswith("torch"):
                path = self.evaluate(receiver, env)
                if path is not None:
                    return path
            return self.evaluate(first, env) if first is not None else None
        if qualified.endswith(("normalize", "layer_norm", "batch_norm", "group_norm", "rms_norm")):
            path = self.evaluate(first, env) if first is not None else None
            return self._then(path, Op("norm", name=name)) if path else None
        arguments = ordered_arguments(node)
        if name == "linear" and qualified.startswith("torch") and len(arguments) >= 2:
            path = self.evaluate(arguments[0][1], env)
            if path is not None:
                return self._then(path, Op("unknown", name="linear"))
        if name in MERGES and first is not None:
            if type(first) is ast.List or type(first) is ast.Tuple:
                path = self.evaluate(first, env)
            else:
                path = max((p for p in (self.evaluate(a, env) for _, a, _ in arguments) if p), key=len, default=None)
            return self._then(path, Op("concat", name=name)) if path else None
        # a method of this model: inline it
        if type(func) is ast.Attribute and type(func.value) is ast.Name and func.value.id == "self":
            method = self.methods.get(func.attr)
            if method is not None and self._depth < _MAX_INLINE_DEPTH:
                return self.inline_method(method, node, env)
        # anything else that consumes our data: unknown from here on
        for _, argument, _ in arguments:
            path = self.evaluate(argument, env)
            if path is not None:
                return self._then(path, Op("unknown", name=name or "call"))
        if receiver is not None:
            path = self.evaluate(receiver, env)
            if path is not None:
                return self._then(path, Op("unknown", name=name or "call"))
        return None

    def inline_method(self, method: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, env) -> Path | None:
        params = [p.arg for p in method.args.args if p.arg != "self"]
        local: dict[str, Any] = {}
        for position, param in enumerate(params):
            argument = argument_node(call, param, position)
            local[param] = self.evaluate(argument, env) if argument is not None else None
        saved = self._returns
        self._returns = []
        self._depth += 1
        try:
            self.block(method.body, local, in_loop=False)
            paths = [p for _, p in self._returns if p is not None]
        finally:
            self._depth -= 1
            self._returns = saved
        return max(paths, key=len) if paths else None

    def _index(self, node: ast.expr, env) -> int | None:
        if type(node) is ast.Name and isinstance(env.get(node.id), _Index):
            return env[node.id].value
        value = evaluate(node, {})
        return value if isinstance(value, int) else None

    def _activation_of_call(self, node: ast.Call) -> str | None:
        func = node.func
        layer = self.layer_of(func)
        if layer is not None and layer.category == "activation":
            return layer.activation
        qualified = self.symbols.qualified(func)
        last = qualified.rsplit(".", 1)[-1] if qualified else (func.attr if type(func) is ast.Attribute else "")
        if last in FUNCTIONAL_ACTIVATIONS and (qualified.startswith("torch") or _is_method_on_value(func, qualified)):
            return activation_name(last)
        return None


def _kind(op: Op) -> str:
    """How a neighbouring op reads in a layer's `before`/`after`: `norm`, `act:softmax`, ..."""
    return f"act:{op.name}" if op.kind == "act" else op.kind


def _mark_output(path: Path | None) -> None:
    """The last weight layer of a returned path feeds the output."""
    if not path:
        return
    last = next((op for op in reversed(path) if op.kind != "scale"), None)
    if last is not None and last.kind == "layer" and last.layer is not None:
        last.layer.after.add("output")


def _is_method_on_value(func: ast.expr, qualified: str) -> bool:
    """`x.relu()` (a tensor method) rather than `F.relu(x)`."""
    return type(func) is ast.Attribute and not qualified.startswith("torch")


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
