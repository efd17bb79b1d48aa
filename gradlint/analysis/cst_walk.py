"""Fast traversal of libcst expressions.

`CSTVisitor` rebuilds every node it passes (that is why one visitor pass doubles the parse
time). These helpers read the dataclass fields directly and skip whitespace and punctuation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator

from gradlint.lazy import lazy_module

cst = lazy_module("libcst")

_TRIVIA = {
    "lpar", "rpar", "comma", "semicolon", "equal", "colon", "dot", "star", "lbracket",
    "rbracket", "lbrace", "rbrace", "asynchronous", "header", "footer", "leading_lines",
    "lines_after_decorators", "newline", "indent", "operator", "whitespace_before",
    "whitespace_after", "lines_after", "annotation_indicator",
}
_FIELDS: dict[type, tuple[str, ...]] = {}
# node-class tables, built on first use (libcst is imported lazily)
_CLOSURE_TYPES: frozenset[type] = frozenset()
_NODE_TYPES: frozenset[type] = frozenset()
# Subtrees whose calls are remembered as they are walked, so that a later question about a
# whole block or class reuses what the per-statement questions already found (and vice versa).
_MEMO_TYPES: frozenset[type] = frozenset()


def child_fields(node_type: type) -> tuple[str, ...]:
    names = _FIELDS.get(node_type)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if f.name not in _TRIVIA and not f.name.startswith("whitespace")
        )
        _FIELDS[node_type] = names
    return names


def _node_types() -> frozenset[type]:
    found: set[type] = set()
    stack = [cst.CSTNode]
    while stack:
        kind = stack.pop()
        found.add(kind)
        stack.extend(kind.__subclasses__())
    return frozenset(found)


def _build_tables() -> None:
    global _CLOSURE_TYPES, _NODE_TYPES, _MEMO_TYPES
    # isinstance against the CSTNode ABC is slow; a set of the node classes is a hash lookup
    _NODE_TYPES = _node_types()
    _CLOSURE_TYPES = frozenset((cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp))
    statements = (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.SimpleStatementLine, cst.BaseSuite)
    _MEMO_TYPES = frozenset(kind for kind in _NODE_TYPES if issubclass(kind, statements)) | {cst.Call}


def _is_node(value: object) -> bool:
    if not _NODE_TYPES:
        _build_tables()
    return type(value) in _NODE_TYPES


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    for name in child_fields(type(node)):
        value = getattr(node, name)
        if type(value) in (tuple, list):
            for item in value:
                if _is_node(item):
                    yield item
        elif _is_node(value):
            yield value


@functools.lru_cache(maxsize=1)
def _empty_module() -> cst.Module:
    return cst.Module(body=[])


def code_for_node(node: cst.CSTNode) -> str:
    """libcst's code generation for one node (costs like a visitor pass over it)."""
    return _empty_module().code_for_node(node)


_TEXT_OF = None  # set per file by the engine: slices the source instead of generating code


def set_text_source(function) -> None:
    global _TEXT_OF
    _TEXT_OF = function


@contextlib.contextmanager
def another_file():
    """Analyse another file (a sibling module) without losing the current file's text source."""
    saved = _TEXT_OF
    try:
        yield
    finally:
        set_text_source(saved)


def text_of(node: cst.CSTNode) -> str:
    """The source text of a statement-level node (the file's own text where the engine gave a
    way to slice it; libcst's code generation, which costs like a visitor pass, otherwise)."""
    if _TEXT_OF is not None:
        text = _TEXT_OF(node)
        if text is not None:
            return text
    return code_for_node(node)


# id(node) -> (node, in_closure, calls): the analyses of one file ask for the same calls
_CALLS: dict[int, tuple[cst.CSTNode, bool, list]] = {}


def clear_cache() -> None:
    """Forget the memo (the engine calls this once per file: node ids are reused later)."""
    global _TEXT_OF
    _CALLS.clear()
    _TEXT_OF = None


