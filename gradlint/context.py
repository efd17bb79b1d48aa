"""Everything the rules of one file share: the source, the pre-pass, the libcst segments and the
analyses, each computed at most once and only when a rule asks for it."""

from __future__ import annotations

import ast
import functools
import re
from functools import cached_property
from typing import TYPE_CHECKING

from gradlint.lazy import lazy_module

from gradlint.analysis.cst_walk import code_for_node
from gradlint.analysis.syntax import DEFINITIONS
from gradlint.diagnostics import Diagnostic, Edit, Fix, Severity
from gradlint.prepass import FileIndex, Segment, function_names, parse_segments, select_statements
from gradlint.source import SourceFile

cst = lazy_module("libcst")

if TYPE_CHECKING:
    from gradlint.analysis.symbols import Symbols
    from gradlint.analysis.dataflow import DataFlow
    from gradlint.analysis.models import ModelAnalysis
    from gradlint.analysis.training import TrainingAnalysis
    from gradlint.config import Settings


def _occurrence(holder: cst.CSTNode, node: cst.CSTNode, code: str) -> int:
    """Which of the nodes of `holder` with the same text as `node` it is, in source order
    (nodes with equal text never nest, so pre-order is source order)."""
    from gradlint.analysis.cst_walk import children

    index = 0
    stack = [holder]
    while stack:
        current = stack.pop()
        if current is node:
            return index
        if type(current) is type(node) and code_for_node(current) == code:
            index += 1
            continue
        stack.extend(reversed(list(children(current))))
    return 0


def _nth(text: str, code: str, n: int) -> int:
    found = text.find(code)
    while n > 0 and found >= 0:
        found = text.find(code, found + len(code))
        n -= 1
    return found


def _find_across_lines(text: str, code: str, occurrence) -> tuple[int, int]:
    """(offset, length) of a node that spans lines: libcst prints its continuation lines
    without the enclosing block's indentation, so the whitespace between tokens may differ."""
    pattern = re.compile(r"[ \t\f\\\r\n]*".join(re.escape(part) for part in code.split()))
    matches = list(pattern.finditer(text))
    if not matches:
        return -1, 0
    index = occurrence() if len(matches) > 1 else 0
    match = matches[index] if index < len(matches) else matches[0]
    return match.start(), match.end() - match.start()


# Top-level statements whose text matches this are parsed with libcst (classes always are):
# training steps for GL1xx, and models, init calls and activations for GL2xx/GL3xx.
SEGMENT_TRIGGER = re.compile(
    r"backward|\.step\(|clip|unscale_|optim|Optim|Adam|SGD|RMSprop|Adagrad|LBFGS|Scaler|RNN|LSTM|GRU"
    r"|init|normal_|uniform_|fill_|Sequential|Parameter|oftsign|reset\(|read_|load|make|buffer|memory"
)


@functools.lru_cache(maxsize=2)  # every model rule asks about the same file text
def file_may_model(text: str) -> bool:
    """The documented skip criterion of the model rules: the file mentions torch's `nn` as a
    word (`nn.Module`, `nn.Linear`, `torch.nn`, `from torch import nn`) and `torch` or a
    `Module` base."""
    return _NN.search(text) is not None and ("torch" in text or "Module" in text)


# `\bnn\b`, written to start with a literal (30x faster); the word, because "channels" or
# "running" in a torch data file is not a model
_NN = re.compile(r"nn(?!\w)(?<!\wnn)")


_FEED = re.compile(  # the lookahead lets the scan skip most characters at once
    r"(?=[.rlgmn])(?:\.reset\(|\.step\(\s*[^)\s]|read_(?:csv|parquet|excel|json|table|feather|hdf)"
    # numpy's loaders, not `torch.load`/`th.load` of a checkpoint in every learner's load_models
    r"|(?:\bnp\.|\bnumpy\.|(?<![\w.]))load(?:txt)?\(|genfromtxt|memmap)"
)


