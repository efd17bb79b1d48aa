"""Everything the rules of one file share: its source, its `ast` tree, the symbol layer and the
analyses, each computed at most once and only when a rule asks for it."""

from __future__ import annotations

import ast
import functools
import re
from functools import cached_property
from typing import TYPE_CHECKING

from gradlint.analysis.syntax import DEFINITIONS
from gradlint.diagnostics import Diagnostic, Edit, Fix, Severity
from gradlint.source import SourceFile

if TYPE_CHECKING:
    from gradlint.analysis.dataflow import DataFlow
    from gradlint.analysis.models import ModelAnalysis
    from gradlint.analysis.symbols import Symbols
    from gradlint.analysis.training import TrainingAnalysis
    from gradlint.config import Settings


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
    """One file under analysis: `source`, its `tree`, the shared analyses and the positions and
    findings the rules make from `ast` nodes."""

    def __init__(self, source: SourceFile, tree: ast.Module, settings: "Settings",
                 budget: AnalysisBudget | None = None) -> None:
        self.source = source
        self.tree = tree
        self.settings = settings
        self.budget = budget if budget is not None else AnalysisBudget.for_text(source.text)

    @classmethod
    def parse(cls, source: SourceFile, settings: "Settings") -> "FileContext":
        """Parse `source` (a SourceError if it is not valid Python) and analyse it."""
        from gradlint.parsing import parse_python

        return cls(source, parse_python(source), settings)

    @cached_property
    def symbols(self) -> "Symbols":
        from gradlint.analysis.symbols import Symbols

        return Symbols(self.tree)

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
        for name in ("training", "models", "dataflow", "symbols"):
            self.__dict__.pop(name, None)

    def project_model_file(self, name: str) -> str | None:
        """The sibling module that defines the model class `name` this file imports, if any
        (`name` may be dotted through an imported module: `core.MLPActorCritic`)."""
        from gradlint.analysis.project import imported_summary

        names = self.symbols.imported_names()
        head = name.split(".", 1)[0]
        if head in names:
            targets = [names[head] + name[len(head):]]
        else:  # `from common.value_networks import *`
            targets = [f"{module}.{name}" for module in self.symbols.imports.star_modules]
        for target in targets:
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

        return ModelAnalysis(self)

    @cached_property
    def dataflow(self) -> "DataFlow":
        from gradlint.analysis.dataflow import DataFlow

        return DataFlow(self.symbols, self.models, self.source.path, self.source.text, self.settings.root,
                        self.text_of, self.budget.spend)

    def edit(self, start: int, end: int, content: str) -> Edit:
        line, col = self.source.line_col(start)
        end_line, end_col = self.source.line_col(end)
        return Edit(start, end, content, (line, col + 1), (end_line, end_col + 1))

    def _chars(self, line: int, byte_column: int) -> int:
        """ast columns count UTF-8 bytes; ours count characters."""
        text = self.source.line_text(line)
        if text.isascii():
            return byte_column
        return len(text.encode("utf-8")[:byte_column].decode("utf-8", errors="ignore"))
