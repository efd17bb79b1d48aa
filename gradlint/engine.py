"""Linting files: read, pre-pass, rules, suppressions; fixing; many files in parallel."""

from __future__ import annotations

import gc
import hashlib
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field

from gradlint.cache import file_stamp
from gradlint.config import Settings
from gradlint.context import BudgetExceeded, FileContext
from gradlint.diagnostics import Applicability, Diagnostic, FileError
from gradlint.fixing import apply_fixes, unified_diff, write_atomically
from gradlint.parsing import parse_python
from gradlint.rules import RULES_BY_CODE, Rule
from gradlint.source import (
    MAX_ANALYSED_CHARS,
    MAX_READ_BYTES,
    SourceError,
    SourceFile,
    check_analysable,
    check_bool_chains,
    decode_source,
    read_bytes,
    read_source,
)
from gradlint.suppressions import filter_suppressed, skips_file

MAX_FIX_ROUNDS = 10
PARALLEL_THRESHOLD = 8  # below this many files a process pool costs more than it saves
# Files no rule wants are only syntax-checked up to this size: ast.parse of a generated 10 MB
# data file can take half a minute and gigabytes, for a file gradlint has nothing to say about.
SYNTAX_CHECK_LIMIT = 1_000_000


@dataclass
class FileResult:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    error: FileError | None = None
    fixed: int = 0
    diff: str | None = None
    fix_errors: list[str] = field(default_factory=list)
    content_hash: str | None = None  # for the cache
    dependencies: list[str] = field(default_factory=list)  # sibling modules the analysis read
    stamp: tuple[int, int, int] | None = None  # (size, mtime, when) taken before reading, for the cache


@dataclass(frozen=True)
class FixMode:
    """What to do with fixes: nothing, write them (`--fix`), or show them (`--diff`)."""

    apply: bool = False
    diff: bool = False
    unsafe: bool = False

    @property
    def active(self) -> bool:
        return self.apply or self.diff

    def allows(self, applicability: Applicability) -> bool:
        return applicability is Applicability.SAFE or self.unsafe


def rules_for(settings: Settings, path: str) -> list[Rule]:
    codes = settings.enabled_for(path)
    return [RULES_BY_CODE[code](settings.options_for(code)) for code in sorted(codes)]


def lint_source(source: SourceFile, settings: Settings, rules: list[Rule] | None = None) -> list[Diagnostic]:
    """All findings of the enabled rules on one decoded file. Raises SourceError for bad input."""
    if rules is None:
        rules = rules_for(settings, source.path)
    text = source.text
    if skips_file(text):
        return []
    wanted = [rule for rule in rules if rule.wants(text)]
    if not wanted:
        if len(text) <= SYNTAX_CHECK_LIMIT:
            parse_python(source)  # still report syntax errors in files no rule wants
        return []
    tree = parse_python(source)  # raises SourceError on a syntax error
    # The cyclic collector is paused while the file's trees are in use: running on its own, it
    # promoted them to its old generations and its full collections walked them over and over
    # (15 % of a run). Released below, they are freed by reference counting; one young
    # collection at the end takes any small cycle that is left.
    collecting = gc.isenabled()
    gc.disable()
    ctx = FileContext(source, tree, settings)
    diagnostics: list[Diagnostic] = []
    try:
        for rule in wanted:
            try:
                diagnostics.extend(rule.check(ctx))
            except SourceError:
                raise
            except BudgetExceeded:
                raise SourceError("analysis budget exceeded") from None
            except RecursionError:
                raise SourceError("too deeply nested to analyse") from None
            except Exception as exc:  # one rule's bug must not lose the other rules' findings
                where = traceback.extract_tb(exc.__traceback__)[-1]
                raise SourceError(
                    f"internal error in {rule.code} ({type(exc).__name__}: {exc} at "
                    f"{os.path.basename(where.filename)}:{where.lineno}); please report it"
                ) from None
    finally:
        ctx.release()
        if collecting:
            gc.enable()
            gc.collect(0)
    diagnostics = filter_suppressed(source, diagnostics)
    diagnostics.sort(key=Diagnostic.sort_key)
    return diagnostics


def lint_file(path: str, settings: Settings, mode: FixMode = FixMode()) -> FileResult:
    """Lint one file (and fix it when asked). Never raises for bad input."""
    from gradlint import marimo
    from gradlint.analysis import project

    result = FileResult(path)
    project.READ.clear()
    result.stamp = file_stamp(path)
    try:
        if path.endswith(".ipynb"):
            _lint_notebook(path, settings, mode, result)
            result.dependencies = sorted(set(project.READ))
            return result
        source = read_source(path, limit=MAX_READ_BYTES)
        result.content_hash = hashlib.sha256(source.raw or b"").hexdigest()
        rules = rules_for(settings, path)
        if (len(source.text) > MAX_ANALYSED_CHARS and not skips_file(source.text)
                and any(rule.wants(source.text) for rule in rules)):
            check_analysable(source.text)  # a file no rule wants is only read, as small ones are
        view = marimo.present(source)
        if view is not None:
            marimo.lint_marimo(view, settings, rules, mode, result)
        elif mode.active:
            fix_file(source, settings, rules, mode, result)
        else:
            result.diagnostics = lint_source(source, settings, rules)
    except SourceError as exc:
        result.error = FileError(path, exc.message, exc.line, exc.column)
        result.diagnostics = []
    result.dependencies = sorted(set(project.READ))
    return result


