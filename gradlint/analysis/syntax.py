"""Small questions about Python's `ast` nodes that every analysis asks: the dotted text of a
name, the receiver of a method call, the names a target binds, a call's arguments, and the
statements of a body in source order. Nothing here knows about torch."""

from __future__ import annotations

import ast
from collections.abc import Iterator

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def dotted(node: ast.AST | None) -> str | None:
    """`a.b.c` for a Name/Attribute chain; None for anything else."""
    parts: list[str] = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is ast.Name:
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def receiver_text(node: ast.AST | None) -> str | None:
    """Like `dotted`, but sees through subscripts: `self.opts[i]` -> `self.opts`."""
    parts: list[str] = []
    while True:
        kind = type(node)
        if kind is ast.Attribute:
            parts.append(node.attr)  # type: ignore[union-attr]
            node = node.value  # type: ignore[union-attr]
        elif kind is ast.Subscript:
            node = node.value  # type: ignore[union-attr]
        elif kind is ast.Name:
            parts.append(node.id)  # type: ignore[union-attr]
            return ".".join(reversed(parts))
        else:
            return None


def call_name(call: ast.Call) -> str | None:
    """The dotted text of what a call calls, seen through subscripts (`self.agents[i].update`
    -> `self.agents.update`); None for `f()()` and other computed callees."""
    return dotted(call.func) or receiver_text(call.func)


def last_name(node: ast.AST | None) -> str:
    """The last part of a callee's name: `nn.Linear` -> `Linear`, `self.fc` -> `fc`."""
    if type(node) is ast.Attribute:
        return node.attr  # type: ignore[union-attr]
    if type(node) is ast.Name:
        return node.id  # type: ignore[union-attr]
    return ""


def target_names(target: ast.AST) -> list[str]:
    """The plain names an assignment target binds (`a, (b, *c)` -> a, b, c)."""
    found: list[str] = []
    stack = [target]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            found.append(node.id)  # type: ignore[attr-defined]
        elif kind in (ast.Tuple, ast.List):
            stack.extend(reversed(node.elts))  # type: ignore[attr-defined]
        elif kind is ast.Starred:
            stack.append(node.value)  # type: ignore[attr-defined]
    return found


def is_unpacking(target: ast.AST) -> bool:
    return type(target) in (ast.Tuple, ast.List)


def positional(call: ast.Call) -> list[ast.expr]:
    """The positional arguments up to the first `*args` (whose positions are unknown)."""
    found = []
    for arg in call.args:
        if type(arg) is ast.Starred:
            break
        found.append(arg)
    return found


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    for item in call.keywords:
        if item.arg == name:
            return item.value
    return None


def argument(call: ast.Call, name: str, position: int) -> ast.expr | None:
    """The argument bound to parameter `name` at `position` (keyword first)."""
    found = keyword(call, name)
    if found is not None:
        return found
    args = positional(call)
    return args[position] if 0 <= position < len(args) else None


def has_star_args(call: ast.Call) -> bool:
    return any(type(a) is ast.Starred for a in call.args) or any(k.arg is None for k in call.keywords)


def parameters(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.arg]:
    """Positional-only, ordinary and keyword-only parameters, in order (not *args/**kwargs)."""
    args = function.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def parameter_names(function) -> list[str]:
    return [p.arg for p in parameters(function)]


