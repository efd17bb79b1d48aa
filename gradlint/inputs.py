"""The text the analyses read of a file, and where a line of it lies in the file: Python as
written, a notebook's code cells joined (lines placed by cell), a marimo notebook's cells at
top level (same lines, columns shifted)."""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.marimo import MarimoView, present
from gradlint.notebook import Notebook, load_notebook
from gradlint.source import SourceError, SourceFile, check_analysable, check_bool_chains, read_bytes, read_source


@dataclass
class AnalysedText:
    source: SourceFile  # what the analyses read
    notebook: Notebook | None = None
    marimo: MarimoView | None = None

    def place(self, line: int) -> tuple[int | None, int]:
        """(cell number or None, line) in the file of a line of the analysed text."""
        if self.notebook is not None:
            cell, in_cell = self.notebook.position(line)
            return (cell or None), in_cell
        return None, line


def read_for_analysis(path: str) -> AnalysedText:
    """Read a .py or .ipynb file as the analyses see it; SourceError (one clear line) otherwise."""
    if path.endswith(".ipynb"):
        raw = read_bytes(path)
        notebook = load_notebook(raw)
        check_analysable(notebook.text)
        check_bool_chains(notebook.text)
        return AnalysedText(SourceFile(path, notebook.text, "utf-8", raw), notebook=notebook)
    source = read_source(path)
    view = present(source)
    return AnalysedText(view.source, marimo=view) if view is not None else AnalysedText(source)


__all__ = ["AnalysedText", "SourceError", "read_for_analysis"]
