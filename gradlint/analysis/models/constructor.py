"""The `__init__` interpreter: what a model class declares (layers with their resolved sizes, in
order, loops and list building expanded), how its weights are initialised, its constructor
parameters and where it keeps an action bound. Also the recognition of one init call
(`nn.init.normal_(w, std=1)`, `w.data.uniform_(-a, a)`), which GL301 reuses outside models.

Nothing is executed: values come from the one constant evaluator (`values.evaluate`) over the
module's constants and the constructor's defaults; what does not resolve is UNKNOWN.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.description import (
    ACTIVATION_MODULES,
    BOUND_NAMES,
    FUNCTIONAL_ACTIVATIONS,
    IDENTITY_LAYERS,
    INIT_FUNCTIONS,
    NORM_LAYERS,
    RECURRENT_LAYERS,
    RESHAPE_LAYERS,
    TENSOR_INIT_METHODS,
    WEIGHT_LAYERS,
    Init,
    Layer,
    ModelDescription,
    activation_name,
    is_noise_name,
    named,
    target_kind,
)
from gradlint.analysis.models.layer_values import (
    SELF_VALUES,
    bind_layers,
    evaluate_with_self,
    helper_value,
    straight_line_env,
)
from gradlint.analysis.syntax import (
    defaults,
    dotted,
    headers,
    is_compound,
    keyword,
    last_name,
    ordered_arguments,
    receiver_text,
    statements,
    target_names,
)
from gradlint.analysis.values import UNKNOWN, evaluate, known

if TYPE_CHECKING:
    from gradlint.analysis.models.discovery import ModelAnalysis

_INIT_PARAMETERS = {
    "normal": ("mean", "std"), "trunc_normal": ("mean", "std", "a", "b"), "uniform": ("a", "b"),
    "orthogonal": ("gain",), "xavier_normal": ("gain",), "xavier_uniform": ("gain",),
    "kaiming_normal": ("a", "mode", "nonlinearity"), "kaiming_uniform": ("a", "mode", "nonlinearity"),
    "constant": ("val",), "sparse": ("sparsity", "std"),
}
_INIT_NAMES = frozenset(INIT_FUNCTIONS | TENSOR_INIT_METHODS)
_MAX_TWO_PASS_DEPTH = 3  # nested layer loops read twice each (2^depth passes); deeper ones once
_MAX_REPEAT = 512  # layers a loop or comprehension is expanded into; beyond, the count is unknown


def call_arguments(call: ast.Call, names: tuple[str, ...], env: dict[str, Any], skip: int = 0,
                   spread: Callable[[ast.expr], Any] | None = None,
                   nodes: dict[str, ast.expr] | None = None) -> dict[str, Any]:
    """Resolve a call's arguments by position (as `names`) and keyword, in source order; the
    first `skip` arguments are left out. A `*args` is spread where `spread` (or the evaluator)
    resolves it to a tuple; otherwise every name not yet bound is UNKNOWN from there on (never
    its default). `nodes`, if given, receives the expression bound to each name."""
    values: dict[str, Any] = {}
    position = 0
    for name, value, star in ordered_arguments(call)[skip:]:
        if star == "*":
            spread_values = spread(value) if spread is not None else UNKNOWN
            if not isinstance(spread_values, tuple):
                spread_values = evaluate_with_self(value, env)
            if isinstance(spread_values, tuple):
                for item in spread_values:
                    if position < len(names):
                        values[names[position]] = item
                        position += 1
                continue
        if star:
            for rest in names[position:]:
                values.setdefault(rest, UNKNOWN)
            return values
        if name is not None:
            values[name] = evaluate_with_self(value, env)
            if nodes is not None:
                nodes[name] = value
        elif position < len(names):
            values[names[position]] = evaluate_with_self(value, env)
            if nodes is not None:
                nodes[names[position]] = value
            position += 1
    return values


def first_argument(call: ast.Call) -> ast.expr | None:
    """The first argument in source order, whatever its form (`f(x)`, `f(t=x)`, `f(*xs)`)."""
    arguments = ordered_arguments(call)
    return arguments[0][1] if arguments else None


def argument_node(call: ast.Call, name: str, position: int) -> ast.expr | None:
    """The argument bound to parameter `name` at `position`: by keyword, else the positional
    argument at `position` (starred ones left out)."""
    found = keyword(call, name)
    if found is not None:
        return found
    positional = [a for a in call.args if type(a) is not ast.Starred]
    return positional[position] if 0 <= position < len(positional) else None


def loop_count(iterable: ast.expr, env: dict[str, Any]) -> Any:
    """How many times a `for` over `iterable` runs: `range(...)` with known bounds, a literal
    list/tuple, or a name holding a known tuple; else UNKNOWN."""
    kind = type(iterable)
    if kind is ast.Call and (dotted(iterable.func) or "") == "range":  # type: ignore[attr-defined]
        args = [evaluate_with_self(a, env) for a in iterable.args if type(a) is not ast.Starred]  # type: ignore[attr-defined]
        if not args or not all(known(a) and isinstance(a, int) for a in args):
            return UNKNOWN
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) > 2 else 1)
        return max(0, math.ceil((stop - start) / step)) if step else UNKNOWN
    if kind is ast.List or kind is ast.Tuple:
        return len(iterable.elts)  # type: ignore[attr-defined]
    if kind is ast.Name:
        value = env.get(iterable.id, UNKNOWN)  # type: ignore[attr-defined]
        if isinstance(value, (list, tuple)):
            return len(value)
    return UNKNOWN


def is_init_function(analysis: "ModelAnalysis", func: ast.expr) -> bool:
    """`nn.init.normal_` (any spelling, `from torch.nn.init import normal_` too), as opposed to
    the tensor method `w.normal_()`."""
    qualified = analysis.symbols.qualified(func)
    last = qualified.rsplit(".", 1)[-1] if qualified else ""
    return last in INIT_FUNCTIONS and ("init" in qualified.split(".") or qualified == last)


def init_from_call(analysis: "ModelAnalysis", call: ast.Call, env: dict[str, Any],
                   anchor: ast.stmt | None, spread: Callable[[ast.expr], Any] | None = None) -> tuple[str, Init] | None:
    """(`self.fc.weight` target text, Init) for `nn.init.normal_(self.fc.weight, std=1)`,
    `self.fc.weight.data.normal_()`, `w.uniform_(-a, a)`, `w.data.mul_(0.1)`; else None.
    `spread` resolves a `*helper(layer)` argument (`uniform_(*hidden_init(self.fc1))`)."""
    func = call.func
    if last_name(func) not in analysis.spellings(_INIT_NAMES):
        return None
    nodes: dict[str, ast.expr] = {}
    if is_init_function(analysis, func):
        first = first_argument(call)
        if first is None:
            return None
        target = receiver_text(first)
        if target is None:
            return None
        method = analysis.symbols.qualified(func).rsplit(".", 1)[-1].rstrip("_")
        params = call_arguments(call, _INIT_PARAMETERS.get(method, ()), env, skip=1, spread=spread, nodes=nodes)
        if method == "constant":
            value = params.get("val", UNKNOWN)
            method = "constant_zero" if value == 0 else "constant"
        return target, Init(method, target_kind(target), params, call, anchor, nodes=nodes)
    if type(func) is ast.Attribute and func.attr in TENSOR_INIT_METHODS:
        owner = receiver_text(func.value)
        if owner is None:
            return None
        target = owner[:-5] if owner.endswith(".data") else owner
        kind = target_kind(target)
        method = func.attr
        if method == "normal_":
            params = call_arguments(call, ("mean", "std"), env, spread=spread, nodes=nodes)
            params.setdefault("std", 1.0)
            return target, Init("normal", kind, params, call, anchor, nodes=nodes)
        if method == "uniform_":
            params = call_arguments(call, ("a", "b"), env, spread=spread, nodes=nodes)
            params = {"a": params.get("a", 0.0), "b": params.get("b", 1.0)}
            return target, Init("uniform", kind, params, call, anchor, nodes=nodes)
        if method == "fill_":
            value = call_arguments(call, ("val",), env, spread=spread, nodes=nodes).get("val", UNKNOWN)
            return target, Init("constant_zero" if value == 0 else "constant", kind, {"val": value}, call, anchor,
                                nodes=nodes)
        if method == "zero_":
            return target, Init("constant_zero", kind, {}, call, anchor)
        if method == "mul_":
            factor = call_arguments(call, ("factor",), env, nodes=nodes).get("factor", UNKNOWN)
            return target, Init("scale", kind, {"factor": factor}, call, anchor, nodes=nodes)
    return None


def calls_with_statements(analysis: "ModelAnalysis", body: list[ast.stmt]):
    """(call, the statement holding it) for every call in a body, nested blocks and definitions
    included; calls in a compound statement's header (`if`, `for`, `while`, `with`, `match`)
    belong to that statement."""
    calls = analysis.symbols.calls
    for statement in statements(body, into_definitions=True):
        analysis.budget.spend()
        parts = headers(statement) if is_compound(statement) else [statement]
        for part in parts:
            for call, _ in calls(part):
                yield call, statement


class ConstructorInterpreter:
    """Reads one class's `__init__` (and the methods it calls on `self`) into its description:
    layers, init calls, constructor parameters, the action bound. For an `nn.Sequential(...)`
    outside classes, only `layer_from` is used."""

    def __init__(self, analysis: "ModelAnalysis", description: ModelDescription, node: ast.ClassDef | None,
                 methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]) -> None:
        self.analysis = analysis
        self.symbols = analysis.symbols
        self.budget = analysis.budget
        self.description = description
        self.node = node
        self.methods = methods
        self.param_nodes: dict[str, ast.expr] = {}
        self.attribute_values: dict[str, ast.expr] = {}  # `self.x = <expr>`, for the forward pass
        self.typed_inits: list[TypedInit] = []  # inits applied to every layer of some kinds
        self._inlined: set[str] = set()
        self._following: set[str] = set()  # parameter defaults being followed (`a=b, b=a`)
        self._loop_depth = 0  # layer-building loops being read inside one another

    def run(self) -> None:
        init = self.methods.get("__init__")
        env = dict(self.analysis.constants)
        if init is not None:
            found = defaults(init)
            for param in [*init.args.posonlyargs, *init.args.args, *init.args.kwonlyargs]:
                name = param.arg
                if name == "self":
                    continue
                default = found.get(name)
                if default is not None:
                    self.param_nodes[name] = default
                    env[name] = evaluate(default, env)
                    self.description.init_params[name] = env[name]
                else:
                    env[name] = UNKNOWN
                    self.description.init_params[name] = UNKNOWN
                if name in BOUND_NAMES:
                    self.description.bound_hint = f"`{name}` argument"
            self.body(init.body, env, {}, 1)
            for attr, layer in self.description.layers.items():  # children appended after creation
                if layer.category == "container" and layer.children and layer.name == attr:
                    named(layer.children, attr)
        self.apply_typed_inits(self.typed_inits, self.description.all_layers())
        if self.node is not None and self.description.bound_hint is None:
            start, end = self.analysis.offsets_of(self.node)
            if self.analysis.text.find("action_space.high", start, end) >= 0:
                self.description.bound_hint = "`action_space.high`"

    def apply_typed_inits(self, typed: list["TypedInit"], layers: list[Layer]) -> None:
        """Attach each typed init to the layers it reaches, re-read for each layer where its
        arguments depend on it (`n = m.in_features; m.weight.data.uniform_(-1/sqrt(n), ...)`)."""
        for entry in typed:
            for layer in layers:
                if entry.scope is not None and id(layer) not in entry.scope:
                    continue
                if not (layer.kind in entry.kinds or ("*" in entry.kinds and layer.is_weight)):
                    continue
                if entry.target != entry.init.target:
                    continue
                self.budget.spend()
                layer.inits.append(self._init_for_layer(entry, layer))

    def _init_for_layer(self, entry: "TypedInit", layer: Layer) -> Init:
        init = entry.init
        if entry.variable is None or init.call is None or all(known(v) for v in init.params.values()):
            return init
        bound = {entry.variable: layer}
        env = straight_line_env(entry.body, entry.env, bound, self.budget, stop=init.anchor)
        found = init_from_call(self.analysis, bind_layers(init.call, bound), env, init.anchor)  # type: ignore[arg-type]
        if found is None:
            return init
        again = found[1]
        if sum(known(v) for v in again.params.values()) <= sum(known(v) for v in init.params.values()):
            return init  # nothing more resolved for this layer
        again.call, again.target, again.sources = init.call, init.target, init.sources
        return again

    # statements ---------------------------------------------------------------------------

    def body(self, body: list[ast.stmt], env: dict[str, Any], lists: dict[str, list[Layer]], multiplicity: Any) -> None:
        for statement in body:
            self.statement(statement, env, lists, multiplicity)

    def statement(self, statement: ast.stmt, env, lists, multiplicity) -> None:
        self.budget.spend()
        kind = type(statement)
        if kind is ast.If:
            # An unknown condition runs both branches, the `if` branch last so that it wins
            # (usually the feature that is on). An `elif` ladder is walked, not recursed into.
            pending: list[list[ast.stmt]] = []  # bodies of unknown conditions, outermost first
            branch: ast.stmt | None = statement
            chosen: list[ast.stmt] = []
            while branch is not None:
                condition = evaluate_with_self(branch.test, env)  # type: ignore[attr-defined]
                orelse = branch.orelse  # type: ignore[attr-defined]
                if condition is not UNKNOWN and condition:
                    chosen, branch = branch.body, None  # type: ignore[attr-defined]
                    continue
                if condition is UNKNOWN:
                    pending.append(branch.body)  # type: ignore[attr-defined]
                if len(orelse) == 1 and type(orelse[0]) is ast.If:
                    branch = orelse[0]
                    self.budget.spend()
                else:
                    chosen, branch = orelse, None
            self.body(chosen, env, lists, multiplicity)
            for body in reversed(pending):
                self.body(body, env, lists, multiplicity)
        elif kind is ast.For or kind is ast.AsyncFor:
            count = loop_count(statement.iter, env)
            saved = {name: env.get(name, UNKNOWN) for name in target_names(statement.target)}
            for name in saved:
                env[name] = UNKNOWN
            names = target_names(statement.target)
            container = self._container_loop(statement)
            if container is not None:  # `for layer in self.layers: nn.init.normal_(layer.weight)`
                self._typed_init_block(statement.body, names[-1] if names else None, env, {"*"},
                                       scope=self._subtree(container))
            elif _is_module_loop(statement):
                self._typed_init_block(statement.body, names[-1] if names else None, env, {"*"},
                                       scope=self._loop_scope(statement.iter.func.value))  # type: ignore[attr-defined]
            elif _is_parameter_loop(statement):
                self._parameter_loop(statement, names, env)
            else:
                self._layer_loop(statement, count, env, lists)
            env.update(saved)
        elif kind is ast.With or kind is ast.AsyncWith or kind is ast.Try:
            self.body(statement.body, env, lists, multiplicity)
        elif kind is ast.Assign:
            for target in statement.targets:
                value = statement.value
                if type(target) is ast.Tuple and type(value) is ast.Tuple and len(target.elts) == len(value.elts) \
                        and not any(type(e) is ast.Starred for e in (*target.elts, *value.elts)):
                    for element, item in zip(target.elts, value.elts):  # `layers, d = [], n_in`
                        self.assign(element, item, env, lists, multiplicity, statement)
                    continue
                self.assign(target, value, env, lists, multiplicity, statement)
        elif kind is ast.AnnAssign:
            if statement.value is not None:
                self.assign(statement.target, statement.value, env, lists, multiplicity, statement)
        elif kind is ast.AugAssign:
            target_text = dotted(statement.target) if type(statement.target) in (ast.Name, ast.Attribute) else None
            if target_text in lists and type(statement.op) is ast.Add:  # `self.layers += [...]`
                lists[target_text].extend(self.list_items(statement.value, env, lists, multiplicity, statement))
            elif type(statement.target) is ast.Name and type(statement.op) is ast.Add:
                name = statement.target.id
                if name in lists:
                    lists[name].extend(self.list_items(statement.value, env, lists, multiplicity, statement))
                else:
                    value = evaluate_with_self(statement.value, env)
                    env[name] = env.get(name, UNKNOWN) + value if known(env.get(name)) and known(value) else UNKNOWN
        elif kind is ast.Expr and type(statement.value) is ast.Call:
            self.call_statement(statement.value, env, lists, multiplicity, statement)

    def assign(self, target: ast.expr, value: ast.expr, env, lists, multiplicity, statement: ast.stmt) -> None:
        if type(target) is ast.Attribute and type(target.value) is ast.Name and target.value.id == "self":
            attr = target.attr
            self.attribute_values[attr] = value
            if attr in BOUND_NAMES or any(b in attr for b in ("max_action", "action_bound", "action_scale")):
                self.description.bound = f"self.{attr}"
                self.description.bound_hint = self.description.bound_hint or f"`self.{attr}`"
            layer = self.layer_from(value, attr, env, lists, statement)
            number = evaluate_with_self(value, env) if layer is None and (
                type(value) is not ast.Call or last_name(value.func) in ("sqrt", "int", "float")) else UNKNOWN
            if known(number) and isinstance(number, (int, float, str, tuple)):
                env[f"self.{attr}"] = number  # `self.in_features`, read by later init calls
                env[SELF_VALUES] = True
            else:
                env.pop(f"self.{attr}", None)
            if layer is not None:
                self.description.layers[attr] = layer
                if layer.category == "container" and layer.children is not None and layer.kind in (
                        "ModuleList", "Sequential"):
                    lists[f"self.{attr}"] = layer.children  # `self.layers.append(...)` adds to it
            else:
                lists.pop(f"self.{attr}", None)
            return
        if type(target) is ast.Name:
            name = target.id
            kind = type(value)
            if (kind is ast.List or kind is ast.Tuple) and not value.elts or (  # type: ignore[attr-defined]
                kind is ast.Call and dotted(value.func) == "list" and not value.args and not value.keywords  # type: ignore[attr-defined]
            ):
                lists[name] = []
                return
            if (kind is ast.List or kind is ast.ListComp) and name not in env:
                items = self.list_items(value, env, lists, multiplicity, statement)
                if items:
                    lists[name] = items
                    return
            layer = self.layer_from(value, name, env, lists, statement)
            if layer is not None and layer.category != "other":
                lists.setdefault(f"<var>{name}", []).clear()
                lists[f"<var>{name}"].append(layer)
                return
            env[name] = evaluate_with_self(value, env)

    def call_statement(self, call: ast.Call, env, lists, multiplicity, statement: ast.stmt) -> None:
        func = call.func
        if type(func) is ast.Attribute and f"{dotted(func.value)}" in lists and type(func.value) is ast.Attribute:
            func = ast.Attribute(value=ast.Name(id=dotted(func.value), ctx=ast.Load()), attr=func.attr, ctx=ast.Load())
        if type(func) is ast.Attribute and type(func.value) is ast.Name:
            owner, method = func.value.id, func.attr  # `layers.append(...)`, `self.layers.append(...)`
            if owner in lists and method in ("append", "extend", "insert"):
                arguments = ordered_arguments(call)
                argument = arguments[-1][1] if arguments else None
                if argument is not None:
                    if method == "extend":
                        lists[owner].extend(self.list_items(argument, env, lists, multiplicity, statement))
                    else:
                        layer = self.layer_from(argument, f"{owner}[]", env, lists, statement)
                        if layer is not None:
                            lists[owner].extend(_repeat(layer, multiplicity))
                return
            if owner == "self" and method == "apply":
                function = first_argument(call)
                if function is not None:
                    self.apply_function(function)
                    return
            if owner == "self" and method == "register_buffer":
                self.buffer(call, env, statement)
                return
            if owner == "self" and method in self.methods and method not in self._inlined and method != "forward":
                self._inlined.add(method)  # `self.reset_parameters()`
                self.body(self.methods[method].body, env, lists, multiplicity)
                return
        if type(func) is ast.Attribute and func.attr == "add_module" and len(ordered_arguments(call)) == 2:
            (_, first, _), (_, second, _) = ordered_arguments(call)
            name = evaluate(first, env)
            layer = self.layer_from(second, str(name), env, lists, statement)
            if layer is not None and isinstance(name, str):
                self.description.layers[name] = layer
            return
        if type(func) is ast.Attribute and func.attr == "apply" and len(ordered_arguments(call)) == 1:
            layer = self.existing_layer(func.value, lists)  # `self.fc1.apply(init_fn)`
            if layer is not None:
                self.apply_function(ordered_arguments(call)[0][1], scope=self._subtree(layer))
                return
        found = init_from_call(self.analysis, call, env, statement, spread=self._spread(env, lists))
        if found is not None:
            self._note_sources(found[1], env)
            self.attach_init(found[0], found[1], lists)
            return
        name = dotted(func)
        if name in self.symbols.functions and (call.args or call.keywords):
            self.helper_statement(name, call, env, lists, statement)  # `initialize_uniformly(self.mu_layer)`

    def existing_layer(self, node: ast.expr, lists) -> Layer | None:
        """The layer an expression names: `self.fc` (a layer already built), or a local holding
        one (`lin`)."""
        if type(node) is ast.Attribute and type(node.value) is ast.Name and node.value.id == "self":
            return self.description.layers.get(node.attr)
        if type(node) is ast.Name and lists.get(f"<var>{node.id}"):
            return lists[f"<var>{node.id}"][0]
        return None

    def _spread(self, env, lists) -> Callable[[ast.expr], Any]:
        """Resolves `*hidden_init(self.fc1)` in an init call's arguments."""
        def spread(node: ast.expr) -> Any:
            if type(node) is ast.Call:
                return helper_value(self.analysis, node, env, lambda n: self.existing_layer(n, lists))
            return UNKNOWN
        return spread

    def _note_sources(self, init: Init, env) -> None:
        """Record the init parameters that are constructor arguments the constructor cannot
        resolve (`constant_(m.weight, constant_weight)` with `constant_weight=None`), with the
        values the file's call sites of the class pass."""
        if self.node is None:
            return
        for key, node in init.nodes.items():
            if type(node) is ast.Name and node.id in self.description.init_params and not known(init.params.get(key)):
                values = self.analysis.call_site_values(self.node, node.id)
                init.sources[key] = (node.id, values)

    def buffer(self, call: ast.Call, env, statement: ast.stmt) -> None:
        """`self.register_buffer("weight_epsilon", torch.empty(out, in))`: a tensor that is no
        parameter; named as noise, it is NoisyNet's per-step noise draw."""
        arguments = ordered_arguments(call)
        if len(arguments) < 2:
            return
        name = evaluate(arguments[0][1], env)
        if not isinstance(name, str):
            return
        layer = Layer(name, "buffer", "buffer", call=call, anchor=statement, noise=is_noise_name(name))
        self.description.buffers[name] = layer

    def attach_init(self, target: str, init: Init, lists) -> None:
        parts = target.split(".")
        if parts[0] == "self" and len(parts) >= 3:
            layer = self.description.layers.get(parts[1])
            if layer is not None and layer.category == "container" and layer.children and len(parts) == 3:
                # `init.orthogonal_(self.actor[i].weight, 0.01)` over `range(len(self.actor))`
                for child in self.description_children(layer):
                    if child.is_weight:
                        child.inits.append(init)
                return
            if layer is not None:
                layer.inits.append(init)
                return
        if len(parts) == 2 and f"<var>{parts[0]}" in lists:  # `layer = nn.Linear(); init(layer.weight)`
            for layer in lists[f"<var>{parts[0]}"]:
                layer.inits.append(init)
            return
        if parts[0] == "self" and len(parts) == 2 and parts[1] in self.description.buffers:
            self.description.buffers[parts[1]].inits.append(init)  # a noise draw, never a weight init
            return
        if parts[0] == "self" and len(parts) == 2 and parts[1] in self.description.layers:
            layer = self.description.layers[parts[1]]  # `nn.init.orthogonal_(self.W_hh)`: a Parameter
            if layer.kind == "Parameter" and init.target == "param":
                init.target = "weight"
                layer.category = "param" if known(layer.fan_in) or layer.category == "param" else layer.category
            layer.inits.append(init)
            return
        self.analysis.unattached_inits.append((init, self.description.name))

    @staticmethod
    def description_children(container: Layer) -> list[Layer]:
        found: list[Layer] = []
        stack = list(reversed(container.children or []))
        while stack:
            layer = stack.pop()
            found.append(layer)
            stack.extend(reversed(layer.children or []))
        return found

    # inits by layer type ------------------------------------------------------------------

    def apply_function(self, function: ast.expr, scope: set[int] | None = None) -> None:
        """`self.apply(self._init_weights)` / `self.apply(weights_init)` (`scope`: the ids of the
        layers it reaches, None for the whole model)."""
        node = self.init_function(function)
        if node is None:
            return
        params = [p.arg for p in node.args.args if p.arg != "self"]
        if params:
            self._typed_init_block(node.body, params[0], dict(self.analysis.constants), {"*"}, scope=scope)

    def init_function(self, function: ast.expr) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        text = dotted(function) or ""
        if text.startswith("self.") and text[5:] in self.methods:
            return self.methods[text[5:]]
        return self.symbols.functions.get(text)

    def _typed_init_block(self, block: list[ast.stmt], variable: str | None, env, kinds: set[str],
                          scope: set[int] | None = None, target: str | None = None,
                          whole: list[ast.stmt] | None = None) -> None:
        """Init calls on `m.weight` under `isinstance(m, nn.Linear)` checks (or, `target` given,
        on the loop's tensor itself: `for p in self.parameters(): if p.dim() == 2: ...`).
        `whole` is the whole function or loop body, read again per layer where an argument
        depends on the layer (`n = m.in_features`)."""
        whole = whole if whole is not None else block
        for statement in block:
            self.budget.spend()
            kind = type(statement)
            if kind is ast.If:
                # a test that names layer kinds narrows them (`isinstance(m, nn.Linear)`,
                # `classname.find("Linear") != -1`, `p.dim() == 2`); any other test leaves them
                # unknown: attach nowhere
                branch = statement
                while True:
                    narrowed = self._test_kinds(branch.test, variable)
                    self._typed_init_block(branch.body, variable, env, _narrow(kinds, narrowed), scope, target, whole)
                    if narrowed == {"*"}:  # `else` of a weights-only test (`p.dim() > 1`): the biases
                        kinds = set()
                    if len(branch.orelse) == 1 and type(branch.orelse[0]) is ast.If:  # `elif`
                        branch = branch.orelse[0]
                        self.budget.spend()
                        continue
                    self._typed_init_block(branch.orelse, variable, env, kinds, scope, target, whole)
                    break
            elif kind is ast.For or kind is ast.AsyncFor or kind is ast.With or kind is ast.AsyncWith:
                self._typed_init_block(statement.body, variable, env, kinds, scope, target, whole)
            elif is_compound(statement):
                continue
            elif kind is ast.AugAssign and variable:  # `m.weight.data *= scale`
                text = receiver_text(statement.target) or ""
                if text.split(".")[0] == variable and type(statement.op) in (ast.Mult, ast.Div):
                    factor = evaluate_with_self(statement.value, env)
                    if known(factor) and type(statement.op) is ast.Div:
                        factor = 1 / factor
                    attr = text.split(".", 1)[1].removesuffix(".data") if "." in text else ""
                    aimed = target or target_kind(attr)
                    self.typed_inits.append(TypedInit(kinds, Init("scale", aimed, {"factor": factor}), scope, aimed))
            else:
                for call, _ in self.symbols.calls(statement):
                    found = init_from_call(self.analysis, call, env, statement)
                    if not found or not variable or found[0].split(".")[0] != variable:
                        continue
                    init = found[1]
                    self._note_sources(init, env)
                    attr = found[0].split(".", 1)[1] if "." in found[0] else ""
                    if target is not None:
                        if attr not in ("", "data"):
                            continue
                        init.target = target
                    self.typed_inits.append(TypedInit(kinds, init, scope, init.target, variable, whole, env))

    def _test_kinds(self, test: ast.expr, variable: str | None) -> set[str] | None:
        """The layer kinds a test on the loop variable admits: `isinstance(m, nn.Linear)`,
        `type(m) == nn.Linear`, `classname.find('Linear') != -1` / `'Conv' in classname`
        (the class name of `m`), `p.dim() == 2` / `p.dim() > 1` / `'weight' in name` for
        parameters; None for any other test."""
        for call, _ in self.symbols.calls(test):
            if dotted(call.func) == "isinstance" and len(call.args) == 2:
                if receiver_text(call.args[0]) != variable:
                    continue
                types = call.args[1]
                elements = types.elts if type(types) is ast.Tuple else [types]
                kinds = {self.symbols.torch_name(e) or dotted(e) or "" for e in elements}
                return {k for k in kinds if k}
        if type(test) is ast.BoolOp and type(test.op) is ast.Or:
            found: set[str] = set()
            for value in test.values:
                kinds = self._test_kinds(value, variable)
                if kinds is None:
                    return None
                found |= kinds
            return found
        if type(test) is not ast.Compare or len(test.ops) != 1:
            return None
        left, op, right = test.left, type(test.ops[0]), test.comparators[0]
        # type(m) == nn.Linear
        if type(left) is ast.Call and dotted(left.func) == "type" and len(left.args) == 1 and op in (ast.Eq, ast.Is):
            name = self.symbols.torch_name(right) or dotted(right)
            return {name} if name else None
        # classname.find('Linear') != -1
        if type(left) is ast.Call and type(left.func) is ast.Attribute and left.func.attr == "find" and \
                len(left.args) == 1 and op in (ast.NotEq, ast.Gt, ast.GtE):
            word = evaluate(left.args[0], {})
            return _kinds_named(word) if isinstance(word, str) else None
        # 'Conv' in classname
        if op is ast.In and type(left) is ast.Constant and isinstance(left.value, str):
            if left.value in ("weight", "bias"):  # `'weight' in name` over named_parameters()
                return {"*"} if left.value == "weight" else set()
            return _kinds_named(left.value)
        # p.dim() == 2, p.dim() > 1, len(p.shape) >= 2, p.ndim > 1
        dims = _dimension_test(left, op, right)
        if dims is not None:
            return dims
        return None

    def _container_loop(self, statement: ast.For | ast.AsyncFor) -> Layer | None:
        """The container a loop of `__init__` walks (`for layer in self.layers`,
        `for i, layer in enumerate(self.layers)`), once it holds layers."""
        iterable = statement.iter
        if type(iterable) is ast.Call and dotted(iterable.func) == "enumerate" and iterable.args:
            iterable = iterable.args[0]
        layer = self.existing_layer(iterable, {})
        return layer if layer is not None and layer.category == "container" and layer.children else None

    def _loop_scope(self, owner: ast.expr) -> set[int] | None:
        """The layers `self.X.modules()` / `self.X.parameters()` reaches: X's subtree (None: the
        whole model, `self.modules()`)."""
        if type(owner) is ast.Name and owner.id == "self":
            return None
        layer = self.existing_layer(owner, {})
        return self._subtree(layer) if layer is not None else set()

    @staticmethod
    def _subtree(layer: Layer) -> set[int]:
        found: set[int] = set()
        stack = [layer]
        while stack:
            current = stack.pop()
            if id(current) in found:
                continue
            found.add(id(current))
            stack.extend(current.children or [])
        return found

    def _parameter_loop(self, statement: ast.For | ast.AsyncFor, names: list[str], env) -> None:
        """`for p in self.layers.parameters():` / `for name, p in self.named_parameters():` with
        init calls on `p` (under `p.dim() == 2`, `'weight' in name`): inits of the weights of the
        layers it reaches. With no test, an init applies to the weights (and the biases)."""
        iterable = statement.iter
        owner = iterable.func.value  # type: ignore[attr-defined]
        scope = self._loop_scope(owner)
        self._typed_init_block(statement.body, names[-1] if names else None, env, {"*"}, scope=scope, target="weight")

    def _layer_loop(self, statement: ast.For | ast.AsyncFor, count: Any, env, lists) -> None:
        """A loop that builds layers. The body runs once for the first iteration and once more
        for the steady state (`d = hidden` at the end of the first pass changes what the second
        builds); the second pass's layers are repeated for the remaining iterations."""
        before = {name: len(items) for name, items in lists.items()}
        if self._loop_depth >= _MAX_TWO_PASS_DEPTH:  # deeper loops: one pass repeated (bounded work)
            self._loop_depth += 1
            try:
                self.body(statement.body, env, lists, 1)
            finally:
                self._loop_depth -= 1
            for name, items in lists.items():
                if not name.startswith("<var>"):
                    start = before.get(name, 0)
                    items[start:] = _repeat_group(items[start:], count)
            return
        self._loop_depth += 1
        try:
            self._two_passes(statement, count, env, lists, before)
        finally:
            self._loop_depth -= 1

    def _two_passes(self, statement: ast.For | ast.AsyncFor, count: Any, env, lists, before: dict[str, int]) -> None:
        self.body(statement.body, env, lists, 1)
        if known(count) and isinstance(count, int) and count <= 1:
            if count == 0:
                for name, items in lists.items():
                    if not name.startswith("<var>"):
                        del items[before.get(name, 0):]
            return
        middle = {name: len(items) for name, items in lists.items()}
        self.body(statement.body, env, lists, 1)
        remaining = count - 1 if known(count) and isinstance(count, int) else UNKNOWN
        for name, items in lists.items():
            if name.startswith("<var>"):
                continue
            start, second = before.get(name, 0), middle.get(name, 0)
            first_pass, second_pass = items[start:second], items[second:]
            if not known(remaining):
                items[start:] = _repeat_group(first_pass + second_pass, UNKNOWN)
            else:
                items[start:] = first_pass + _repeat_group(second_pass, remaining)

    # what an expression builds ------------------------------------------------------------

    def list_items(self, value: ast.expr, env, lists, multiplicity, statement) -> list[Layer]:
        """Layers a list expression holds: literals, `*other`, comprehensions over range(n)."""
        kind = type(value)
        if kind is ast.Name and value.id in lists:  # type: ignore[attr-defined]
            return list(lists[value.id])  # type: ignore[attr-defined]
        if kind is ast.List or kind is ast.Tuple:
            group: list[Layer] = []  # one pass of the loop, repeated as a whole, in order
            for element in value.elts:  # type: ignore[attr-defined]
                if type(element) is ast.Starred:
                    group.extend(self.list_items(element.value, env, lists, 1, statement))
                    continue
                layer = self.layer_from(element, "item", env, lists, statement)
                if layer is not None:
                    group.append(layer)
            return _repeat_group(group, multiplicity)
        if kind is ast.ListComp or kind is ast.GeneratorExp:
            # `[nn.Linear(n, n) for _ in range(k)]`, and the flattening form
            # `[m for _ in range(k) for m in (nn.Linear(n, n), nn.ReLU())]`
            generators = value.generators  # type: ignore[attr-defined]
            element = value.elt  # type: ignore[attr-defined]
            local = dict(env)
            for generator in generators:
                for name in target_names(generator.target):
                    local[name] = UNKNOWN
            last = generators[-1]
            flattening = type(element) is ast.Name and type(last.target) is ast.Name and \
                last.target.id == element.id and type(last.iter) in (ast.List, ast.Tuple) and not last.ifs
            counted = generators[:-1] if flattening else generators
            inner = multiplicity
            for generator in counted:
                count = loop_count(generator.iter, env) if not generator.ifs else UNKNOWN
                inner = inner * count if known(count) and known(inner) else UNKNOWN
            if flattening:
                return self.list_items(last.iter, local, lists, inner, statement)
            layer = self.layer_from(element, "item", local, lists, statement)
            return _repeat(layer, inner) if layer is not None else []
        if kind is ast.BinOp and type(value.op) is ast.Add:  # type: ignore[attr-defined]  # [a] + [b for ...]
            return (self.list_items(value.left, env, lists, multiplicity, statement)  # type: ignore[attr-defined]
                    + self.list_items(value.right, env, lists, multiplicity, statement))  # type: ignore[attr-defined]
        if kind is ast.BinOp and type(value.op) is ast.Mult:  # type: ignore[attr-defined]
            count = evaluate(value.right, env)  # type: ignore[attr-defined]
            items = self.list_items(value.left, env, lists, multiplicity, statement)  # type: ignore[attr-defined]
            if known(count) and isinstance(count, int):
                if count * len(items) > _MAX_REPEAT:
                    return _repeat_group(items, UNKNOWN)
                return [item.copy() for _ in range(count) for item in items]
        return []

    def layer_from(self, value: ast.expr, name: str, env, lists, statement: ast.stmt | None) -> Layer | None:
        """What an expression in `__init__` builds, as a Layer (None if it is not a module)."""
        self.budget.spend()
        kind = type(value)
        if kind is ast.Name:
            variable = value.id  # type: ignore[attr-defined]
            if lists.get(f"<var>{variable}"):
                return lists[f"<var>{variable}"][0]
            default = self.param_nodes.get(variable)
            if default is not None and default is not value and variable not in self._following:
                self._following.add(variable)
                try:
                    return self.layer_from(default, name, env, lists, statement)
                finally:
                    self._following.discard(variable)
            return None
        if kind is ast.IfExp:  # `nn.Linear(w, w) if i not in skips else nn.Linear(w + c, w)`
            return self.layer_from(value.body, name, env, lists, statement)  # type: ignore[attr-defined]
        if kind is ast.Lambda:
            body = value.body  # type: ignore[attr-defined]
            params = [p.arg for p in value.args.args]  # type: ignore[attr-defined]
            if type(body) is ast.Name and params and body.id == params[0]:
                return Layer(name, "Identity", "identity")
            return None
        if kind is ast.Attribute:
            existing = self.existing_layer(value, lists)  # `self.out = init_layer_uniform(self.out)`
            if existing is not None:
                return existing
            text = self.symbols.qualified(value)
            last = text.rsplit(".", 1)[-1]
            if last in FUNCTIONAL_ACTIVATIONS and text.startswith("torch"):
                return Layer(name, last, "activation", activation=activation_name(last))
            return None
        if kind is not ast.Call:
            return None
        call: ast.Call = value  # type: ignore[assignment]
        layer_kind = self.symbols.torch_name(call.func)
        if layer_kind in WEIGHT_LAYERS:
            return self.weight_layer(layer_kind, call, name, env, statement)
        if layer_kind in NORM_LAYERS:
            return Layer(name, layer_kind, "norm", call=call, anchor=statement)
        if layer_kind in ACTIVATION_MODULES:
            return Layer(name, layer_kind, "activation", activation=ACTIVATION_MODULES[layer_kind], call=call,
                         anchor=statement)
        if layer_kind in IDENTITY_LAYERS:
            return Layer(name, layer_kind, "identity", call=call, anchor=statement)
        if layer_kind in RECURRENT_LAYERS:
            args = call_arguments(call, ("input_size", "hidden_size", "num_layers", "nonlinearity"), env)
            if layer_kind in ("RNN", "RNNCell") and "nonlinearity" not in args:
                args["nonlinearity"] = "tanh"
            return Layer(name, layer_kind, "recurrent", args=args, fan_in=args.get("input_size", UNKNOWN),
                         call=call, anchor=statement)
        if layer_kind == "Parameter" and (call.args or call.keywords):
            return self.parameter(call, name, env, statement)
        if layer_kind == "Sequential":
            children: list[Layer] = []
            for keyword_name, argument, star in ordered_arguments(call):
                if star:
                    if star == "*":
                        children.extend(self.list_items(argument, env, lists, 1, statement))
                    continue
                if keyword_name is not None:
                    continue
                child = self.layer_from(argument, f"{name}.{len(children)}", env, lists, statement)
                children.append(child if child is not None else Layer(f"{name}.{len(children)}", "?", "other"))
            return Layer(name, "Sequential", "container", children=named(children, name), call=call, anchor=statement)
        if layer_kind in ("ModuleList", "ParameterList"):
            first = first_argument(call)
            children = self.list_items(first, env, lists, 1, statement) if first is not None else []
            return Layer(name, layer_kind, "container", children=named(children, name), call=call, anchor=statement)
        if layer_kind in ("weight_norm", "spectral_norm") and (call.args or call.keywords):
            inner = self.layer_from(first_argument(call), name, env, lists, statement)  # type: ignore[arg-type]
            if inner is not None:
                inner.normalized = True
            return inner
        qualified = self.symbols.qualified(call.func)
        last = qualified.rsplit(".", 1)[-1] if qualified else ""
        if qualified in RESHAPE_LAYERS:
            return Layer(name, last, "identity", call=call, anchor=statement)
        if last in self.analysis.module_classes:
            return Layer(name, last, "module", call=call, anchor=statement)
        if last in self.symbols.functions and (call.args or call.keywords):  # `layer_init(nn.Linear(...), std=0.01)`
            return self.helper_layer(last, call, name, env, lists, statement)
        return Layer(name, last or "?", "other", call=call, anchor=statement)

    def weight_layer(self, kind: str, call: ast.Call, name: str, env, statement) -> Layer:
        if kind in ("Linear", "LazyLinear", "Bilinear"):
            names: tuple[str, ...] = ("out_features",) if kind == "LazyLinear" else (
                ("in1_features", "in2_features", "out_features") if kind == "Bilinear" else ("in_features", "out_features"))
            args = call_arguments(call, names, env)
            fan_in = args.get("in_features", args.get("in1_features", UNKNOWN))
            fan_out = args.get("out_features", UNKNOWN)
        else:
            dims = int(kind[-2]) if kind[-2].isdigit() else 2
            names = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
            if kind.startswith("Lazy"):
                names = names[1:]
            args = call_arguments(call, names, env)
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
        return Layer(name, kind, "weight", fan_in=fan_in, fan_out=fan_out, args=shown, call=call, anchor=statement)

    def parameter(self, call: ast.Call, name: str, env, statement) -> Layer | None:
        """`nn.Parameter(torch.randn(n, m) / math.sqrt(n))` -> a weight with an init."""
        value = first_argument(call)
        factor: Any = 1.0
        factor_nodes: list[tuple[ast.expr, bool]] = []
        while type(value) is ast.BinOp and type(value.op) in (ast.Mult, ast.Div):
            if type(value.right) is ast.Call and _is_number(value.left):  # `0.1 * torch.randn(n, m)`
                scale = evaluate_with_self(value.left, env)
                factor_nodes.append((value.left, False))
                value = value.right
                factor = factor * scale if known(scale) else UNKNOWN
                continue
            factor_nodes.append((value.right, type(value.op) is ast.Div))
            scale = evaluate_with_self(value.right, env)
            if not known(scale):
                factor = UNKNOWN
            else:
                factor = factor * scale if type(value.op) is ast.Mult else factor / scale
            value = value.left
        if type(value) is not ast.Call:
            return None
        creator = self.symbols.qualified(value.func).rsplit(".", 1)[-1]
        shape: list[Any] = []
        for argument in value.args:
            if type(argument) is ast.Starred:  # `torch.randn(*shape)`
                spread = evaluate_with_self(argument.value, env)
                shape.extend(spread if isinstance(spread, tuple) else [UNKNOWN])
            else:
                shape.append(evaluate_with_self(argument, env))
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = list(shape[0])
        # the fan-in is read where the model uses the tensor as a weight (`forward`), never from
        # its shape alone: a (num_patches, dim) positional embedding has no fan-in
        shape_nodes = tuple(a for a in value.args if type(a) is not ast.Starred)
        if creator in ("zeros", "ones", "empty", "zeros_like", "ones_like", "tensor", "FloatTensor", "Tensor") or len(shape) < 2:
            layer = Layer(name, "Parameter", "other", call=call, anchor=statement)
            if len(shape) >= 2 and creator in ("empty", "Tensor", "FloatTensor", "zeros", "ones"):
                layer.category = "param"
                layer.args = {"shape": tuple(shape)}
                layer.shape_nodes = shape_nodes
            return layer
        layer = Layer(name, "Parameter", "param", args={"shape": tuple(shape)}, call=call, anchor=statement,
                      shape_nodes=shape_nodes, factor_nodes=tuple(factor_nodes))
        if creator in ("randn", "randn_like", "normal"):
            std = factor if known(factor) else UNKNOWN
            layer.inits.append(Init("randn", "weight", {"std": abs(std) if known(std) else UNKNOWN}, value, statement))
        return layer

    def helper_layer(self, function: str, call: ast.Call, name: str, env, lists, statement) -> Layer | None:
        """An in-file function that initialises a layer and returns it (`layer_init`)."""
        node = self.symbols.functions[function]
        params = [p.arg for p in [*node.args.posonlyargs, *node.args.args]]
        if not params:
            return None
        first = first_argument(call)
        inner = self.layer_from(first, name, env, lists, statement) if first is not None else None
        if inner is None:
            return None
        self.helper_inits(node, call, env, lists, statement, {params[0]: inner})
        return inner

    def helper_statement(self, function: str, call: ast.Call, env, lists, statement: ast.stmt) -> None:
        """An in-file function called on layers for its effect: `initialize_uniformly(self.mu_layer)`,
        `init_weights(self.fc1, gain)`."""
        self.helper_inits(self.symbols.functions[function], call, env, lists, statement, {})

    def helper_inits(self, node: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, env, lists,
                     statement: ast.stmt, layers: dict[str, Layer]) -> None:
        """The init calls of an in-file helper on the layers it is given go to those layers,
        read with the helper's parameters bound to the call's arguments (and the sizes of the
        layers it is given: `fan_in = layer.weight.size(1)`)."""
        params = [p.arg for p in [*node.args.posonlyargs, *node.args.args]]
        local = dict(self.analysis.constants)
        found = defaults(node)
        for position, param in enumerate(params):
            if param in layers:
                continue
            argument = argument_node(call, param, position)
            layer = self.existing_layer(argument, lists) if argument is not None else None
            if layer is not None:
                layers[param] = layer
            elif argument is not None:
                local[param] = evaluate(argument, env)
            elif param in found:
                local[param] = evaluate(found[param], local)
            else:
                local[param] = UNKNOWN
        if not layers:
            return
        self.budget.spend()
        for inner_call, inner_statement in calls_with_statements(self.analysis, node.body):
            found_init = init_from_call(self.analysis, inner_call, local, statement)
            if found_init is None:
                continue
            target, init = found_init
            root, _, rest = target.partition(".")
            if root not in layers or not rest.startswith(("weight", "bias")):
                continue
            if not all(known(v) for v in init.params.values()):
                bound_env = straight_line_env(node.body, local, layers, self.budget, stop=inner_statement)
                again = init_from_call(self.analysis, bind_layers(inner_call, layers), bound_env, statement)
                if again is not None:
                    init = again[1]
            init.call, init.anchor = inner_call, statement
            init.target = target_kind(rest.split(".")[0])
            layers[root].inits.append(init)