def iter_calls(node: cst.CSTNode, in_closure: bool = False) -> Iterator[tuple[cst.Call, bool]]:
    """Calls in evaluation order (receiver, then arguments, then the call itself).

    Lambda bodies are skipped (they do not run here); calls inside comprehensions are
    yielded with `in_closure=True`. Memoised per node for the file being linted.
    """
    hit = _CALLS.get(id(node))
    if hit is None or hit[0] is not node or hit[1] != in_closure:
        hit = _CALLS[id(node)] = (node, in_closure, _iter_calls(node, in_closure))
    return iter(hit[2])


def _iter_calls(node: cst.CSTNode, in_closure: bool = False) -> list[tuple[cst.Call, bool]]:
    # The hottest loop of the analyses: an explicit stack, child fields read straight off the
    # node. A Call is pushed back as a marker (None) so that it comes after its receiver and
    # arguments; a statement or call pushes an end marker (its start in `found`) to be memoised.
    found: list[tuple[cst.Call, bool]] = []
    stack: list[tuple] = [(node, in_closure)]
    push, pop = stack.append, stack.pop
    if not _NODE_TYPES:
        _build_tables()
    reversed_fields, node_types, closures, memo, memo_types = _REVERSED_FIELDS, _NODE_TYPES, _CLOSURE_TYPES, _CALLS, _MEMO_TYPES
    call_type, lambda_type = cst.Call, cst.Lambda
    while stack:
        entry = pop()
        current = entry[0]
        if len(entry) == 3:
            start = entry[2]
            if start is None:
                found.append((current, entry[1]))
            else:
                memo[id(current)] = (current, entry[1], found[start:])
            continue
        kind = type(current)
        if kind is lambda_type:
            continue
        closure = entry[1]
        if kind in memo_types and current is not node:
            hit = memo.get(id(current))
            if hit is not None and hit[0] is current and hit[1] == closure:
                found.extend(hit[2])
                continue
            push((current, closure, len(found)))
        if kind is call_type:
            push((current, closure, None))
        inner = closure or kind in closures
        names = reversed_fields.get(kind) or _reversed_child_fields(kind)
        for name in names:  # pushed last field first, so that the first is walked first
            value = getattr(current, name)
            value_type = type(value)
            if value_type in node_types:
                push((value, inner))
            elif value_type is tuple or value_type is list:
                for item in reversed(value):
                    if type(item) in node_types:
                        push((item, inner))
    return found


_REVERSED_FIELDS: dict[type, tuple[str, ...]] = {}


def _reversed_child_fields(node_type: type) -> tuple[str, ...]:
    names = _REVERSED_FIELDS[node_type] = tuple(reversed(child_fields(node_type)))
    return names


def iter_names(node: cst.CSTNode) -> Iterator[str]:
    """Free-ish names an expression reads (attributes, keywords and comprehension targets left out)."""
    bound: set[str] = set()
    stack: list[cst.CSTNode] = [node]
    found: list[str] = []
    while stack:
        current = stack.pop()
        if type(current) is cst.Name:
            found.append(current.value)
        elif type(current) is cst.Attribute:
            stack.append(current.value)
        elif type(current) is cst.Arg:
            stack.append(current.value)
        elif type(current) is cst.CompFor:
            bound.update(n.value for n in _target_names(current.target))
            stack.append(current.iter)
            stack.extend(current.ifs)
            if current.inner_for_in:
                stack.append(current.inner_for_in)
        elif type(current) is cst.Lambda:
            bound.update(p.name.value for p in current.params.params)
            stack.append(current.body)
        else:
            stack.extend(children(current))
    return iter([n for n in found if n not in bound])


def _target_names(target: cst.BaseExpression) -> Iterator[cst.Name]:
    if type(target) is cst.Name:
        yield target
    elif type(target) in (cst.Tuple, cst.List):
        for element in target.elements:
            yield from _target_names(element.value)
    elif type(target) is cst.StarredElement:
        yield from _target_names(target.value)


def target_names(target: cst.BaseExpression) -> list[str]:
    return [n.value for n in _target_names(target)]
