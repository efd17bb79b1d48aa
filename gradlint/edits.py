"""Text edits that fixes are made of, placed on `ast` statements. Edits are spliced into the
original text, so nothing outside them changes."""

from __future__ import annotations

import ast

from gradlint.context import FileContext
from gradlint.diagnostics import Edit


def import_edit(ctx: FileContext, statement: str) -> Edit:
    """Add an import after the module docstring and `from __future__` imports."""
    tree = ctx.tree
    body = list(tree.body)
    position = 0
    while position < len(body):
        node = body[position]
        docstring = position == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            break
        position += 1
    if position < len(body):
        node = body[position]
        line = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        at = ctx.source.offset(line, 0)
    else:
        at = len(ctx.source.text)
        if ctx.source.text and not ctx.source.text.endswith(("\n", "\r")):
            return ctx.edit(at, at, f"{ctx.source.newline}{statement}{ctx.source.newline}")
    return ctx.edit(at, at, f"{statement}{ctx.source.newline}")


def insert_before(ctx: FileContext, statement: ast.stmt, *code: str) -> Edit:
    """Insert the statements `code` so that they run right before `statement`: on their own
    lines with its indentation when it starts its line; inline (`code; statement`) otherwise
    (`a(); opt.step()`, `if x: opt.step()`)."""
    line, col, _, _ = ctx.span_of(statement)
    before = ctx.source.line_text(line)[:col]
    if before.strip() == "":
        at = ctx.source.offset(line, 0)
        return ctx.edit(at, at, "".join(f"{before}{c}{ctx.source.newline}" for c in code))
    at = ctx.source.offset(line, col)
    return ctx.edit(at, at, "".join(f"{c}; " for c in code))


def insert_after(ctx: FileContext, statement: ast.stmt, *code: str) -> Edit | None:
    """Insert statements on the lines right after `statement`, with its indentation; None when
    it shares its first or last line with other code."""
    line, col, end_line, end_col = ctx.span_of(statement)
    source = ctx.source
    first = source.line_text(line)
    if first[:col].strip() != "":
        return None
    rest = source.line_text(end_line)[end_col:].strip()
    if rest and not rest.startswith("#"):
        return None
    indent = first[:col]
    if end_line >= len(source.line_starts):  # last line of the file, maybe without a newline
        at = len(source.text)
        prefix = "" if source.text.endswith(("\n", "\r")) else source.newline
        return ctx.edit(at, at, prefix + "".join(f"{indent}{c}{source.newline}" for c in code))
    at = source.offset(end_line + 1, 0)
    return ctx.edit(at, at, "".join(f"{indent}{c}{source.newline}" for c in code))


def delete(ctx: FileContext, statement: ast.stmt) -> Edit | None:
    """Remove `statement`: its whole lines when it is alone there, else it and its `;`."""
    line, col, end_line, end_col = ctx.span_of(statement)
    source = ctx.source
    first = source.line_text(line)
    last = source.line_text(end_line)
    rest = last[end_col:].strip()
    if first[:col].strip() == "" and (rest == "" or rest.startswith("#")):
        return ctx.edit(source.offset(line, 0), source.offset(end_line + 1, 0), "")
    if rest.startswith(";"):
        after = end_col + (len(last[end_col:]) - len(last[end_col:].lstrip())) + 1
        while after < len(last) and last[after] == " ":
            after += 1
        return ctx.edit(source.offset(line, col), source.offset(end_line, after), "")
    return None


def replace(ctx: FileContext, node: ast.AST, content: str) -> Edit:
    """Replace an `ast` node's exact text."""
    start, end = ctx.offsets_of(node)
    return ctx.edit(start, end, content)
