"""Everything the rules of one file share: the source, the pre-pass, the libcst segments and the
analyses, each computed at most once and only when a rule asks for it."""

from __future__ import annotations

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

    def span(self, segment: Segment, node: cst.CSTNode) -> tuple[int, int, int, int]:
        """(line, column, end line, end column) in the file; lines 1-based, columns 0-based."""
        code_range = segment.positions()[node]
        shift = segment.start_line - 1
        return (code_range.start.line + shift, code_range.start.column,
                code_range.end.line + shift, code_range.end.column)

    def offsets(self, segment: Segment, node: cst.CSTNode) -> tuple[int, int]:
        line, col, end_line, end_col = self.span(segment, node)
        return self.source.offset(line, col), self.source.offset(end_line, end_col)

    def code(self, segment: Segment, node: cst.CSTNode) -> str:
        start, end = self.offsets(segment, node)
        return self.source.text[start:end]

    def diagnostic(self, code: str, segment: Segment, node: cst.CSTNode, message: str,
                   severity: Severity, fix: Fix | None = None) -> Diagnostic:
        line, col, end_line, end_col = self.span(segment, node)
        return Diagnostic(self.source.path, line, col + 1, end_line, end_col + 1, code, message,
                          severity, fix)

    def edit(self, start: int, end: int, content: str) -> Edit:
        line, col = self.source.line_col(start)
        end_line, end_col = self.source.line_col(end)
        return Edit(start, end, content, (line, col + 1), (end_line, end_col + 1))
