"""Every model of one file: the classes that are torch modules (through in-file bases too),
each described by the `__init__` and forward interpreters, and each `nn.Sequential(...)` built
outside them (at module level and in functions)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.constructor import ConstructorInterpreter, argument_node
from gradlint.analysis.models.description import MODULE_BASES, Init, Layer, ModelDescription, Op
from gradlint.analysis.models.forward import ForwardInterpreter, layer_ops
from gradlint.analysis.syntax import (
    FUNCTIONS,
    bodies,
    defaults,
    dotted,
    has_star_args,
    headers,
    is_compound,
    keyword,
    last_name,
    parenthesized_span,
)
from gradlint.analysis.values import UNKNOWN, evaluate, known

if TYPE_CHECKING:
    from gradlint.context import FileContext

_MAX_NESTED_CLASSES = 16
_SEQUENTIAL = frozenset({"Sequential"})


class ModelAnalysis:
    """Every model of one file, described once per file (`ctx.models`)."""

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self.symbols = ctx.symbols
        self.budget = ctx.budget
        self.text = ctx.source.text
        self.constants: dict[str, Any] = self.symbols.constants
        self.models: list[ModelDescription] = []
        # init calls in a model's `__init__` that no layer of it takes, with the model's name
        self.unattached_inits: list[tuple[Init, str]] = []
        self._described: dict[str, ModelDescription | None] = {}
        self._nesting = 0  # classes being described inside one another (a model used as a layer)
        self._spellings: dict[frozenset[str], frozenset[str]] = {}
        self._class_calls: dict[str, list[ast.Call]] | None = None
        # the file's classes by name: top level (and under module-level if/try) first, then those
        # defined inside functions
        self.class_nodes: dict[str, ast.ClassDef] = {name: index.node for name, index in self.symbols.classes.items()}
        for defined in self.symbols.nested.values():
            for name, node in defined.items():
                if type(node) is ast.ClassDef:
                    self.class_nodes.setdefault(name, node)
        self.module_classes = self._find_module_classes()
        for name in self.class_nodes:
            if name in self.module_classes:
                self.describe_class(name)
        if "Sequential" in self.text:  # nothing to find otherwise: skip the walk
            self._describe_sequentials()
        # inits applied from outside a model (`model = Net(); model.apply(weights_init)`): each
        # application judged on copies of the layers it reaches, (model, layer, the copy)
        self.applied: list[tuple[ModelDescription, Layer, Layer]] = []
        if ".apply(" in self.text and self.module_classes:
            self._external_applications()

    # which classes are modules ------------------------------------------------------------

    def _find_module_classes(self) -> set[str]:
        """Classes deriving from torch's Module (or Lightning's), directly or through classes
        of this file (matched by the last part of the base's name)."""
        found: set[str] = set()
        subclasses: dict[str, list[str]] = {}
        for name, node in self.class_nodes.items():
            for base in node.bases:
                text = dotted(base) or ""
                qualified = self.symbols.resolve_text(text) or text
                last = qualified.rsplit(".", 1)[-1]
                is_torch = qualified.startswith(("torch.", "pytorch_lightning.", "lightning.")) or qualified == last
                if last in MODULE_BASES and is_torch:
                    found.add(name)
                else:
                    subclasses.setdefault(last, []).append(name)
        work = list(found)
        while work:
            for subclass in subclasses.get(work.pop(), ()):
                if subclass not in found:
                    found.add(subclass)
                    work.append(subclass)
        return found

    def spellings(self, names: frozenset[str]) -> frozenset[str]:
        """The last names a callee can have in this file to resolve to one of `names`: the names
        themselves (`nn.Sequential`, `Sequential`) and the imports that rename them (`from
        torch.nn import Sequential as S`, in any scope). A cheap exact test before resolving."""
        found = self._spellings.get(names)
        if found is None:
            aliases = {local for local, target in self.symbols.imported_names().items()
                       if target.rsplit(".", 1)[-1] in names}
            found = self._spellings[names] = names | aliases
        return found

    # classes ------------------------------------------------------------------------------

    def describe_class(self, name: str) -> ModelDescription | None:
        """The description of a model class of the file (None while it is being described, or
        when model classes used as layers nest deeper than `_MAX_NESTED_CLASSES` here: it is
        then described on its own turn and the outer model sees an unknown layer)."""
        if name in self._described:
            return self._described[name]
        if self._nesting >= _MAX_NESTED_CLASSES:
            return None
        self._described[name] = None  # recursion guard
        self.budget.spend()
        node = self.class_nodes[name]
        description = ModelDescription(name, "module", node, node)
        # the last definition of a name is the method Python uses
        methods = {s.name: s for s in node.body if type(s) in FUNCTIONS}  # type: ignore[union-attr]
        self._nesting += 1
        try:
            constructor = ConstructorInterpreter(self, description, node, methods)
            constructor.run()
            description.attributes = constructor.attribute_values
            ForwardInterpreter(self, description, methods, constructor.attribute_values).run()
        finally:
            self._nesting -= 1
        self._described[name] = description
        self.models.append(description)
        return description

    # nn.Sequential outside model classes ------------------------------------------------

    def _describe_sequentials(self) -> None:
        inside: set[int] = set()  # calls within a Sequential described already
        torch_name = self.symbols.torch_name
        spellings = self.spellings(_SEQUENTIAL)
        for call, statement in self._calls_outside_classes():
            if last_name(call.func) not in spellings or torch_name(call.func) != "Sequential" or id(call) in inside:
                continue
            description = ModelDescription("nn.Sequential", "sequential", call, statement)
            builder = ConstructorInterpreter(self, description, None, {})
            layer = builder.layer_from(call, "seq", dict(self.constants), {}, statement)
            if layer is not None:
                description.layers["seq"] = layer
                description.path = [Op("input", name="x")] + layer_ops(self, layer)
                description.inputs = ["x"]
            self.models.append(description)
            inside.update(id(inner) for inner, _ in self.symbols.calls(call))

    def _calls_outside_classes(self):
        """(call, its statement) for the calls of module-level code and of functions, in
        source order; the top-level classes are left out (their layers are theirs, and a
        class that is no module holds no model of its own)."""
        calls = self.symbols.calls
        for top in self.symbols.tree.body:
            if type(top) is ast.ClassDef:
                continue
            stack = list(reversed(top.body)) if type(top) in FUNCTIONS else [top]  # type: ignore[attr-defined]
            while stack:
                statement = stack.pop()
                self.budget.spend()
                if type(statement) is ast.ClassDef and self._is_model_class(statement):
                    continue
                for part in headers(statement) if is_compound(statement) else (statement,):
                    for call, _ in calls(part):
                        yield call, statement
                for block in reversed(bodies(statement)):
                    stack.extend(reversed(block))

    def _is_model_class(self, node: ast.ClassDef) -> bool:
        return self.class_nodes.get(node.name) is node and node.name in self.module_classes

    # call sites -------------------------------------------------------------------------------

    def class_calls(self, name: str) -> list[ast.Call]:
        """The calls of the file that build a class by its name (`Net(constant_weight=0)`)."""
        if self._class_calls is None:
            self._class_calls = {}
            for call, _ in self.symbols.calls(self.symbols.tree):
                func = call.func
                if type(func) is ast.Name and func.id in self.class_nodes:
                    self._class_calls.setdefault(func.id, []).append(call)
        return self._class_calls.get(name, [])

    def call_site_values(self, node: ast.ClassDef, parameter: str) -> tuple:
        """The values the file's call sites of a model class pass for one constructor parameter,
        in source order, without repeats (UNKNOWN where a call site's value does not resolve,
        the default where it passes none)."""
        init = next((s for s in node.body if type(s) in FUNCTIONS and s.name == "__init__"), None)
        if init is None:
            return ()
        params = [p.arg for p in [*init.args.posonlyargs, *init.args.args]][1:]
        found_defaults = defaults(init)
        values: list[Any] = []
        for call in self.class_calls(node.name):
            self.budget.spend()
            argument = argument_node(call, parameter, params.index(parameter)) if parameter in params else keyword(call, parameter)
            if argument is None and has_star_args(call):
                value = UNKNOWN
            elif argument is None:
                value = evaluate(found_defaults[parameter], self.constants) if parameter in found_defaults else UNKNOWN
            else:
                value = evaluate(argument, self.constants)
            if not any(value is v or (known(value) and known(v) and value == v) for v in values):
                values.append(value)
        return tuple(values)

    # inits applied from outside --------------------------------------------------------------

    def _external_applications(self) -> None:
        """`model = Net(...); model.apply(weights_init)` (or `Net().apply(fn)`) in module code or
        a function: the init function's calls judged on copies of the model's layers."""
        for body in self._bodies_outside_classes():
            instances: dict[str, str] = {}  # variable -> model class
            for statement in body:
                self.budget.spend()
                kind = type(statement)
                if kind is ast.Assign and len(statement.targets) == 1 and type(statement.targets[0]) is ast.Name:
                    built = self._built_class(statement.value)
                    if built is not None:
                        instances[statement.targets[0].id] = built
                    else:
                        instances.pop(statement.targets[0].id, None)
                    if type(statement.value) is not ast.Call:
                        continue
                    call = statement.value
                elif kind is ast.Expr and type(statement.value) is ast.Call:
                    call = statement.value
                else:
                    continue
                func = call.func
                if type(func) is not ast.Attribute or func.attr != "apply" or len(call.args) != 1 or call.keywords:
                    continue
                owner = func.value
                name = instances.get(owner.id) if type(owner) is ast.Name else self._built_class(owner)
                if name is not None:
                    self._apply_to(name, call.args[0])

    def _bodies_outside_classes(self):
        """The module's body and each module-level function's, with the blocks of module-level
        `if`/`with`/`try` flattened into the module's (notebook cells often guard code)."""
        module: list[ast.stmt] = []
        functions: list[list[ast.stmt]] = []
        stack = list(reversed(self.symbols.tree.body))
        while stack:
            statement = stack.pop()
            if type(statement) in FUNCTIONS:
                functions.append(statement.body)  # type: ignore[attr-defined]
            elif type(statement) is not ast.ClassDef:
                module.append(statement)
                for block in reversed(bodies(statement)):
                    stack.extend(reversed(block))
        return [module, *functions]

    def _built_class(self, node: ast.expr) -> str | None:
        """`Net(...)`, `Net(...).to(device)` -> Net (a model class of the file)."""
        while type(node) is ast.Call and type(node.func) is ast.Attribute and node.func.attr in ("to", "cuda", "cpu", "float", "double"):
            node = node.func.value
        if type(node) is ast.Call and type(node.func) is ast.Name and node.func.id in self.module_classes:
            return node.func.id
        return None

    def _apply_to(self, name: str, function: ast.expr) -> None:
        description = self.describe_class(name)
        if description is None:
            return
        node = self.class_nodes[name]
        methods = {s.name: s for s in node.body if type(s) in FUNCTIONS}  # type: ignore[union-attr]
        interpreter = ConstructorInterpreter(self, description, node, methods)
        interpreter.apply_function(function)
        if not interpreter.typed_inits:
            return
        originals = [layer for layer in description.all_layers() if layer.is_weight]
        copies = [layer.copy() for layer in originals]
        interpreter.apply_typed_inits(interpreter.typed_inits, copies)
        for original, copy in zip(originals, copies):
            if len(copy.inits) > len(original.inits):
                self.applied.append((description, original, copy))

    # source text ----------------------------------------------------------------------------

    def offsets_of(self, node: ast.AST) -> tuple[int, int]:
        return self.ctx.offsets_of(node)

    def text_with_parentheses(self, node: ast.AST) -> str:
        """A node's source text with the grouping parentheses around it (`(1 / n)`), as it
        reads in the code."""
        start, end = parenthesized_span(self.text, *self.ctx.offsets_of(node))
        return self.text[start:end]
