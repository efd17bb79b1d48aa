"""ruff-like text: `path:line:col: CODE [*] message`, with the source line and a caret under
the span in `full` mode (the default on a terminal), colour only on a terminal, and a summary."""

from __future__ import annotations

from collections import Counter

import click

from gradlint.diagnostics import Diagnostic, Severity
from gradlint.engine import FileResult, FixMode
from gradlint.output.escape import printable
from gradlint.rules import RULES_BY_CODE

_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def fixable_marker(diagnostic: Diagnostic, mode: FixMode) -> str:
    if diagnostic.fix is not None and mode.allows(diagnostic.fix.applicability):
        return "[*] "
    return ""


def format_diagnostic(diagnostic: Diagnostic, mode: FixMode, source_line: str | None, colour: bool) -> str:
    style = (lambda text, **kw: click.style(text, **kw)) if colour else (lambda text, **kw: text)
    cell = f"cell {diagnostic.cell}:" if diagnostic.cell else ""
    where = style(f"{printable(diagnostic.path)}:{cell}{diagnostic.line}:{diagnostic.column}:", bold=True)
    code = style(diagnostic.code, fg=_COLOURS[diagnostic.severity], bold=True)
    line = f"{where} {code} {fixable_marker(diagnostic, mode)}{printable(diagnostic.message)}"
    if diagnostic.verdict:
        line += f" [{diagnostic.verdict}]"
    if source_line is None:
        return line
    number = str(diagnostic.line)
    pad = " " * len(number)
    if "\t" in source_line:
        source_line = source_line.expandtabs(4)
    start = diagnostic.column - 1
    end = diagnostic.end_column - 1 if diagnostic.end_line == diagnostic.line else len(source_line)
    text = printable(source_line)  # the caret is placed under the escaped text
    start, end = len(printable(source_line[:start])), len(printable(source_line[:end]))
    width = max(1, end - start)
    caret = style("^" * width, fg=_COLOURS[diagnostic.severity], bold=True)
    out = [line, f"{pad} |", f"{number} | {text}", f"{pad} | {' ' * start}{caret}"]
    if diagnostic.fix is not None:
        kind = "" if mode.allows(diagnostic.fix.applicability) else f" ({diagnostic.fix.applicability.value} fix)"
        out.append(f"{pad} = {style('help', bold=True)}: {printable(diagnostic.fix.message)}{kind}")
    return "\n".join(out) + "\n"


def _read_line(path: str, line: int, cache: dict[str, list[str]]) -> str | None:
    from gradlint.source import MAX_READ_BYTES, SourceError, read_bytes, split_lines

    if path not in cache:
        try:
            cache[path] = split_lines(read_bytes(path, MAX_READ_BYTES).decode("utf-8", errors="replace"))
        except SourceError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1] if 0 < line <= len(lines) else None


def render(results: list[FileResult], mode: FixMode, full: bool, colour: bool) -> str:
    out: list[str] = []
    lines: dict[str, list[str]] = {}
    for result in results:
        for diagnostic in result.diagnostics:
            source_line = _read_line(diagnostic.path, diagnostic.line, lines) if full and not diagnostic.cell else None
            out.append(format_diagnostic(diagnostic, mode, source_line, colour))
    return "\n".join(out) + ("\n" if out else "")


def summary(results: list[FileResult], mode: FixMode, colour: bool) -> str:
    diagnostics = [d for r in results for d in r.diagnostics]
    fixed = sum(r.fixed for r in results)
    remaining = len(diagnostics)
    lines = []
    if remaining == 0 and fixed == 0:
        if not any(r.error for r in results):
            lines.append(click.style("All checks passed!", fg="green", bold=True) if colour else "All checks passed!")
    else:
        severities = Counter(d.severity.value for d in diagnostics)
        detail = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in sorted(severities.items()))
        files = len({d.path for d in diagnostics})
        text = f"Found {remaining + fixed} problem{'s' if remaining + fixed != 1 else ''}"
        if fixed:
            text += f" ({fixed} fixed, {remaining} remaining)"
        elif remaining:
            text += f" in {files} file{'s' if files != 1 else ''}"
            text += f" ({detail})" if detail else ""
        lines.append(text + ".")
        fixable = sum(1 for d in diagnostics if d.fix and mode.allows(d.fix.applicability))
        hidden = sum(1 for d in diagnostics if d.fix and not mode.allows(d.fix.applicability))
        if fixable or hidden:
            hint = f"[*] {fixable} fixable with the `--fix` option" if fixable else "No fixes available"
            if hidden:
                hint += f" ({hidden} hidden fix{'es' if hidden != 1 else ''} can be enabled with the `--unsafe-fixes` option)"
            lines.append(hint + ".")
    errors = sum(1 for r in results if r.error)
    if errors:
        lines.append(f"{errors} file{'s' if errors != 1 else ''} could not be checked.")
    return "\n".join(lines)


def statistics(results: list[FileResult], mode: FixMode) -> str:
    counts = Counter(d.code for r in results for d in r.diagnostics)
    fixable = {d.code for r in results for d in r.diagnostics if d.fix and mode.allows(d.fix.applicability)}
    rows = []
    for code, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        marker = "[*]" if code in fixable else "   "
        rows.append(f"{count:>5}\t{code}\t{marker} {RULES_BY_CODE[code].name}")
    return "\n".join(rows)