@dataclass(eq=False)
class TypedInit:
    """An init call that reaches every layer of some kinds (`self.apply(fn)`, a loop over
    `self.modules()` or `self.parameters()`), with what is needed to read it again per layer."""

    kinds: set[str]
    init: Init
    scope: set[int] | None  # ids of the layers it can reach (None: all of the model's)
    target: str  # weight | bias: what the call initialises
    variable: str | None = None  # the name the module (or tensor) has in the code
    body: list[ast.stmt] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)


def _narrow(kinds: set[str], narrowed: set[str] | None) -> set[str]:
    """The layer kinds inside a branch whose test admits `narrowed` ({"?"}: none known)."""
    if narrowed is None:
        return {"?"}
    if "*" in narrowed:
        return kinds
    if "*" in kinds:
        return narrowed
    return kinds & narrowed


def _kinds_named(word: str) -> set[str]:
    """The layer kinds whose class name contains `word` (`classname.find('Conv')`)."""
    return {kind for kind in (*WEIGHT_LAYERS, *NORM_LAYERS, *RECURRENT_LAYERS) if word in kind} or {"?"}


def _dimension_test(left: ast.expr, op: type, right: ast.expr) -> set[str] | None:
    """`p.dim() == 2` (Linear weights), `p.dim() > 1` / `len(p.shape) >= 2` / `p.ndim > 1`
    (every weight)."""
    value = right.value if type(right) is ast.Constant else None  # type: ignore[attr-defined]
    if not isinstance(value, int):
        return None
    is_dim = (type(left) is ast.Call and type(left.func) is ast.Attribute and left.func.attr in ("dim", "ndimension")) or \
        (type(left) is ast.Attribute and left.attr == "ndim") or \
        (type(left) is ast.Call and dotted(left.func) == "len" and len(left.args) == 1 and
         type(left.args[0]) is ast.Attribute and left.args[0].attr == "shape")  # type: ignore[attr-defined]
    if not is_dim:
        return None
    if op is ast.Eq and value == 2:
        return {"Linear", "LazyLinear", "Parameter"}
    if (op is ast.Gt and value == 1) or (op is ast.GtE and value == 2) or (op is ast.NotEq and value == 1):
        return {"*"}
    if (op is ast.Gt and value == 2) or (op is ast.GtE and value == 3) or (op is ast.Eq and value in (3, 4, 5)):
        return {kind for kind in WEIGHT_LAYERS if "Conv" in kind}
    if (op is ast.Eq and value == 1) or (op is ast.Lt and value == 2) or (op is ast.LtE and value == 1):
        return set()  # biases
    return None


