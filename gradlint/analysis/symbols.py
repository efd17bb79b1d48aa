"""One file's names, built once from its `ast` tree and shared by every analysis and rule.

- imports, scoped: the module's (including those inside top-level `if`/`try`/`with` blocks and
  class bodies) and each function's own (`def f(): from torch.optim import SGD as S`), collected
  in one pass whatever rules are selected;
- `resolve(node)`: the qualified name an expression spells (`optim.Adam` -> `torch.optim.Adam`),
  through the imports of the scope the expression is in;
- the module's constants, evaluated once with the one constant evaluator (`values.evaluate`);
- an index of the functions and classes (top-level, methods, and nested ones by scope);
- `calls(node)`: the calls under a node in evaluation order, memoised per statement and call.

It never changes after it is built; what an analysis learns it keeps itself.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from gradlint.analysis.syntax import COMPREHENSIONS, DEFINITIONS, FUNCTIONS, dotted, receiver_text

Scope = "ast.FunctionDef | ast.AsyncFunctionDef | None"


class ImportTable:
    """Maps a local name to the dotted name it was imported as (`nn` -> `torch.nn`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.star_modules: list[str] = []  # `from X import *`: X (its names are unknown here)

    def add(self, node: ast.Import | ast.ImportFrom) -> None:
        if type(node) is ast.Import:
            for alias in node.names:
                if alias.asname:
                    self.names[alias.asname] = alias.name
                else:  # `import torch.nn` binds `torch`
                    root = alias.name.split(".")[0]
                    self.names.setdefault(root, root)
            return
        module = "." * node.level + (node.module or "")  # type: ignore[union-attr]
        for alias in node.names:
            if alias.name == "*":
                self.star_modules.append(module)
            else:
                self.names[alias.asname or alias.name] = f"{module}.{alias.name}" if module else alias.name

    def resolve(self, name: str | None) -> str | None:
        """Qualify a dotted name (`optim.Adam` -> `torch.optim.Adam`); unchanged if its head was
        not imported here; None for None."""
        if not name:
            return name
        head, _, rest = name.partition(".")
        target = self.names.get(head)
        if target is None:
            return name
        return f"{target}.{rest}" if rest else target

    def alias_for(self, qualified: str) -> str | None:
        """The shortest local spelling of a qualified name the imports give, if any."""
        best: str | None = None
        for local, target in self.names.items():
            if qualified == target:
                return local
            if qualified.startswith(target + "."):
                candidate = local + qualified[len(target):]
                if best is None or len(candidate) < len(best):
                    best = candidate
        return best


@dataclass(eq=False)
class ClassIndex:
    node: ast.ClassDef
    methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)


# Per node type: its child fields that can hold expressions or statements, last field first (the
# walk pushes them so that the first field is walked first). Operator, context and identifier
# fields hold no calls.
_SKIP_FIELDS = {"ctx", "op", "ops", "id", "attr", "arg", "name", "names", "module", "level", "type_comment",
                "kind", "conversion", "is_async", "simple", "type_ignores", "format_spec"}
_REVERSED_FIELDS: dict[type, tuple[str, ...]] = {}


# A comprehension evaluates its iterables before its element.
_FIELD_ORDER = {ast.ListComp: ("generators", "elt"), ast.SetComp: ("generators", "elt"),
                ast.GeneratorExp: ("generators", "elt"), ast.DictComp: ("generators", "key", "value")}


def _reversed_fields(kind: type) -> tuple[str, ...]:
    fields = _REVERSED_FIELDS.get(kind)
    if fields is None:
        order = _FIELD_ORDER.get(kind) or [f for f in kind._fields if f not in _SKIP_FIELDS]
        fields = _REVERSED_FIELDS[kind] = tuple(reversed(order))
    return fields