def _lint_notebook(path: str, settings: Settings, mode: FixMode, result: FileResult) -> None:
    """A notebook: its code cells as one text; positions mapped back to cell and line."""
    from gradlint.notebook import load_notebook

    raw = read_bytes(path)
    result.content_hash = hashlib.sha256(raw).hexdigest()
    notebook = load_notebook(raw)
    check_analysable(notebook.text)
    check_bool_chains(notebook.text)
    source = SourceFile(path, notebook.text, "utf-8", raw)
    rules = rules_for(settings, path)
    try:
        if mode.active:
            new_text = fix_file(source, settings, rules, FixMode(diff=True, unsafe=mode.unsafe), result)
            result.diff = None
            if new_text != notebook.text:
                written = notebook.with_text(new_text)
                after = load_notebook(written.encode("utf-8"))
                if mode.diff:
                    result.diff = notebook.diff(path, new_text)
                if mode.apply:
                    error = write_atomically(SourceFile(path, "", "utf-8", raw), written.encode("utf-8"))
                    if error:
                        result.fix_errors.append(f"{path}: {error}")
                        result.fixed = 0
                notebook = after  # positions of what remains
        else:
            result.diagnostics = lint_source(source, settings, rules)
    except SourceError as exc:
        if exc.message.startswith("SyntaxError"):
            own = notebook.first_invalid_cell()  # the joined text shows it where the next cell starts
            if own is not None:
                raise own from None
        cell, line = notebook.position(exc.line)
        where = f"cell {cell}: " if cell else ""
        raise SourceError(f"{where}{notebook.place_lines(exc.message)}", line, exc.column) from None
    for diagnostic in result.diagnostics:
        diagnostic.message = notebook.place_lines(diagnostic.message)
        cell, line = notebook.position(diagnostic.line)
        _, end_line = notebook.position(diagnostic.end_line)
        diagnostic.cell, diagnostic.line, diagnostic.end_line = cell, line, end_line
        diagnostic.fix = None if mode.active else diagnostic.fix  # edits are in the joined text


def fix_file(source: SourceFile, settings: Settings, rules: list[Rule], mode: FixMode, result: FileResult) -> str:
    """Apply fixes round by round (a fix can make room for another) until none is left.

    Records the remaining findings, the diff and write errors in `result`; returns the new text.
    """
    current = source
    failed: set[tuple] = set()
    diagnostics = lint_source(current, settings, rules)
    for _ in range(MAX_FIX_ROUNDS):
        fixable = [
            d for d in diagnostics
            if d.fix is not None and mode.allows(d.fix.applicability)
            and (d.code, d.line, d.column) not in failed
        ]
        if not fixable:
            break
        text, applied, rejected = apply_fixes(current.text, fixable)
        for diagnostic in rejected:
            failed.add((diagnostic.code, diagnostic.line, diagnostic.column))
            result.fix_errors.append(
                f"{source.path}:{diagnostic.line}:{diagnostic.column}: {diagnostic.code} fix not "
                "applied: the result would not parse"
            )
        if not applied:
            break
        current = decode_source(source.path, current.encode(text))
        result.fixed += applied
        diagnostics = lint_source(current, settings, rules)
    result.diagnostics = diagnostics
    if current.text == source.text:
        return current.text
    if mode.diff:
        result.diff = unified_diff(source.path, source.text, current.text)
    if mode.apply:
        error = write_atomically(source, current.encode(current.text))
        if error:
            result.fix_errors.append(f"{source.path}: {error}")
            result.fixed = 0
    return current.text


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _lint_one(args: tuple[str, Settings, FixMode]) -> FileResult:
    return lint_file(*args)


def lint_paths(files: Iterable[str], settings: Settings, mode: FixMode = FixMode(), jobs: int | None = None,
               cache=None, progress=None) -> list[FileResult]:
    """Lint many files; in a process pool when there are enough of them. Output order is the
    order of `files`, whatever order the workers finish in. With a `Cache`, unchanged files
    are answered from it (in this process, without starting workers) and new results stored."""
    files = list(files)
    results: list[FileResult | None] = [None] * len(files)
    if cache is not None and not mode.active:
        for index, path in enumerate(files):
            results[index] = cache.get(path)
    todo = [i for i, result in enumerate(results) if result is None]
    if jobs is None:
        jobs = os.cpu_count() or 1
    jobs = max(1, min(jobs, len(todo) or 1))
    fresh: list[FileResult] = []
    if jobs == 1 or len(todo) < PARALLEL_THRESHOLD:
        for i in todo:
            fresh.append(lint_file(files[i], settings, mode))
            if progress:
                progress(len(fresh), len(todo))
    else:
        # Largest files first, in small chunks: the workers then finish together instead of one
        # idling while the other works through a late chunk of big training scripts.
        todo.sort(key=lambda i: -_size(files[i]))
        chunksize = max(1, min(8, len(todo) // (jobs * 16)))
        from concurrent.futures import ProcessPoolExecutor  # 16 ms of imports a one-file run does not need

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for result in pool.map(_lint_one, [(files[i], settings, mode) for i in todo], chunksize=chunksize):
                fresh.append(result)
                if progress:
                    progress(len(fresh), len(todo))
    for index, result in zip(todo, fresh):
        results[index] = result
        if cache is not None and not mode.active:
            cache.put(result)
    if cache is not None:
        cache.save()
    return results  # type: ignore[return-value]
