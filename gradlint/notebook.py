"""Jupyter notebooks: their code cells linted as one Python text, findings placed by cell and
line (cells counted from 1, as Jupyter shows them), fixes written back as valid notebook JSON
that keeps outputs, metadata and every unchanged cell byte for byte.

IPython syntax (`%timeit`, `!pip install`, `files = !ls`, `obj?`, `%%bash` cells) is not Python:
while linting, a line magic becomes `pass  # gradlint magic N` (a statement, so a magic that is
the whole body of an `if` keeps the block valid) and each line of a non-Python cell magic a
comment; both are restored, unchanged, when fixes are written back. A line counts as a magic
only where a statement starts (not inside brackets, strings or after a backslash), as in IPython.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass, field

from gradlint.source import SourceError

_CELL = "# %% gradlint cell {}"  # numbered from 1
_CELL_RE = re.compile(r"^# %% gradlint cell (\d+)$")
_LINE_MAGIC = "pass  # gradlint magic {}"
_COMMENT_MAGIC = "# gradlint magic {}"
_MAGIC_RE = re.compile(r"^[ \t]*(?:pass  )?# gradlint magic (\d+)$")
_ASSIGN_MAGIC = re.compile(r"[ \t]*[A-Za-z_][\w.,\[\] \t]*=[ \t]*[!%]")
# cell magics whose body is Python (the first line alone is IPython)
_PYTHON_CELL_MAGICS = frozenset({"capture", "time", "timeit", "prun", "debug"})


def _is_magic(line: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return False
    return (stripped.startswith(("%", "!", "?")) or stripped.endswith("?")
            or _ASSIGN_MAGIC.match(line) is not None)


@dataclass
class _Scan:
    """Where a line leaves Python's tokenizer: open brackets, an open string, a backslash."""

    depth: int = 0
    quote: str | None = None
    continued: bool = False

    @property
    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        comment = False
        while i < n:
            ch = line[i]
            if self.quote is not None:
                if ch == "\\":
                    i += 2
                    continue
                if line.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = None
                    continue
            elif ch == "#":
                comment = True
                break
            elif ch in "([{":
                self.depth += 1
            elif ch in ")]}":
                self.depth = max(0, self.depth - 1)
            elif ch in "'\"":
                self.quote = ch * 3 if line.startswith(ch * 3, i) else ch
                i += len(self.quote)
                continue
            i += 1
        self.continued = not comment and line.endswith("\\") and (self.quote is None or len(self.quote) == 1)
        if self.quote is not None and len(self.quote) == 1 and not self.continued:
            self.quote = None  # an unterminated one-line string: Python's parser reports it


