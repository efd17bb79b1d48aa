"""The one finding type that flows from rules to every output format, and its fixes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class Severity(str, Enum):
    """How sure and how serious: an error is likely to blow up training, a warning is a risk."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Applicability(str, Enum):
    """ruff's fix safety: safe fixes keep what the model computes, unsafe ones change it."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Edit:
    """Replace text[start:end] (offsets into the decoded source) with `content`.

    `location`/`end_location` are the same places as (line, 1-based column), for output.
    """

    start: int
    end: int
    content: str
    location: tuple[int, int] = (0, 0)
    end_location: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Fix:
    """A set of edits that together remove one finding."""

    message: str
    edits: tuple[Edit, ...]
    applicability: Applicability = Applicability.SAFE


@dataclass
class Diagnostic:
    """One finding at one place in one file. Lines are 1-based, columns 1-based characters."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    code: str
    message: str
    severity: Severity = Severity.WARNING
    fix: Fix | None = None
    subject: str | None = None  # the model class the finding is about, for `gradlint verify`
    verdict: str | None = None  # set by `gradlint check --verify`
    cell: int | None = None  # for notebooks: the cell, and `line` is the line in that cell

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["severity"] = self.severity.value
        if self.fix is not None:
            data["fix"]["applicability"] = self.fix.applicability.value
        return data


@dataclass
class FileError:
    """A file that could not be linted (unreadable, undecodable, not valid Python)."""

    path: str
    message: str
    line: int = 0
    column: int | None = None  # 0-based; None when only the line is known

    def __str__(self) -> str:
        where = self.path
        if self.line:
            where += f":{self.line}" + (f":{self.column + 1}" if self.column is not None else "")
        return f"{where}: {self.message}"
