"""Fast traversal of libcst expressions.

`CSTVisitor` rebuilds every node it passes (that is why one visitor pass doubles the parse
time). These helpers read the dataclass fields directly and skip whitespace and punctuation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import libcst as cst

_TRIVIA = {
    "lpar", "rpar", "comma", "semicolon", "equal", "colon", "dot", "star", "lbracket",
    "rbracket", "lbrace", "rbrace", "asynchronous", "header", "footer", "leading_lines",
    "lines_after_decorators", "newline", "indent", "operator", "whitespace_before",
    "whitespace_after", "lines_after", "annotation_indicator",
}
_FIELDS: dict[type, tuple[str, ...]] = {}
_CLOSURES = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
_CLOSURE_TYPES = set(_CLOSURES)


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


_IS_NODE: dict[type, bool] = {}


def _is_node(value: object) -> bool:
    # isinstance against the CSTNode ABC is slow; node types are few, so remember them
    kind = type(value)
    known = _IS_NODE.get(kind)
    if known is None:
        known = _IS_NODE[kind] = isinstance(value, cst.CSTNode)
    return known


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    for name in child_fields(type(node)):
        value = getattr(node, name)
        if type(value) in (tuple, list):
            for item in value:
                if _is_node(item):
                    yield item
        elif _is_node(value):
            yield value


def child_list(node: cst.CSTNode) -> list[cst.CSTNode]:
    result = []
    for name in child_fields(type(node)):
        value = getattr(node, name)
        if type(value) in (tuple, list):
            result.extend(item for item in value if _is_node(item))
        elif _is_node(value):
            result.append(value)
    return result


_EMPTY = cst.Module(body=[])
_TEXT_OF = None  # set per file by the engine: slices the source instead of generating code


def set_text_source(function) -> None:
    global _TEXT_OF
    _TEXT_OF = function


def text_of(node: cst.CSTNode) -> str:
    """The source text of a statement-level node (the file's own text where the engine gave a
    way to slice it; libcst's code generation, which costs like a visitor pass, otherwise)."""
    if _TEXT_OF is not None:
        text = _TEXT_OF(node)
        if text is not None:
            return text
    return _EMPTY.code_for_node(node)


_CALLS: dict[int, tuple[cst.CSTNode, list]] = {}  # the analyses of one file ask for the same calls


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
    key = id(node)
    hit = _CALLS.get(key)
    if hit is None or hit[0] is not node or hit[1][0] != in_closure:
        hit = (node, [in_closure, list(_iter_calls(node, in_closure))])
        _CALLS[key] = hit
    return iter(hit[1][1])


def _iter_calls(node: cst.CSTNode, in_closure: bool = False) -> Iterator[tuple[cst.Call, bool]]:
    # an explicit stack: post-order without a generator per node
    stack: list[tuple[cst.CSTNode, bool, bool]] = [(node, in_closure, False)]
    while stack:
        current, closure, expanded = stack.pop()
        kind = type(current)
        if expanded:
            if kind is cst.Call:
                yield current, closure  # type: ignore[misc]
            continue
        if kind is cst.Lambda:
            continue
        stack.append((current, closure, True))
        inner = closure or kind in _CLOSURE_TYPES
        for child in reversed(child_list(current)):
            stack.append((child, inner, False))


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