@dataclass
class Notebook:
    data: dict
    indent: int
    text: str  # the code cells, as one Python text with a marker line before each cell
    cell_of_line: list[tuple[int, int]] = field(default_factory=list)  # text line -> (cell number, line in cell)
    magics: list[str] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)  # cell index -> its source as read

    def position(self, line: int) -> tuple[int, int]:
        """(1-based cell number in the notebook, 1-based line in that cell) of a text line."""
        if 1 <= line <= len(self.cell_of_line):
            return self.cell_of_line[line - 1]
        return (0, line)

    def place_lines(self, message: str) -> str:
        """`line N` in a message (about the joined text) -> `cell C, line L`."""
        def replace(match: re.Match) -> str:
            cell, line = self.position(int(match.group(2)))
            return f"{match.group(1)}cell {cell}, line {line}" if cell else match.group(0)

        return re.sub(r"(\(|\bon )line (\d+)", replace, message)

    def first_invalid_cell(self) -> SourceError | None:
        """The syntax error of the first code cell that is not Python on its own (Jupyter
        compiles each cell alone), placed in that cell; None if every cell parses alone."""
        cells: dict[int, list[str]] = {}
        for text_line, (cell, line) in zip(self.text.split("\n"), self.cell_of_line):
            if line:
                cells.setdefault(cell, []).append(text_line)
        for cell, lines in cells.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ast.parse("\n".join(lines) + "\n")
            except SyntaxError as exc:
                column = max((exc.offset or 1) - 1, 0)
                return SourceError(f"cell {cell}: SyntaxError: {exc.msg}", exc.lineno or 0, column)
            except (ValueError, RecursionError, MemoryError):
                continue
        return None

    def cell_sources(self, text: str) -> dict[int, str]:
        """The source of each code cell (by index in the notebook) in a joined text, magics restored."""
        sources: dict[int, list[str]] = {}
        current = None
        for line in text.splitlines(keepends=True):
            bare = line.rstrip("\r\n")
            marker = _CELL_RE.match(bare)
            if marker:
                current = int(marker.group(1)) - 1
                sources[current] = []
                continue
            if current is None:
                continue
            magic = _MAGIC_RE.match(bare)
            if magic and int(magic.group(1)) < len(self.magics):
                line = self.magics[int(magic.group(1))] + line[len(bare):]
            sources[current].append(line)
        joined = {}
        for index, lines in sources.items():
            source = "".join(lines)
            joined[index] = source[:-1] if source.endswith("\n") else source  # the separator added on reading
        return joined

    def with_text(self, text: str) -> str:
        """The notebook JSON with the code cells that `text` changed replaced; the others as read."""
        cells = self.data["cells"]
        for index, source in self.cell_sources(text).items():
            if index < len(cells) and source != self.sources.get(index):
                cell = cells[index]
                cell["source"] = _split_lines(source) if isinstance(cell.get("source"), list) else source
        return json.dumps(self.data, indent=self.indent, ensure_ascii=False) + "\n"

    def diff(self, path: str, text: str) -> str:
        """A unified diff per changed cell, headed `a/PATH:cell N` with the cell's own line numbers."""
        from gradlint.fixing import unified_diff

        parts = []
        for index, source in sorted(self.cell_sources(text).items()):
            before = self.sources.get(index, "")
            if source != before:
                parts.append(unified_diff(f"{path}:cell {index + 1}", before, source))
        return "".join(parts)


def _split_lines(source: str) -> list[str]:
    """nbformat's list form: each line keeps its newline, no empty string at the end."""
    return re.findall(r"[^\n]*\n|[^\n]+$", source)


def _cell_source(cell: object, number: int) -> str | None:
    if not isinstance(cell, dict):
        raise SourceError(f"not a valid notebook: cell {number} is not a JSON object")
    if cell.get("cell_type") != "code":
        return None
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    raise SourceError(f"not a valid notebook: the source of cell {number} is not text")


def load_notebook(raw: bytes) -> Notebook:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"not a valid notebook (JSON): {exc}") from None
    except RecursionError:
        raise SourceError("not a valid notebook: its JSON is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SourceError("not a valid notebook: no list of cells")
    match = re.search(r'\n( +)"', raw[:4096].decode("utf-8", errors="replace"))
    notebook = Notebook(data, len(match.group(1)) if match else 1, "")
    lines: list[str] = []
    for index, cell in enumerate(data["cells"]):
        source = _cell_source(cell, index + 1)
        if source is None:
            continue
        notebook.sources[index] = source
        lines.append(_CELL.format(index + 1))
        notebook.cell_of_line.append((index + 1, 0))
        for number, line in enumerate(_mask_cell(source, notebook.magics), start=1):
            lines.append(line)
            notebook.cell_of_line.append((index + 1, number))
    notebook.text = "\n".join(lines) + "\n"
    return notebook


def _mask_cell(source: str, magics: list[str]) -> list[str]:
    """The lines of one cell with its IPython syntax replaced by placeholders (kept in `magics`)."""
    lines = source.split("\n")
    first = source.lstrip().split("\n", 1)[0]
    foreign = first.startswith("%%") and first[2:].split(" ")[0] not in _PYTHON_CELL_MAGICS
    scan = _Scan()
    masked = []
    in_magic = False  # the lines a magic continues onto with a backslash
    for line in lines:
        bare = line.rstrip("\r")
        if foreign or in_magic or (scan.at_statement_start and _is_magic(bare)):
            indent = line[: len(line) - len(line.lstrip())]
            magics.append(line)
            template = _LINE_MAGIC if not (foreign or in_magic) else _COMMENT_MAGIC
            masked.append(indent + template.format(len(magics) - 1))
            in_magic = not foreign and bare.endswith("\\")
            continue
        scan.feed(bare)
        masked.append(line)
    return masked
