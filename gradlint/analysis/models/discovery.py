"""Every model of one file: the classes that are torch modules (through in-file bases too),
each described by the `__init__` and forward interpreters, and each `nn.Sequential(...)` built
outside them (at module level and in functions)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from gradlint.analysis.models.constructor import ConstructorInterpreter
from gradlint.analysis.models.description import MODULE_BASES, Init, ModelDescription, Op
from gradlint.analysis.models.forward import ForwardInterpreter, layer_ops
from gradlint.analysis.syntax import FUNCTIONS, bodies, dotted, headers, is_compound, last_name, parenthesized_span

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
        self.module_classes = self._find_module_classes()
        for name in self.symbols.classes:
            if name in self.module_classes:
                self.describe_class(name)
        if "Sequential" in self.text:  # nothing to find otherwise: skip the walk
            self._describe_sequentials()

    # which classes are modules ------------------------------------------------------------

    def _find_module_classes(self) -> set[str]:
        """Classes deriving from torch's Module (or Lightning's), directly or through classes
        of this file (matched by the last part of the base's name)."""
        found: set[str] = set()
        subclasses: dict[str, list[str]] = {}
        for name, index in self.symbols.classes.items():
            for base in index.node.bases:
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
        node = self.symbols.classes[name].node
        description = ModelDescription(name, "module", node, node)
        # the last definition of a name is the method Python uses
        methods = {s.name: s for s in node.body if type(s) in FUNCTIONS}  # type: ignore[union-attr]
        self._nesting += 1
        try:
            constructor = ConstructorInterpreter(self, description, node, methods)
            constructor.run()
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
        index = self.symbols.classes.get(node.name)
        return index is not None and index.node is node and node.name in self.module_classes

    # source text ----------------------------------------------------------------------------

    def offsets_of(self, node: ast.AST) -> tuple[int, int]:
        return self.ctx.offsets_of(node)

    def text_with_parentheses(self, node: ast.AST) -> str:
        """A node's source text with the grouping parentheses around it (`(1 / n)`), as it
        reads in the code."""
        start, end = parenthesized_span(self.text, *self.ctx.offsets_of(node))
        return self.text[start:end]