@functools.lru_cache(maxsize=2)
def file_may_feed(text: str) -> bool:
    """The documented skip criterion of the data rules: data enters the file from an
    environment (`.reset(`, or `.step(` with an argument: `env.step(action)`, not the
    `optimizer.step()` of every training script) or from disk (`pd.read_csv` and the other
    pandas readers, `np.load`/`loadtxt`/`genfromtxt`/`memmap`; a bare `load(` for
    `from numpy import load`, but not `torch.load(`, a checkpoint)."""
    return _FEED.search(text) is not None


def file_may_train(text: str) -> bool:
    """The documented skip criterion of the GL1xx rules: a file that never mentions both
    `backward` and `.step` (`.step(`, or a wrapper's `.step_and_update_lr(`) has no
    backward-then-step sequence to check."""
    return "backward" in text and ".step" in text


class BudgetExceeded(Exception):
    """A file's analyses took more steps than its budget allows (see `AnalysisBudget`)."""


# The analyses terminate by construction (memoised resolution with visited sets, fixpoints
# bounded by the height of their lattices); the budget is the last guard, so that no file can
# hang a pre-commit hook or a CI job. It counts analysis steps (a function analysed, a call
# resolved, a statement interpreted), not time, so it gives the same answer on any machine.
BUDGET_BASE = 200_000
BUDGET_PER_CHARACTER = 20


