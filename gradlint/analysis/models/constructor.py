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
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.description import (
    ACTIVATION_MODULES,
    BOUND_NAMES,
    FUNCTIONAL_ACTIVATIONS,
    IDENTITY_LAYERS,
    INIT_FUNCTIONS,
    NORM_LAYERS,
    RECURRENT_LAYERS,
    TENSOR_INIT_METHODS,
    WEIGHT_LAYERS,
    Init,
    Layer,
    ModelDescription,
    activation_name,
    named,
    target_kind,
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
_MAX_REPEAT = 512  # layers a loop or comprehension is expanded into; beyond, the count is unknown


def call_arguments(call: ast.Call, names: tuple[str, ...], env: dict[str, Any], skip: int = 0) -> dict[str, Any]:
    """Resolve a call's arguments by position (as `names`) and keyword, in source order, up to
    the first `*args`/`**kwargs` (after which positions are unknown); the first `skip`
    arguments are left out."""
    values: dict[str, Any] = {}
    position = 0
    for name, value, star in ordered_arguments(call)[skip:]:
        if star:
            return values
        if name is not None:
            values[name] = evaluate(value, env)
        elif position < len(names):
            values[names[position]] = evaluate(value, env)
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
        args = [evaluate(a, env) for a in iterable.args if type(a) is not ast.Starred]  # type: ignore[attr-defined]
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


def init_from_call(analysis: "ModelAnalysis", call: ast.Call, env: dict[str, Any],
                   anchor: ast.stmt | None) -> tuple[str, Init] | None:
    """(`self.fc.weight` target text, Init) for `nn.init.normal_(self.fc.weight, std=1)`,
    `self.fc.weight.data.normal_()`, `w.uniform_(-a, a)`, `w.data.mul_(0.1)`; else None."""
    func = call.func
    if last_name(func) not in analysis.spellings(_INIT_NAMES):
        return None
    qualified = analysis.symbols.qualified(func)
    last = qualified.rsplit(".", 1)[-1] if qualified else ""
    if last in INIT_FUNCTIONS and ("init" in qualified.split(".") or qualified == last):
        first = first_argument(call)
        if first is None:
            return None
        target = receiver_text(first)
        if target is None:
            return None
        method = last.rstrip("_")
        params = call_arguments(call, _INIT_PARAMETERS.get(method, ()), env, skip=1)
        if method == "constant":
            value = params.get("val", UNKNOWN)
            method = "constant_zero" if value == 0 else "constant"
        return target, Init(method, target_kind(target), params, call, anchor)
    if type(func) is ast.Attribute and func.attr in TENSOR_INIT_METHODS:
        owner = receiver_text(func.value)
        if owner is None:
            return None
        target = owner[:-5] if owner.endswith(".data") else owner
        kind = target_kind(target)
        method = func.attr
        if method == "normal_":
            params = call_arguments(call, ("mean", "std"), env)
            params.setdefault("std", 1.0)
            return target, Init("normal", kind, params, call, anchor)
        if method == "uniform_":
            params = call_arguments(call, ("a", "b"), env)
            params = {"a": params.get("a", 0.0), "b": params.get("b", 1.0)}
            return target, Init("uniform", kind, params, call, anchor)
        if method == "fill_":
            value = call_arguments(call, ("val",), env).get("val", UNKNOWN)
            return target, Init("constant_zero" if value == 0 else "constant", kind, {"val": value}, call, anchor)
        if method == "zero_":
            return target, Init("constant_zero", kind, {}, call, anchor)
        if method == "mul_":
            factor = call_arguments(call, ("factor",), env).get("factor", UNKNOWN)
            return target, Init("scale", kind, {"factor": factor}, call, anchor)
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
        self.typed_inits: list[tuple[set[str], str, Init]] = []  # (layer kinds, attr of m, init)
        self._inlined: set[str] = set()
        self._following: set[str] = set()  # parameter defaults being followed (`a=b, b=a`)

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
        for kinds, attr, init_ in self.typed_inits:
            for layer in self.description.all_layers():
                if layer.kind in kinds or ("*" in kinds and layer.is_weight):
                    if target_kind(attr) == init_.target:
                        layer.inits.append(init_)
        if self.node is not None and self.description.bound_hint is None:
            start, end = self.analysis.offsets_of(self.node)
            if self.analysis.text.find("action_space.high", start, end) >= 0:
                self.description.bound_hint = "`action_space.high`"

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
                condition = evaluate(branch.test, env)  # type: ignore[attr-defined]
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
            if _is_module_loop(statement):
                names = target_names(statement.target)
                self._typed_init_block(statement.body, names[-1] if names else None, env, {"*"})
            else:
                # one pass of the body, then what it appended is repeated as a group, in order
                before = {name: len(items) for name, items in lists.items()}
                self.body(statement.body, env, lists, 1)
                for name, items in lists.items():
                    if name.startswith("<var>"):
                        continue
                    start = before.get(name, 0)
                    items[start:] = _repeat_group(items[start:], count)
            env.update(saved)
        elif kind is ast.With or kind is ast.AsyncWith or kind is ast.Try:
            self.body(statement.body, env, lists, multiplicity)
        elif kind is ast.Assign:
            for target in statement.targets:
                self.assign(target, statement.value, env, lists, multiplicity, statement)
        elif kind is ast.AnnAssign:
            if statement.value is not None:
                self.assign(statement.target, statement.value, env, lists, multiplicity, statement)
        elif kind is ast.AugAssign:
            if type(statement.target) is ast.Name and type(statement.op) is ast.Add:
                name = statement.target.id
                if name in lists:
                    lists[name].extend(self.list_items(statement.value, env, lists, multiplicity, statement))
                else:
                    value = evaluate(statement.value, env)
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
            if layer is not None:
                self.description.layers[attr] = layer
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
            env[name] = evaluate(value, env)

    def call_statement(self, call: ast.Call, env, lists, multiplicity, statement: ast.stmt) -> None:
        func = call.func
        if type(func) is ast.Attribute and type(func.value) is ast.Name:
            owner, method = func.value.id, func.attr
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
        found = init_from_call(self.analysis, call, env, statement)
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
        self.analysis.unattached_inits.append((init, self.description.name))

    # inits by layer type ------------------------------------------------------------------

    def apply_function(self, function: ast.expr) -> None:
        """`self.apply(self._init_weights)` / `self.apply(weights_init)`."""
        text = dotted(function) or ""
        node = None
        if text.startswith("self.") and text[5:] in self.methods:
            node = self.methods[text[5:]]
        elif text in self.symbols.functions:
            node = self.symbols.functions[text]
        if node is None:
            return
        params = [p.arg for p in node.args.args if p.arg != "self"]
        if params:
            self._typed_init_block(node.body, params[0], dict(self.analysis.constants), {"*"})

    def _typed_init_block(self, body: list[ast.stmt], variable: str | None, env, kinds: set[str]) -> None:
        """Init calls on `m.weight` under `isinstance(m, nn.Linear)` checks."""
        for statement in body:
            self.budget.spend()
            kind = type(statement)
            if kind is ast.If:
                # an `isinstance(m, nn.Linear)` test narrows the layers; any other test
                # (`classname.find("Linear")`) leaves them unknown: attach nowhere
                branch = statement
                while True:
                    narrowed = self._isinstance_kinds(branch.test, variable)
                    self._typed_init_block(branch.body, variable, env, narrowed or {"?"})
                    if len(branch.orelse) == 1 and type(branch.orelse[0]) is ast.If:  # `elif`
                        branch = branch.orelse[0]
                        self.budget.spend()
                        continue
                    self._typed_init_block(branch.orelse, variable, env, kinds)
                    break
            elif kind is ast.For or kind is ast.AsyncFor or kind is ast.With or kind is ast.AsyncWith:
                self._typed_init_block(statement.body, variable, env, kinds)
            elif is_compound(statement):
                continue
            elif kind is ast.AugAssign and variable:  # `m.weight.data *= scale`
                target = receiver_text(statement.target) or ""
                if target.split(".")[0] == variable and type(statement.op) in (ast.Mult, ast.Div):
                    factor = evaluate(statement.value, env)
                    if known(factor) and type(statement.op) is ast.Div:
                        factor = 1 / factor
                    attr = target.split(".", 1)[1].removesuffix(".data") if "." in target else ""
                    self.typed_inits.append((kinds, attr, Init("scale", target_kind(attr), {"factor": factor})))
            else:
                for call, _ in self.symbols.calls(statement):
                    found = init_from_call(self.analysis, call, env, statement)
                    if found and variable and found[0].split(".")[0] == variable:
                        attr = found[0].split(".", 1)[1] if "." in found[0] else ""
                        self.typed_inits.append((kinds, attr, found[1]))

    def _isinstance_kinds(self, test: ast.expr, variable: str | None) -> set[str] | None:
        for call, _ in self.symbols.calls(test):
            if dotted(call.func) == "isinstance" and len(call.args) == 2:
                if receiver_text(call.args[0]) != variable:
                    continue
                types = call.args[1]
                elements = types.elts if type(types) is ast.Tuple else [types]
                kinds = {self.symbols.torch_name(e) or dotted(e) or "" for e in elements}
                return {k for k in kinds if k}
        return None

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
            generator = value.generators[0]  # type: ignore[attr-defined]
            count = loop_count(generator.iter, env)
            inner = multiplicity * count if known(count) and known(multiplicity) else UNKNOWN
            if len(value.generators) > 1:  # type: ignore[attr-defined]
                inner = UNKNOWN
            local = dict(env)
            for name in target_names(generator.target):
                local[name] = UNKNOWN
            layer = self.layer_from(value.elt, "item", local, lists, statement)  # type: ignore[attr-defined]
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
        while type(value) is ast.BinOp and type(value.op) in (ast.Mult, ast.Div):
            if type(value.right) is ast.Call and _is_number(value.left):  # `0.1 * torch.randn(n, m)`
                scale = evaluate(value.left, env)
                value = value.right
                factor = factor * scale if known(scale) else UNKNOWN
                continue
            scale = evaluate(value.right, env)
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
                spread = evaluate(argument.value, env)
                shape.extend(spread if isinstance(spread, tuple) else [UNKNOWN])
            else:
                shape.append(evaluate(argument, env))
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = list(shape[0])
        if creator in ("zeros", "ones", "empty", "zeros_like", "ones_like", "tensor", "FloatTensor", "Tensor") or len(shape) < 2:
            layer = Layer(name, "Parameter", "other", call=call, anchor=statement)
            if len(shape) == 2 and creator in ("empty", "Tensor", "FloatTensor"):
                layer.category = "param"
                layer.fan_in = min(s for s in shape) if all(known(s) for s in shape) else UNKNOWN
            return layer
        fan_in = min(shape) if all(known(s) and isinstance(s, (int, float)) for s in shape) else UNKNOWN
        layer = Layer(name, "Parameter", "param", fan_in=fan_in, fan_out=fan_in,
                      args={"shape": tuple(shape)}, call=call, anchor=statement)
        if creator in ("randn", "randn_like", "normal"):
            std = factor if known(factor) else UNKNOWN
            layer.inits.append(Init("randn", "weight", {"std": abs(std) if known(std) else UNKNOWN}, value, statement))
        return layer

    def helper_layer(self, function: str, call: ast.Call, name: str, env, lists, statement) -> Layer | None:
        """An in-file function that initialises a layer and returns it (`layer_init`)."""
        node = self.symbols.functions[function]
        params = node.args.args
        if not params:
            return None
        first = first_argument(call)
        inner = self.layer_from(first, name, env, lists, statement) if first is not None else None
        if inner is None:
            return None
        local = dict(self.analysis.constants)
        found = defaults(node)
        for position, param in enumerate(params):
            argument = argument_node(call, param.arg, position)
            if argument is not None:
                local[param.arg] = evaluate(argument, env)
            elif param.arg in found:
                local[param.arg] = evaluate(found[param.arg], local)
        layer_param = params[0].arg
        for inner_call, _ in calls_with_statements(self.analysis, node.body):
            init = init_from_call(self.analysis, inner_call, local, statement)
            if init and init[0].split(".")[0] == layer_param:
                inner.inits.append(init[1])
        return inner


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