def defaults(function) -> dict[str, ast.expr]:
    """Parameter name -> its default expression."""
    args = function.args
    ordinary = [*args.posonlyargs, *args.args]
    found = {p.arg: d for p, d in zip(ordinary[len(ordinary) - len(args.defaults):], args.defaults)}
    found.update({p.arg: d for p, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    return found


def star_names(function) -> list[str]:
    args = function.args
    return [a.arg for a in (args.vararg, args.kwarg) if a is not None]


def bodies(statement: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists a compound statement holds, in source order."""
    kind = type(statement)
    if kind is ast.If or kind is ast.For or kind is ast.AsyncFor or kind is ast.While:
        return [statement.body, statement.orelse]  # type: ignore[attr-defined]
    if kind is ast.With or kind is ast.AsyncWith:
        return [statement.body]  # type: ignore[attr-defined]
    if kind is ast.Try or kind.__name__ == "TryStar":
        return [statement.body, *(h.body for h in statement.handlers),  # type: ignore[attr-defined]
                statement.orelse, statement.finalbody]  # type: ignore[attr-defined]
    if kind is ast.Match:
        return [case.body for case in statement.cases]  # type: ignore[attr-defined]
    if kind in DEFINITIONS:
        return [statement.body]  # type: ignore[attr-defined]
    return []


def headers(statement: ast.stmt) -> list[ast.expr]:
    """The expressions a compound statement evaluates itself (`if` test, `for` iterable, `with`
    items, `match` subject); a simple statement is its own header."""
    kind = type(statement)
    if kind is ast.If or kind is ast.While:
        return [statement.test]  # type: ignore[attr-defined]
    if kind is ast.For or kind is ast.AsyncFor:
        return [statement.iter]  # type: ignore[attr-defined]
    if kind is ast.With or kind is ast.AsyncWith:
        return [item.context_expr for item in statement.items]  # type: ignore[attr-defined]
    if kind is ast.Match:
        return [statement.subject]  # type: ignore[attr-defined]
    return []


def is_compound(statement: ast.stmt) -> bool:
    return bool(bodies(statement))


def statements(body: list[ast.stmt], into_definitions: bool = False) -> Iterator[ast.stmt]:
    """Every statement of a body and of the blocks inside it, in source order (a compound
    statement before its blocks). Nested functions and classes are yielded but not entered
    unless `into_definitions`."""
    stack = list(reversed(body))
    while stack:
        statement = stack.pop()
        yield statement
        if type(statement) in DEFINITIONS and not into_definitions:
            continue
        for block in reversed(bodies(statement)):
            stack.extend(reversed(block))


def number(node: ast.AST | None) -> float | None:
    """The value of a numeric literal, `-3` included."""
    if type(node) is ast.Constant and type(node.value) in (int, float):  # type: ignore[union-attr]
        return float(node.value)  # type: ignore[union-attr]
    if type(node) is ast.UnaryOp and type(node.op) is ast.USub:  # type: ignore[union-attr]
        value = number(node.operand)  # type: ignore[union-attr]
        return -value if value is not None else None
    return None


def string(node: ast.AST | None) -> str | None:
    if type(node) is ast.Constant and type(node.value) is str:  # type: ignore[union-attr]
        return node.value  # type: ignore[union-attr]
    return None


def is_docstring(statement: ast.stmt) -> bool:
    return type(statement) is ast.Expr and string(statement.value) is not None  # type: ignore[attr-defined]


def ordered_arguments(call: ast.Call) -> list[tuple[str | None, ast.expr, str]]:
    """Every argument of a call in source order, as (keyword or None, value, star), where star
    is "", "*" or "**" (`f(a, *b, k=c, **d)` -> (None, a, ""), (None, b, "*"), ("k", c, ""),
    (None, d, "**")). ast keeps positional arguments and keywords apart; some questions (the
    first argument, whatever its form; everything before the first star) need their order."""
    found: list[tuple[str | None, ast.expr, str]] = [
        (None, arg.value, "*") if type(arg) is ast.Starred else (None, arg, "")  # type: ignore[attr-defined]
        for arg in call.args
    ]
    if not call.keywords:
        return found
    keywords = [(item.arg, item.value, "" if item.arg is not None else "**") for item in call.keywords]
    last = call.args[-1] if call.args else None
    if last is None or all((k.lineno, k.col_offset) > (last.lineno, last.col_offset) for k in call.keywords):
        return found + keywords
    pairs = sorted(zip([*call.args, *call.keywords], [*found, *keywords]), key=lambda p: (p[0].lineno, p[0].col_offset))
    return [entry for _, entry in pairs]


def parenthesized_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen the span [start, end) of an expression in `text` over the grouping parentheses
    around it (`(1 / n)`; ast's spans leave them out). Whitespace and line continuations
    between a parenthesis and the expression are taken too. Only for an expression that is not
    the sole argument of a call (`f(x)` reads like a grouped `x`): an operand, a returned value."""
    while True:
        before, after = start, end
        while before > 0 and text[before - 1] in " \t\r\n\\":
            before -= 1
        while after < len(text) and text[after] in " \t\r\n\\":
            after += 1
        if before > 0 and after < len(text) and text[before - 1] == "(" and text[after] == ")":
            start, end = before - 1, after + 1
        else:
            return start, end