def _is_parameter_loop(statement: ast.For | ast.AsyncFor) -> bool:
    """`for p in self.parameters():`, `for name, p in self.net.named_parameters():`."""
    iterable = statement.iter
    return type(iterable) is ast.Call and type(iterable.func) is ast.Attribute and \
        iterable.func.attr in ("parameters", "named_parameters")


def _is_module_loop(statement: ast.For | ast.AsyncFor) -> bool:
    """`for m in self.modules():` with isinstance checks and init calls."""
    iterable = statement.iter
    return type(iterable) is ast.Call and type(iterable.func) is ast.Attribute and \
        iterable.func.attr in ("modules", "children", "named_modules")


def _is_number(node: ast.expr) -> bool:
    return type(node) is ast.Constant and type(node.value) in (int, float)  # type: ignore[attr-defined]


def _prod(value: Any, dims: int) -> Any:
    if isinstance(value, (tuple, list)):
        result = 1
        for v in value:
            if not known(v):
                return UNKNOWN
            result *= v
        return result
    return value**dims if known(value) and isinstance(value, (int, float)) else UNKNOWN


def _repeat_group(group: list[Layer], multiplicity: Any) -> list[Layer]:
    if known(multiplicity) and isinstance(multiplicity, int) and multiplicity * len(group) <= _MAX_REPEAT:
        if multiplicity == 1:
            return group
        return [layer.copy() for _ in range(multiplicity) for layer in group]
    result = [layer.copy() for layer in group]
    for layer in result:
        layer.count_known = False
    return result


def _repeat(layer: Layer, multiplicity: Any) -> list[Layer]:
    if known(multiplicity) and isinstance(multiplicity, int) and multiplicity <= 256:
        if multiplicity == 1:
            return [layer]
        return [layer.copy() for _ in range(multiplicity)]
    unknown = layer.copy()
    unknown.count_known = False
    return [unknown]


__all__ = ["ConstructorInterpreter", "argument_node", "call_arguments", "calls_with_statements",
           "first_argument", "init_from_call", "loop_count"]
