"""Machine-readable formats: json (ruff-compatible fields), json-lines, github annotations."""

from __future__ import annotations

import json

from gradlint.diagnostics import Diagnostic, Severity
from gradlint.engine import FileResult
from gradlint.output.escape import printable
from gradlint.rules import RULES_BY_CODE


def diagnostic_json(diagnostic: Diagnostic) -> dict:
    fix = None
    if diagnostic.fix is not None:
        fix = {
            "applicability": diagnostic.fix.applicability.value,
            "message": diagnostic.fix.message,
            "edits": [
                {
                    "content": edit.content,
                    "location": {"row": edit.location[0], "column": edit.location[1]},
                    "end_location": {"row": edit.end_location[0], "column": edit.end_location[1]},
                }
                for edit in diagnostic.fix.edits
            ],
        }
    return {
        "code": diagnostic.code,
        "name": RULES_BY_CODE[diagnostic.code].name,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "filename": diagnostic.path,
        "location": {"row": diagnostic.line, "column": diagnostic.column},
        "end_location": {"row": diagnostic.end_line, "column": diagnostic.end_column},
        "fix": fix,
        "model": diagnostic.subject,
        **({"cell": diagnostic.cell} if diagnostic.cell else {}),
        **({"verdict": diagnostic.verdict} if diagnostic.verdict else {}),
    }


def render_json(results: list[FileResult]) -> str:
    return json.dumps([diagnostic_json(d) for r in results for d in r.diagnostics], indent=2) + "\n"


def render_json_lines(results: list[FileResult]) -> str:
    return "".join(json.dumps(diagnostic_json(d)) + "\n" for r in results for d in r.diagnostics)


def _escape_data(text: str) -> str:
    """A message: controls written as escapes (no line break can end the command early)."""
    return printable(text).replace("%", "%25")


def _escape_property(text: str) -> str:
    """A property such as `file=`: the runner decodes %0A back, so a real path still matches."""
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A").replace(":", "%3A").replace(",", "%2C")
    return printable(escaped)


def render_github(results: list[FileResult]) -> str:
    """GitHub Actions workflow commands: one annotation per finding and per unreadable file."""
    out = []
    for result in results:
        for d in result.diagnostics:
            level = "error" if d.severity is Severity.ERROR else "warning" if d.severity is Severity.WARNING else "notice"
            props = (
                f"title={_escape_property(f'gradlint ({d.code})')},file={_escape_property(d.path)},"
                f"line={d.line},col={d.column},endLine={d.end_line},endColumn={d.end_column}"
            )
            out.append(f"::{level} {props}::{_escape_data(f'{d.path}:{d.line}:{d.column}: {d.code} {d.message}')}\n")
        if result.error:
            e = result.error
            out.append(
                f"::error title=gradlint,file={_escape_property(e.path)},line={max(e.line, 1)}::"
                f"{_escape_data(str(e))}\n"
            )
    return "".join(out)
