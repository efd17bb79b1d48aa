"""Everything the rules of one file share: the source, the pre-pass, the libcst segments and the
analyses, each computed at most once and only when a rule asks for it."""

from __future__ import annotations

import ast
import re
from functools import cached_property
from typing import TYPE_CHECKING

import libcst as cst

from gradlint.diagnostics import Diagnostic, Edit, Fix, Severity
from gradlint.prepass import FileIndex, Segment, function_names, parse_segments, select_statements
from gradlint.source import SourceFile

if TYPE_CHECKING:
    from gradlint.analysis.training import TrainingAnalysis
    from gradlint.config import Settings

_EMPTY_MODULE = cst.Module(body=[])

# Top-level statements whose text matches this are parsed with libcst for the training analysis.
TRAINING_TRIGGER = re.compile(
    r"backward|\.step\(|clip|unscale_|optim|Optim|Adam|SGD|RMSprop|Adagrad|LBFGS|Scaler|RNN|LSTM|GRU"
)


def file_may_train(text: str) -> bool:
    """The documented skip criterion of the GL1xx rules: a file that never mentions both
    `backward` and `.step(` has no backward-then-step sequence to check."""
    return "backward" in text and ".step(" in text


class FileContext:
    def __init__(self, source: SourceFile, index: FileIndex, settings: "Settings") -> None:
        self.source = source
        self.index = index
        self.settings = settings

    @cached_property
    def segments(self) -> list[Segment]:
        chosen = select_statements(self.source, self.index, TRAINING_TRIGGER)
        return parse_segments(self.source, self.index, chosen)

    @cached_property
    def training(self) -> "TrainingAnalysis":
        from gradlint.analysis.training import TrainingAnalysis

        return TrainingAnalysis(self.index.imports, self.segments, function_names(self.index.tree))

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
                found = text.find(self.code(node))
                if found >= 0:
                    begin = start + found
                    line, col = self.source.line_col(begin)
                    end_line, end_col = self.source.line_col(begin + len(self.code(node)))
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
        return _EMPTY_MODULE.code_for_node(node)

    def diagnostic(self, code: str, segment: Segment, node: cst.CSTNode, message: str,
                   severity: Severity, fix: Fix | None = None, within: cst.CSTNode | None = None) -> Diagnostic:
        line, col, end_line, end_col = self.span(segment, node, within)
        return Diagnostic(self.source.path, line, col + 1, end_line, end_col + 1, code, message,
                          severity, fix)

    def edit(self, start: int, end: int, content: str) -> Edit:
        line, col = self.source.line_col(start)
        end_line, end_col = self.source.line_col(end)
        return Edit(start, end, content, (line, col + 1), (end_line, end_col + 1))