# node types worth entering: every ast class except leaves that can hold no call (names,
# constants, contexts, operators) - most nodes of a file are such leaves
_LEAVES = (ast.Name, ast.Constant, ast.Pass, ast.Break, ast.Continue, ast.alias, ast.Global, ast.Nonlocal,
           ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
_WALKABLE: frozenset[type] = frozenset(
    kind for kind in vars(ast).values()
    if isinstance(kind, type) and issubclass(kind, ast.AST) and not issubclass(kind, _LEAVES)
)
_MEMO_TYPES: frozenset[type] = frozenset(
    kind for kind in vars(ast).values() if isinstance(kind, type) and issubclass(kind, ast.stmt)
) | {ast.Call}


class Symbols:
    """The symbol layer of one file (see the module docstring)."""

    def __init__(self, tree: ast.Module) -> None:
        from gradlint.analysis.values import module_constants

        self.tree = tree
        self.imports = ImportTable()  # module scope
        self._local_imports: dict[int, ImportTable] = {}  # id(function) -> its own imports
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}  # top level
        self.classes: dict[str, ClassIndex] = {}  # top level (and under top-level if/try)
        self.nested: dict[int, dict[str, ast.AST]] = {}  # id(function) -> functions/classes defined in it
        self._function_spans: list[tuple[tuple, tuple, Any]] = []  # every function's (start, end, node)
        self._calls: dict[int, tuple[ast.AST, bool, list]] = {}
        self._option_defaults: dict[str, Any] | None = None
        self._index(tree)
        self.constants: dict[str, Any] = module_constants(tree)

    # building ---------------------------------------------------------------------------

    def _index(self, tree: ast.Module) -> None:
        """One walk over the statements: imports by scope, definitions by scope."""
        stack: list[tuple[ast.stmt, Any, bool]] = [(s, None, True) for s in reversed(tree.body)]
        while stack:
            statement, function, top = stack.pop()
            kind = type(statement)
            if kind is ast.Import or kind is ast.ImportFrom:
                table = self.imports if function is None else self._local_imports.setdefault(id(function), ImportTable())
                table.add(statement)  # type: ignore[arg-type]
                continue
            if kind in FUNCTIONS:
                self._function_spans.append(((statement.lineno, statement.col_offset),  # type: ignore[attr-defined]
                                             (statement.end_lineno, statement.end_col_offset), statement))  # type: ignore[attr-defined]
                if function is None and top:
                    self.functions.setdefault(statement.name, statement)  # type: ignore[attr-defined]
                elif function is not None:
                    self.nested.setdefault(id(function), {}).setdefault(statement.name, statement)  # type: ignore[attr-defined]
                stack.extend((s, statement, False) for s in reversed(statement.body))  # type: ignore[attr-defined]
                continue
            if kind is ast.ClassDef:
                if function is None and top:
                    index = self.classes.setdefault(statement.name, ClassIndex(statement))  # type: ignore[attr-defined]
                    if index.node is statement:
                        for member in statement.body:  # type: ignore[attr-defined]
                            if type(member) in FUNCTIONS:
                                index.methods.setdefault(member.name, member)  # type: ignore[attr-defined]
                elif function is not None:
                    self.nested.setdefault(id(function), {}).setdefault(statement.name, statement)  # type: ignore[attr-defined]
                # methods are their own scopes; other class-body statements are in the enclosing one
                stack.extend((s, function, False) for s in reversed(statement.body))  # type: ignore[attr-defined]
                continue
            from gradlint.analysis.syntax import bodies

            blocks = bodies(statement)
            for block in reversed(blocks):
                stack.extend((s, function, top and function is None) for s in reversed(block))

    # scopes -----------------------------------------------------------------------------

    def scope_of(self, node: ast.AST) -> Any:
        """The innermost function whose span holds `node` (None at module level), found by
        position: no parent map of the whole tree is built."""
        line = getattr(node, "lineno", None)
        if line is None or not self._function_spans:
            return None
        start, end = (line, node.col_offset), (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        best = None
        for first, last, function in self._function_spans:
            if function is not node and first <= start and end <= last and (best is None or first >= best[0]):
                best = (first, function)
        return best[1] if best is not None else None

    def enclosing(self, scope: Any) -> list:
        """`scope` and the functions around it, innermost first."""
        chain = []
        while scope is not None:
            chain.append(scope)
            scope = self.scope_of(scope)
        return chain

    # names ------------------------------------------------------------------------------

    def resolve_text(self, text: str | None, scope: Any = None) -> str | None:
        """Qualify a dotted name as written in `scope` (None: the module)."""
        if not text:
            return text
        if self._local_imports and scope is not None:
            head = text.split(".", 1)[0]
            for function in self.enclosing(scope):
                table = self._local_imports.get(id(function))
                if table is not None and head in table.names:
                    return table.resolve(text)
        return self.imports.resolve(text)

    def resolve(self, node: ast.AST | None, scope: Any = ...) -> str | None:
        """The qualified name an expression spells (`nn.Linear` -> `torch.nn.Linear`), through
        the imports of its scope; None when it is not a dotted name."""
        text = dotted(node)
        if text is None:
            return None
        if scope is ...:
            scope = self.scope_of(node) if self._local_imports else None
        return self.resolve_text(text, scope)

    def qualified(self, node: ast.AST | None, scope: Any = ...) -> str:
        """`resolve`, with "" for what is not a dotted name."""
        return self.resolve(node, scope) or ""

    def torch_name(self, node: ast.AST | None, scope: Any = ...) -> str | None:
        """`nn.Linear` -> `Linear` when it is torch's (or an unimported bare name that is not a
        class of this file), else None."""
        qualified = self.qualified(node, scope)
        if not qualified:
            return None
        last = qualified.rsplit(".", 1)[-1]
        if qualified.startswith("torch.") or (qualified == last and last not in self.classes):
            return last
        return None

    def alias_for(self, qualified: str) -> str | None:
        """A module-level spelling of a qualified name (what a fix may write anywhere)."""
        return self.imports.alias_for(qualified)

    def imported_names(self) -> dict[str, str]:
        """Every imported local name of the file and what it names, module scope last (wins)."""
        found: dict[str, str] = {}
        for table in self._local_imports.values():
            found.update(table.names)
        found.update(self.imports.names)
        return found

    def method(self, class_name: str, name: str, seen: set | None = None) -> Any:
        """A method of a class of the file or of its in-file bases."""
        seen = seen if seen is not None else set()
        index = self.classes.get(class_name)
        if index is None or class_name in seen:
            return None
        seen.add(class_name)
        if name in index.methods:
            return index.methods[name]
        for base in index.node.bases:
            text = dotted(base)
            if text:
                found = self.method(text.rsplit(".", 1)[-1], name, seen)
                if found is not None:
                    return found
        return None

    @property
    def option_defaults(self) -> dict[str, Any]:
        """The defaults a script's command-line options take when it is run as written:
        `parser.add_argument("--env-id", default="CartPole-v1")` and dataclass fields of an
        options class (`env_id: str = "CartPole-v1"`, as tyro reads them) -> {"env_id": ...}. A
        name given different defaults in different places is left out."""
        if self._option_defaults is None:
            from gradlint.analysis.values import UNKNOWN, evaluate

            found: dict[str, set] = {}
            for call, _ in self.calls(self.tree):
                func = call.func
                if type(func) is not ast.Attribute or func.attr != "add_argument" or not call.args:
                    continue
                flags = [a.value for a in call.args if type(a) is ast.Constant and isinstance(a.value, str)]
                dest = next((k.value.value for k in call.keywords if k.arg == "dest"
                             and type(k.value) is ast.Constant), None)
                long = [f for f in flags if f.startswith("--")] or flags
                name = dest or (long[0].lstrip("-").replace("-", "_") if long else None)
                default = next((k.value for k in call.keywords if k.arg == "default"), None)
                if name and default is not None:
                    found.setdefault(name, set()).add(evaluate(default, self.constants))
            for index in self.classes.values():
                if not any(dotted(d) in ("dataclass", "dataclasses.dataclass") or
                           (type(d) is ast.Call and dotted(d.func) in ("dataclass", "dataclasses.dataclass"))
                           for d in index.node.decorator_list):
                    continue
                for statement in index.node.body:
                    if type(statement) is ast.AnnAssign and type(statement.target) is ast.Name and statement.value:
                        found.setdefault(statement.target.id, set()).add(evaluate(statement.value, self.constants))
            self._option_defaults = {name: next(iter(values)) for name, values in found.items()
                                     if len(values) == 1 and next(iter(values)) is not UNKNOWN}
        return self._option_defaults

    # calls ------------------------------------------------------------------------------

    def calls(self, node: ast.AST, in_closure: bool = False) -> list[tuple[ast.Call, bool]]:
        """The calls under `node` in evaluation order (receiver, arguments, then the call),
        each with whether it runs inside a comprehension. Lambda bodies are skipped (they do
        not run here). Memoised per statement and call for the file."""
        hit = self._calls.get(id(node))
        if hit is None or hit[0] is not node or hit[1] != in_closure:
            hit = self._calls[id(node)] = (node, in_closure, self._walk_calls(node, in_closure))
        elif len(hit) == 5:  # a slice of an enclosing walk, copied out on first use
            hit = self._calls[id(node)] = (node, in_closure, hit[2][hit[3]:hit[4]])
        return hit[2]

    def _walk_calls(self, node: ast.AST, in_closure: bool) -> list[tuple[ast.Call, bool]]:
        # The hottest loop of the analyses: an explicit stack, fields read straight off the node,
        # leaves never pushed. A Call is pushed back as a marker so that it comes after its
        # receiver and arguments; a statement or call pushes an end marker (its start in `found`)
        # and is memoised as a slice of `found`, copied out only if it is asked for.
        found: list[tuple[ast.Call, bool]] = []
        stack: list[tuple] = [(node, in_closure)]
        push, pop = stack.append, stack.pop
        memo, memo_types, closures, walkable = self._calls, _MEMO_TYPES, COMPREHENSIONS, _WALKABLE
        call_type, lambda_type = ast.Call, ast.Lambda
        while stack:
            entry = pop()
            current = entry[0]
            if len(entry) == 3:
                start = entry[2]
                if start is None:
                    found.append((current, entry[1]))
                else:
                    memo[id(current)] = (current, entry[1], found, start, len(found))
                continue
            kind = type(current)
            if kind is lambda_type:
                continue
            closure = entry[1]
            if kind in memo_types and current is not node:
                hit = memo.get(id(current))
                if hit is not None and hit[0] is current and hit[1] == closure:
                    found.extend(hit[2] if len(hit) == 3 else hit[2][hit[3]:hit[4]])
                    continue
                push((current, closure, len(found)))
            if kind is call_type:
                push((current, closure, None))
            inner = closure or kind in closures
            names = _REVERSED_FIELDS.get(kind) or _reversed_fields(kind)
            for name in names:
                value = getattr(current, name)
                if type(value) is list:
                    for item in reversed(value):
                        if type(item) in walkable:
                            push((item, inner))
                elif type(value) in walkable:
                    push((value, inner))
        return found

    def release(self) -> None:
        """Drop the memo tables (the engine calls this when the file is done)."""
        self._calls.clear()


def names_read(node: ast.AST) -> list[str]:
    """Free-ish names an expression reads (attributes and comprehension/lambda targets left
    out), each as often as it is read."""
    bound: set[str] = set()
    found: list[str] = []
    for current in ast.walk(node):
        kind = type(current)
        if kind is ast.Name:
            found.append(current.id)  # type: ignore[attr-defined]
        elif kind is ast.comprehension:
            from gradlint.analysis.syntax import target_names

            bound.update(target_names(current.target))  # type: ignore[attr-defined]
        elif kind is ast.Lambda:
            from gradlint.analysis.syntax import parameter_names

            bound.update(parameter_names(current))
    return [n for n in found if n not in bound]


def parameter_roots(symbols: Symbols, expr: ast.AST) -> set[str]:
    """`self.actor.parameters()` -> {'self.actor'}; inside lists, sums and chains too. Empty when
    the expression does not name its modules (`params`): unknown, not "none"."""
    roots = set()
    for call, _ in symbols.calls(expr):
        func = call.func
        if type(func) is ast.Attribute and func.attr in ("parameters", "named_parameters"):
            text = receiver_text(func.value)
            if text:
                roots.add(text)
    return roots


__all__ = ["ClassIndex", "ImportTable", "Symbols", "names_read", "parameter_roots", "DEFINITIONS"]
