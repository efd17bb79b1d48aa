"""marimo notebooks: each cell is a function (`@app.cell` / `def _(nn, torch):`) whose body is
the cell's code (and `with app.setup:` holds the imports every cell shares). The analyses read a presented text in which every cell's body stands at top
level, as the code runs in the notebook: a class is then a module class with its own name (not
`_`), and a cell's imports are the module's. The decorator and `def` lines become empty lines,
so line numbers are the file's; columns shift by the cell's indentation and are mapped back.

Fixes are computed on the presented text and mapped into the file: an edit's columns get the
indentation back, and each line it inserts is indented as its cell. A mapped fix is kept only if
presenting the fixed file gives exactly the fixed presented text, and an insertion between a
cell and the code outside it (where the cell it belongs to is ambiguous) is not made.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
from dataclasses import dataclass, replace

from gradlint.diagnostics import Diagnostic, Edit
from gradlint.fixing import splice
from gradlint.source import SourceFile, split_lines

_HINT = re.compile(r"^\s*(?:import marimo|from marimo import|@\w+\.cell\b)", re.M)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


@dataclass
class MarimoView:
    """The presented text of a marimo file, and how its lines map back to the file's."""

    original: SourceFile
    source: SourceFile  # what the analyses read
    shifts: list[int]  # per line (index 0 = line 1): characters removed from the line's start
    regions: list[int]  # per line: the cell it belongs to (-1: outside every cell)
    indents: dict[int, str]  # cell -> its body's indentation
    cells: int = 0

    # positions ----------------------------------------------------------------------------

    def column(self, line: int, column: int) -> int:
        """The file's 1-based column of a presented 1-based column."""
        return column + self.shifts[line - 1] if 1 <= line <= len(self.shifts) else column

    def map_diagnostic(self, diagnostic: Diagnostic) -> Diagnostic:
        fix = diagnostic.fix
        if fix is not None:
            edits = self.map_edits(fix.edits)
            fix = replace(fix, edits=edits) if edits is not None else None
        return replace(diagnostic, column=self.column(diagnostic.line, diagnostic.column),
                       end_column=self.column(diagnostic.end_line, diagnostic.end_column), fix=fix)

    # edits --------------------------------------------------------------------------------

    def _region(self, line: int) -> int:
        return self.regions[line - 1] if 1 <= line <= len(self.regions) else -1

    def _offset(self, offset: int) -> tuple[int, int, int] | None:
        """(file offset, line, region of the text inserted there) of a presented offset; None
        where the cell an insertion belongs to is ambiguous."""
        presented = self.source
        if offset >= len(presented.text):
            return len(self.original.text), len(self.shifts) + 1, -1
        line, column = presented.line_col(offset)
        if column > 0:
            return self.original.offset(line, column + self.shifts[line - 1]), line, self._region(line)
        above, here = self._region(line - 1), self._region(line)
        if line > 1 and above != here:
            return None
        return self.original.offset(line, 0), line, here

    def map_edits(self, edits: tuple[Edit, ...]) -> tuple[Edit, ...] | None:
        """The edits in the file's offsets, or None if they cannot be placed there faithfully."""
        mapped = []
        for edit in edits:
            start, end = self._offset(edit.start), self._offset(edit.end)
            if start is None or end is None:
                return None
            content = edit.content
            indent = self.indents.get(start[2], "")
            if indent and content:
                at_line_start = self.source.line_col(edit.start)[1] == 0 if edit.start < len(self.source.text) else True
                pieces = _LINE.findall(content)
                content = "".join(
                    (indent + piece if (i > 0 or at_line_start) and piece.strip() else piece)
                    for i, piece in enumerate(pieces))
            line, column = self.original.line_col(start[0])
            end_line, end_column = self.original.line_col(end[0])
            mapped.append(Edit(start[0], end[0], content, (line, column + 1), (end_line, end_column + 1)))
        fixed = present(SourceFile(self.original.path, splice(self.original.text, mapped), self.original.encoding))
        if fixed is None or fixed.source.text != splice(self.source.text, list(edits)):
            return None
        return tuple(mapped)


def _app_names(tree: ast.Module) -> set[str]:
    """Names bound to `marimo.App(...)` at top level (through any alias of marimo)."""
    marimo_names = {"marimo"}
    apps = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            marimo_names |= {a.asname or a.name for a in node.names if a.name == "marimo"}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if (isinstance(func, ast.Attribute) and func.attr == "App" and isinstance(func.value, ast.Name)
                    and func.value.id in marimo_names):
                apps |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return apps


def _app_attribute(node: ast.expr, apps: set[str], name: str) -> bool:
    """`app.<name>` or `app.<name>(...)` for an app of the file."""
    target = node.func if isinstance(node, ast.Call) else node
    return (isinstance(target, ast.Attribute) and target.attr == name and isinstance(target.value, ast.Name)
            and target.value.id in apps)


