"""The cheap pass before libcst: syntax check, imports, and which top-level statements matter.

`ast.parse` costs about a sixth of `libcst.parse_module`. It gives CPython's own syntax-error
messages (the ones users recognise), the import table, and the line span of every top-level
statement. Only the statements that a rule may care about are then parsed with libcst, as
"segments" of whole lines, so files full of utilities cost little.
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

from gradlint.lazy import lazy_module

from gradlint.analysis.imports import ImportTable, collect_module_imports
from gradlint.source import SourceError, SourceFile

cst = lazy_module("libcst")


@dataclass
class TopLevel:
    """One top-level statement of a file and its whole-line span."""

    index: int
    node: ast.stmt
    start_line: int
    end_line: int

    @property
    def is_definition(self) -> bool:
        return isinstance(self.node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))

    @property
    def is_import(self) -> bool:
        return isinstance(self.node, (ast.Import, ast.ImportFrom))


@dataclass
class Segment:
    """A run of whole top-level lines parsed with libcst, and the same statements in `ast`.

    Positions come from the `ast` twin of each libcst statement (matched by structure, once per
    segment, only when something is reported); libcst's PositionProvider, which costs about two
    parses, is only the fallback.
    """

    start_line: int
    end_line: int
    module: cst.Module
    ast_statements: list = field(default_factory=list, repr=False)
    _twins: dict | None = field(default=None, repr=False)
    _positions: dict | None = field(default=None, repr=False)

    def ast_twin(self, statement: cst.CSTNode) -> ast.stmt | None:
        """The `ast` statement for a libcst statement (small or compound) of this segment."""
        if self._twins is None:
            twins: dict[int, tuple] = {}
            if not _pair_bodies(self.module.body, self.ast_statements, twins):
                twins = {}
            self._twins = twins
        pair = self._twins.get(id(statement))
        return pair[1] if pair and pair[0] is statement else None

    def positions(self):
        """libcst positions for this segment (the slow fallback), computed on first need."""
        if self._positions is None:
            from libcst.metadata import MetadataWrapper, PositionProvider

            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
            self._positions = wrapper.resolve(PositionProvider)
        return self._positions


@functools.lru_cache(maxsize=1)
def _compound_twins() -> tuple:
    return (
        (cst.FunctionDef, (ast.FunctionDef, ast.AsyncFunctionDef)),
        (cst.ClassDef, (ast.ClassDef,)),
        (cst.If, (ast.If,)),
        (cst.For, (ast.For, ast.AsyncFor)),
        (cst.While, (ast.While,)),
        (cst.With, (ast.With, ast.AsyncWith)),
        (cst.Try, (ast.Try,)),
        (cst.TryStar, (getattr(ast, "TryStar", ast.Try),)),
        (cst.Match, (ast.Match,)),
    )


def _flatten(body) -> list:
    flat = []
    for statement in body:
        if type(statement) is cst.SimpleStatementLine:
            flat.extend(statement.body)
        else:
            flat.append(statement)
    return flat


def _pair_bodies(cst_body, ast_body, twins: dict) -> bool:
    """Pair statements of a libcst body with those of the ast body, recursively."""
    flat = _flatten(cst_body)
    if len(flat) != len(ast_body):
        return False
    for node, twin in zip(flat, ast_body):
        twins[id(node)] = (node, twin)
        if isinstance(node, cst.BaseSmallStatement):
            if isinstance(twin, (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.ClassDef)):
                return False
            continue
        expected = next((kinds for kind, kinds in _compound_twins() if isinstance(node, kind)), None)
        if expected is None or not isinstance(twin, expected):
            return False
        if not _pair_children(node, twin, twins):
            return False
    return True


def _pair_children(node, twin, twins: dict) -> bool:
    if type(node) is cst.If:
        if not _pair_bodies(node.body.body, twin.body, twins):
            return False
        if type(node.orelse) is cst.If:
            return _pair_bodies([node.orelse], twin.orelse, twins)
        if type(node.orelse) is cst.Else:
            return _pair_bodies(node.orelse.body.body, twin.orelse, twins)
        return not twin.orelse
    if type(node) in (cst.For, cst.While):
        orelse = node.orelse.body.body if node.orelse else []
        return _pair_bodies(node.body.body, twin.body, twins) and _pair_bodies(orelse, twin.orelse, twins)
    if type(node) in (cst.Try, cst.TryStar):
        if len(node.handlers) != len(twin.handlers):
            return False
        orelse = node.orelse.body.body if node.orelse else []
        final = node.finalbody.body.body if node.finalbody else []
        return (
            _pair_bodies(node.body.body, twin.body, twins)
            and all(_pair_bodies(h.body.body, t.body, twins) for h, t in zip(node.handlers, twin.handlers))
            and _pair_bodies(orelse, twin.orelse, twins)
            and _pair_bodies(final, twin.finalbody, twins)
        )
    if type(node) is cst.Match:
        return len(node.cases) == len(twin.cases) and all(
            _pair_bodies(c.body.body, t.body, twins) for c, t in zip(node.cases, twin.cases)
        )
    return _pair_bodies(node.body.body, twin.body, twins)


@dataclass
class FileIndex:
    tree: ast.Module
    imports: ImportTable
    statements: list[TopLevel]


def parse_ast(source: SourceFile) -> ast.Module:
    try:
        with warnings.catch_warnings():  # SyntaxWarnings about the user's code are not ours to print
            warnings.simplefilter("ignore")
            return ast.parse(source.text, filename=source.path)
    except SyntaxError as exc:
        line = exc.lineno or 0
        # CPython counts the offset from 1 (in characters for str input)
        column = max((exc.offset or 1) - 1, 0)
        raise SourceError(f"SyntaxError: {exc.msg}", line, column) from None
    except (RecursionError, MemoryError):
        raise SourceError("too deeply nested for Python's parser") from None
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def index_file(source: SourceFile) -> FileIndex:
    tree = parse_ast(source)
    statements = []
    for i, node in enumerate(tree.body):
        start = node.lineno
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            start = min(start, *(d.lineno for d in decorators))
        statements.append(TopLevel(i, node, start, node.end_lineno or node.lineno))
    return FileIndex(tree=tree, imports=collect_module_imports(tree), statements=statements)


def statement_text(source: SourceFile, stmt: TopLevel) -> str:
    starts = source.line_starts
    end = starts[stmt.end_line] if stmt.end_line < len(starts) else len(source.text)
    return source.text[starts[stmt.start_line - 1] : end]


def select_statements(source: SourceFile, index: FileIndex, trigger: re.Pattern[str]) -> list[int]:
    """Indices of the top-level statements a rule must see.

    Class definitions are always kept (models live there). Other statements are kept when their
    text matches `trigger`. If any module-level (non-definition) statement is kept, all of
    them are, so that a script's top-level training loop is analysed with its bindings.
    """
    keep: set[int] = set()
    script: list[int] = []
    for stmt in index.statements:
        if stmt.is_import:
            continue
        if isinstance(stmt.node, ast.ClassDef) or trigger.search(statement_text(source, stmt)):
            keep.add(stmt.index)
            if not stmt.is_definition:
                script.append(stmt.index)
    if script:  # the script's other module-level code holds its bindings (`model = Net()`)
        keep.update(s.index for s in index.statements if not s.is_import and not s.is_definition)
    return sorted(keep)


@contextmanager
def _without_node_validation():
    """libcst validates every node it builds (a fifth of a parse); the native parser's output is
    valid by construction, so gradlint's own parses skip that. Nodes built while this is
    active are not checked, so nothing but the parse may run inside it."""
    base = cst.CSTNode
    saved = base.__dict__["__post_init__"]
    base.__post_init__ = _no_validation  # type: ignore[method-assign]
    try:
        yield
    finally:
        base.__post_init__ = saved  # type: ignore[method-assign]


def _no_validation(self) -> None:
    return None


def parse_module(text: str) -> cst.Module:
    """`libcst.parse_module` without the per-node validation pass."""
    with _without_node_validation():
        return cst.parse_module(text)


def parse_segments(source: SourceFile, index: FileIndex, chosen: list[int]) -> list[Segment]:
    """libcst-parse each run of consecutive chosen statements (whole lines) once."""
    runs: list[tuple[int, int]] = []
    for i in chosen:
        stmt = index.statements[i]
        if runs and (runs[-1][1] == i - 1 or index.statements[runs[-1][1]].end_line >= stmt.start_line):
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    segments = []
    starts = source.line_starts
    for first, last in runs:
        start_line = index.statements[first].start_line
        end_line = index.statements[last].end_line
        # statements that share a line (`a = 1; b = 2`) are pulled in whole
        end = starts[end_line] if end_line < len(starts) else len(source.text)
        text = source.text[starts[start_line - 1] : end]
        try:
            module = parse_module(text)
        except cst.ParserSyntaxError as exc:
            raise SourceError(
                f"libcst cannot parse this (newer syntax than the installed libcst supports?): "
                f"{exc.message}",
                exc.raw_line + start_line - 1,
                exc.raw_column,
            ) from None
        except RecursionError:
            raise SourceError("too deeply nested for libcst's parser", start_line) from None
        twins = [s.node for s in index.statements if start_line <= s.start_line and s.end_line <= end_line]
        segments.append(Segment(start_line, end_line, module, twins))
    return segments


def function_names(tree: ast.Module) -> set[str]:
    """Names of the file's functions and methods (and functions nested one level), cheaply."""
    names: set[str] = set()
    defs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        inner = []
        if isinstance(node, defs):
            names.add(node.name)
            inner = node.body
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, defs):
                    names.add(member.name)
        elif isinstance(node, ast.If):  # `if __name__ == "__main__":` helpers
            inner = node.body
        for child in inner:
            if isinstance(child, defs):
                names.add(child.name)
    return names