class AnalysisBudget:
    """Steps the analyses of one file may take; `spend` raises BudgetExceeded past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    @classmethod
    def for_text(cls, text: str) -> "AnalysisBudget":
        return cls(BUDGET_BASE + BUDGET_PER_CHARACTER * len(text))

    @property
    def spent(self) -> int:
        return self.limit - self.left

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise BudgetExceeded()


class FileContext:
    def __init__(self, source: SourceFile, index: FileIndex, settings: "Settings",
                 budget: AnalysisBudget | None = None) -> None:
        self.source = source
        self.index = index
        self.settings = settings
        self.budget = budget if budget is not None else AnalysisBudget.for_text(source.text)

    @property
    def tree(self) -> ast.Module:
        return self.index.tree

    @cached_property
    def symbols(self) -> "Symbols":
        from gradlint.analysis.symbols import Symbols

        return Symbols(self.index.tree)

    # positions from ast nodes ---------------------------------------------------------------

    def span_of(self, node: ast.AST) -> tuple[int, int, int, int]:
        """(line, column, end line, end column) of an `ast` node: lines 1-based, columns 0-based
        characters (ast counts UTF-8 bytes; converted here, once per position)."""
        line = node.lineno  # type: ignore[attr-defined]
        end_line = node.end_lineno or line  # type: ignore[attr-defined]
        return (line, self._chars(line, node.col_offset),  # type: ignore[attr-defined]
                end_line, self._chars(end_line, node.end_col_offset or 0))  # type: ignore[attr-defined]

    def text_of(self, node: ast.AST) -> str:
        """The exact source text of an `ast` node."""
        line, col, end_line, end_col = self.span_of(node)
        return self.source.text[self.source.offset(line, col) : self.source.offset(end_line, end_col)]

    def offsets_of(self, node: ast.AST) -> tuple[int, int]:
        """(start, end) text offsets of an `ast` node."""
        line, col, end_line, end_col = self.span_of(node)
        return self.source.offset(line, col), self.source.offset(end_line, end_col)

    def finding(self, code: str, node: ast.AST, message: str, severity: Severity, fix: Fix | None = None,
                subject: str | None = None) -> Diagnostic:
        """A finding placed on an `ast` node's exact span."""
        line, col, end_line, end_col = self.span_of(node)
        return Diagnostic(self.source.path, line, col + 1, end_line, end_col + 1, code, message, severity, fix,
                          subject)

    def model_finding(self, code: str, node: ast.AST, message: str, severity: Severity, fix: Fix | None = None,
                      subject: str | None = None) -> Diagnostic:
        """A finding about a whole model: on the name in `class Name` for a class, on the node
        itself otherwise (an `nn.Sequential(...)` call)."""
        if type(node) in DEFINITIONS:
            line = node.lineno  # type: ignore[attr-defined]
            text = self.source.line_text(line)
            name = node.name  # type: ignore[attr-defined]
            keyword = "class" if type(node) is ast.ClassDef else "def"
            start = self._chars(line, node.col_offset)  # type: ignore[attr-defined]
            found = text.find(keyword, start)
            column = text.find(name, found + len(keyword)) if found >= 0 else -1
            if column >= 0:
                return Diagnostic(self.source.path, line, column + 1, line, column + len(name) + 1, code, message,
                                  severity, fix, subject)
        return self.finding(code, node, message, severity, fix, subject)

    def release(self) -> None:
        """Drop the parsed trees and the analyses. They refer back to this context (the data
        flow holds its span method), so without this only Python's cyclic garbage collector
        could free a file's trees, and its full collections grow with everything held."""
        training = self.__dict__.get("training")
        if training is not None and hasattr(training, "release"):
            training.release()
        symbols = self.__dict__.get("symbols")
        if symbols is not None:
            symbols.release()
        for name in ("segments", "training", "models", "dataflow", "_function_segments", "symbols"):
            self.__dict__.pop(name, None)

    @cached_property
    def segments(self) -> list[Segment]:
        from gradlint.analysis.cst_walk import set_text_source

        chosen = select_statements(self.source, self.index, SEGMENT_TRIGGER)
        segments = parse_segments(self.source, self.index, chosen)
        set_text_source(self._statement_text)
        return segments

    def _statement_text(self, node: cst.CSTNode) -> str | None:
        """The file's text of a statement (classes, functions, methods) via its ast twin."""
        segments = list(self.__dict__.get("segments", ()))
        segments += [s for s in self.__dict__.get("_function_segments", {}).values() if s is not None]
        for segment in segments:
            twin = segment.ast_twin(node)
            if twin is not None:
                line, col, end_line, end_col = self._ast_span(twin)
                start = self.source.offset(getattr(twin, "decorator_list", None) and twin.decorator_list[0].lineno or line, 0)
                return self.source.text[start : self.source.offset(end_line, end_col)]
        return None

    def function_segment(self, name: str) -> Segment | None:
        """A top-level function the segment selection left out, parsed on demand (once)."""
        cache = self.__dict__.setdefault("_function_segments", {})
        if name not in cache:
            cache[name] = None
            for stmt in self.index.statements:
                if getattr(stmt.node, "name", None) == name and stmt.is_definition:
                    if any(seg.start_line <= stmt.start_line <= seg.end_line for seg in self.segments):
                        break
                    cache[name] = parse_segments(self.source, self.index, [stmt.index])[0]
                    break
        return cache[name]

    def project_model_file(self, name: str) -> str | None:
        """The sibling module that defines the model class `name` this file imports, if any
        (`name` may be dotted through an imported module: `core.MLPActorCritic`)."""
        from gradlint.analysis.project import imported_summary

        names = self.symbols.imported_names()
        head = name.split(".", 1)[0]
        if head not in names:
            return None
        target = names[head] + name[len(head):]
        found = imported_summary(self.source.path, target, self.settings.root)
        if found is not None and found[1] in found[0].classes and found[0].classes[found[1]].is_model:
            return found[0].path
        return None

    @cached_property
    def training(self) -> "TrainingAnalysis":
        from gradlint.analysis.training import TrainingAnalysis

        return TrainingAnalysis(self)

    @cached_property
    def models(self) -> "ModelAnalysis":
        from gradlint.analysis.models import ModelAnalysis
        from gradlint.analysis.values import module_constants

        return ModelAnalysis(self.index.imports, self.segments, module_constants(self.index.tree), self.source.text)

    def analysis_name(self, node: cst.BaseExpression) -> str | None:
        """torch's short name for a callee (`nn.Softsign` -> `Softsign`), as the models see it."""
        return self.models.torch_name(node)

    @cached_property
    def dataflow(self) -> "DataFlow":
        from gradlint.analysis.dataflow import DataFlow

        return DataFlow(self.symbols, self.models, self.source.path, self.source.text, self.settings.root,
                        self.text_of, self.budget.spend)

    # positions ----------------------------------------------------------------------------

    def span(self, segment: Segment, node: cst.CSTNode, within: cst.CSTNode | None = None) -> tuple[int, int, int, int]:
        """(line, column, end line, end column) of a node; lines 1-based, columns 0-based.

        A statement is placed through its `ast` twin. Any other node is found as its exact
        source text inside the statement `within` that holds it. The libcst PositionProvider
        is the fallback when neither works.
        """
        twin = segment.ast_twin(node)
        if twin is not None:
            return self._ast_span(twin)
        if within is not None:
            holder = segment.ast_twin(within)
            if holder is not None:
                line, col, end_line, end_col = self._ast_span(holder)
                start = self.source.offset(line, col)
                text = self.source.text[start : self.source.offset(end_line, end_col)]
                code = self.code(node)
                found, length = text.find(code), len(code)
                if found >= 0 and text.find(code, found + 1) >= 0:
                    found = _nth(text, code, _occurrence(within, node, code))
                elif found < 0 and "\n" in code:
                    found, length = _find_across_lines(text, code, lambda: _occurrence(within, node, code))
                if found >= 0:
                    begin = start + found
                    line, col = self.source.line_col(begin)
                    end_line, end_col = self.source.line_col(begin + length)
                    return line, col, end_line, end_col
        code_range = segment.positions()[node]
        shift = segment.start_line - 1
        return (code_range.start.line + shift, code_range.start.column,
                code_range.end.line + shift, code_range.end.column)

    def _ast_span(self, node: ast.stmt) -> tuple[int, int, int, int]:
        end_line = node.end_lineno or node.lineno
        return (node.lineno, self._chars(node.lineno, node.col_offset),
                end_line, self._chars(end_line, node.end_col_offset or 0))

    def _chars(self, line: int, byte_column: int) -> int:
        """ast columns count UTF-8 bytes; ours count characters."""
        text = self.source.line_text(line)
        if text.isascii():
            return byte_column
        return len(text.encode("utf-8")[:byte_column].decode("utf-8", errors="ignore"))

    def code(self, node: cst.CSTNode) -> str:
        """The exact source text of a node (libcst keeps every character inside a node)."""
        return code_for_node(node)

    def diagnostic(self, code: str, segment: Segment, node: cst.CSTNode, message: str,
                   severity: Severity, fix: Fix | None = None, within: cst.CSTNode | None = None,
                   subject: str | None = None) -> Diagnostic:
        line, col, end_line, end_col = self.span(segment, node, within)
        return Diagnostic(self.source.path, line, col + 1, end_line, end_col + 1, code, message,
                          severity, fix, subject)

    def edit(self, start: int, end: int, content: str) -> Edit:
        line, col = self.source.line_col(start)
        end_line, end_col = self.source.line_col(end)
        return Edit(start, end, content, (line, col + 1), (end_line, end_col + 1))

    def header_diagnostic(self, code: str, segment: Segment, node: cst.CSTNode, anchor: cst.CSTNode | None,
                          message: str, severity: Severity, fix: Fix | None = None,
                          subject: str | None = None) -> Diagnostic:
        """A finding about a whole model: on `class Name` for a class, on the call for an
        `nn.Sequential(...)` expression."""
        if type(node) is cst.ClassDef:
            twin = segment.ast_twin(node)
            if twin is not None:
                line = twin.lineno
                text = self.source.line_text(line)
                column = text.find(node.name.value, self._chars(line, twin.col_offset))
                if column >= 0:
                    end = column + len(node.name.value)
                    return Diagnostic(self.source.path, line, column + 1, line, end + 1, code, message, severity, fix,
                                      subject)
        return self.diagnostic(code, segment, node, message, severity, fix, anchor, subject)