def _is_cell(node: ast.stmt, apps: set[str]) -> bool:
    """An `@app.cell` function, or the `with app.setup:` block (marimo 0.13+: the imports)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
        return any(_app_attribute(d, apps, "cell") for d in node.decorator_list)
    if isinstance(node, ast.With) and len(node.items) == 1 and node.body:
        return _app_attribute(node.items[0].context_expr, apps, "setup")
    return False


def _header_end(lines: list[str], node: ast.stmt) -> int | None:
    """The line of the colon that ends a `def`'s signature (1-based), from its tokens."""
    text = "".join(lines[node.lineno - 1 : node.body[0].lineno])
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.OP:
                if token.string in "([{":
                    depth += 1
                elif token.string in ")]}":
                    depth -= 1
                elif token.string == ":" and depth == 0:
                    return node.lineno + token.start[0] - 1
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def _final_return(plain: list[str], node: ast.stmt) -> range:
    """The lines of a cell's closing `return` (marimo's list of the names it defines), when it
    stands on lines of its own: read at top level it would end the analysed script early."""
    last = node.body[-1]
    if not isinstance(last, ast.Return) or len(node.body) == 1 or last.end_lineno is None:
        return range(0)
    before = plain[last.lineno - 1].encode("utf-8")[: last.col_offset]
    after = plain[last.end_lineno - 1].encode("utf-8")[last.end_col_offset or 0 :].strip()
    if before.strip() or (after and not after.startswith(b"#")):
        return range(0)
    return range(last.lineno, last.end_lineno + 1)


def present(source: SourceFile) -> MarimoView | None:
    """The view of a marimo file with its cells at top level; None for any other file (or one
    whose cells cannot be presented: it is then linted as written)."""
    text = source.text
    if "marimo" not in text or not _HINT.search(text):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    apps = _app_names(tree)
    cells = [node for node in tree.body if _is_cell(node, apps)]
    if not cells:
        return None
    lines = _LINE.findall(text)
    plain = split_lines(text)
    shifts = [0] * len(plain)
    regions = [-1] * len(plain)
    indents: dict[int, str] = {}
    presented = list(lines)
    for number, node in enumerate(cells):
        header_start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        header_end = _header_end(lines, node)
        first = node.body[0].lineno
        if header_end is None or header_end >= first:
            return None  # a body on the `def` line: not presentable
        body_line = plain[first - 1]
        indent = body_line[: len(body_line) - len(body_line.lstrip(" \t"))]
        if not indent:
            return None
        indents[number] = indent
        end = node.end_lineno or first
        while end < len(plain) and not plain[end].strip():  # blank lines after a cell are its own
            end += 1
        returned = _final_return(plain, node)
        for line in range(header_start, end + 1):
            regions[line - 1] = number
            index = line - 1
            if line <= header_end or line in returned:
                ending = lines[index][len(plain[index]):]
                shifts[index] = len(plain[index])
                presented[index] = ending
            elif plain[index].startswith(indent):
                shifts[index] = len(indent)
                presented[index] = lines[index][len(indent):]
    view = MarimoView(source, SourceFile(source.path, "".join(presented), source.encoding, source.raw),
                      shifts, regions, indents, len(cells))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(view.source.text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return view


def lint_marimo(view: MarimoView, settings, rules, mode, result) -> None:
    """Findings (and fixes, when asked) of a marimo file, through its presented text; every
    position and edit in `result` is the file's own."""
    from gradlint.engine import MAX_FIX_ROUNDS, lint_source
    from gradlint.fixing import apply_fixes, unified_diff, write_atomically
    from gradlint.source import decode_source

    original = view.original
    diagnostics = lint_source(view.source, settings, rules)
    if mode.active:
        failed: set[tuple] = set()
        for _ in range(MAX_FIX_ROUNDS):
            fixable = []
            for diagnostic in diagnostics:
                key = (diagnostic.code, diagnostic.line, diagnostic.column)
                if diagnostic.fix is None or not mode.allows(diagnostic.fix.applicability) or key in failed:
                    continue
                mapped = view.map_diagnostic(diagnostic)
                if mapped.fix is None:
                    failed.add(key)
                    result.fix_errors.append(f"{original.path}:{mapped.line}:{mapped.column}: {diagnostic.code} fix "
                                             "not applied: it cannot be placed in its marimo cell")
                    continue
                fixable.append(mapped)
            if not fixable:
                break
            text, applied, rejected = apply_fixes(view.original.text, fixable)
            for diagnostic in rejected:
                failed.add((diagnostic.code, diagnostic.line, diagnostic.column - view.shifts[diagnostic.line - 1]))
                result.fix_errors.append(f"{original.path}:{diagnostic.line}:{diagnostic.column}: {diagnostic.code} "
                                         "fix not applied: the result would not parse")
            fixed = present(decode_source(original.path, view.original.encode(text))) if applied else None
            if fixed is None:
                break
            view = fixed
            result.fixed += applied
            diagnostics = lint_source(view.source, settings, rules)
    result.diagnostics = [view.map_diagnostic(d) for d in diagnostics]
    if view.original.text == original.text:
        return
    if mode.diff:
        result.diff = unified_diff(original.path, original.text, view.original.text)
    if mode.apply:
        error = write_atomically(original, view.original.encode(view.original.text))
        if error:
            result.fix_errors.append(f"{original.path}: {error}")
            result.fixed = 0
