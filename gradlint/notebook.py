"""Jupyter notebooks: their code cells linted as one Python text, findings placed by cell and
line, fixes written back as valid notebook JSON that keeps outputs and metadata.

IPython magics (`%timeit`, `%%capture`, `!pip install`, `obj?`) are not Python: each becomes a
placeholder comment while linting and is restored, unchanged, when fixes are written back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from gradlint.source import SourceError

_CELL = "# %% gradlint cell {}"
_CELL_RE = re.compile(r"^# %% gradlint cell (\d+)$")
_MAGIC = "# gradlint magic {}"
_MAGIC_RE = re.compile(r"^(\s*)# gradlint magic (\d+)$")


def _is_magic(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(("%", "!")) or (stripped.endswith("?") and not stripped.startswith("#")) or stripped.startswith("?")


@dataclass
class Notebook:
    data: dict
    indent: int
    text: str  # the code cells, as one Python text with a marker line before each cell
    cell_of_line: list[tuple[int, int]] = field(default_factory=list)  # text line -> (cell number, line in cell)
    magics: list[str] = field(default_factory=list)

    def position(self, line: int) -> tuple[int, int]:
        """(1-based cell number in the notebook, 1-based line in that cell) of a text line."""
        if 1 <= line <= len(self.cell_of_line):
            return self.cell_of_line[line - 1]
        return (0, line)

    def with_text(self, text: str) -> str:
        """The notebook JSON with the code cells replaced by those of `text`."""
        sources: dict[int, list[str]] = {}
        current = None
        for line in text.splitlines(keepends=True):
            marker = _CELL_RE.match(line.rstrip("\r\n"))
            if marker:
                current = int(marker.group(1))
                sources[current] = []
                continue
            if current is None:
                continue
            magic = _MAGIC_RE.match(line.rstrip("\r\n"))
            if magic:
                ending = line[len(line.rstrip("\r\n")):]
                line = self.magics[int(magic.group(2))] + ending
            sources[current].append(line)
        for index, cell in enumerate(self.data.get("cells", [])):
            if index in sources:
                lines = sources[index]
                if lines:  # a cell's last line has no newline in nbformat
                    lines[-1] = lines[-1].rstrip("\n")
                cell["source"] = lines if isinstance(cell.get("source"), list) else "".join(lines)
        return json.dumps(self.data, indent=self.indent, ensure_ascii=False) + "\n"


def load_notebook(raw: bytes) -> Notebook:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"not a valid notebook (JSON): {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SourceError("not a valid notebook: no list of cells")
    match = re.search(r'\n( +)"', raw.decode("utf-8", errors="replace"))
    notebook = Notebook(data, len(match.group(1)) if match else 1, "")
    lines: list[str] = []
    for index, cell in enumerate(data["cells"]):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines.append(_CELL.format(index))
        notebook.cell_of_line.append((index + 1, 0))
        first = source.lstrip().split("\n", 1)[0]
        whole_cell_magic = first.startswith("%%") and first[2:].split(" ")[0] not in ("capture", "time", "timeit", "prun")
        for number, line in enumerate(source.split("\n"), start=1):
            if whole_cell_magic or _is_magic(line):
                indent = line[: len(line) - len(line.lstrip())]
                notebook.magics.append(line)
                line = indent + _MAGIC.format(len(notebook.magics) - 1)
            lines.append(line)
            notebook.cell_of_line.append((index + 1, number))
    notebook.text = "\n".join(lines) + "\n"
    return notebook
