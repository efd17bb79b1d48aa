"""The `gradlint` command line."""

from __future__ import annotations

import os
import sys

import click

from gradlint import __version__
from gradlint.config import ConfigError, expand, load_settings
from gradlint.output import FORMATS
from gradlint.output.escape import printable, printable_lines


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _fail(message: str) -> None:
    click.echo(f"gradlint: error: {printable(message)}", err=True)
    sys.exit(2)


class DeviceType(click.ParamType):
    """`cpu`, `cuda` or `cuda:N` (torch's spelling); whether it exists is the worker's to say."""

    name = "cpu|cuda|cuda:N"

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        if text in ("cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
            return text
        self.fail(f"{value!r} is not cpu, cuda or cuda:N (e.g. cuda:1)", param, ctx)


# What fails `check --verify` (exit 1): every finding (as without --verify), the findings the
# verifier did not refute, or only the confirmed ones.
FAIL_ON = ("findings", "unrefuted", "confirmed")


def _fails_the_run(diagnostic, fail_on: str) -> bool:
    if fail_on == "findings":
        return True
    from gradlint.verify.verdict import CONFIRMED, NOT_CONFIRMED

    if fail_on == "confirmed":
        return diagnostic.verdict == CONFIRMED
    return diagnostic.verdict != NOT_CONFIRMED  # unrefuted: confirmed, not verified, or no verdict


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="gradlint")
def main() -> None:
    """Find the causes of exploding gradients in PyTorch training code."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--fix", is_flag=True, help="Apply safe fixes (and unsafe ones with --unsafe-fixes).")
@click.option("--unsafe-fixes/--no-unsafe-fixes", default=None, help="Also apply (or show) fixes that change what the model computes.")
@click.option("--diff", is_flag=True, help="Show the fixes as a diff; write nothing.")
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (replaces the default set); ALL for every rule.")
@click.option("--extend-select", multiple=True, help="Rule codes or prefixes to enable on top of the selection.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--exclude", multiple=True, help="Glob patterns of files/directories to skip (replaces the defaults).")
@click.option("--extend-exclude", multiple=True, help="Glob patterns to skip in addition to the defaults.")
@click.option("--force-exclude", is_flag=True, help="Apply excludes to files named on the command line too (for pre-commit).")
@click.option("--config", "config", multiple=True, help="A config file, or an inline TOML override such as 'select = [\"GL1\"]'.")
@click.option("--isolated", is_flag=True, help="Ignore configuration files.")
@click.option("--format", "--output-format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: source lines on a terminal, one line each otherwise; concise; full; json; json-lines; sarif; github.")
@click.option("-o", "--output-file", type=click.Path(dir_okay=False, writable=True), help="Write the report here instead of stdout.")
@click.option("--statistics", is_flag=True, help="Print counts per rule instead of each finding.")
@click.option("--show-fixes", is_flag=True, help="List the fixes applied by --fix.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings remain.")
@click.option("--exit-non-zero-on-fix", is_flag=True, help="Exit 1 when --fix changed any file, even if nothing remains.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores).")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary.")
@click.option("--verify", "run_verify", is_flag=True, help="Also run `gradlint verify` and mark each finding with its verdict.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="findings", show_default=True,
              help="With --verify, which findings make the exit status 1: all of them, those the verifier did not "
                   "refute (confirmed or not verified), or only the confirmed ones.")
@click.option("--no-cache", is_flag=True, envvar="GRADLINT_NO_CACHE", help="Lint every file again; read and write no cache.")
@click.option("--watch", is_flag=True, help="Lint again whenever a file under PATHS changes (Ctrl-C stops).")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="GRADLINT_CACHE_DIR",
              help="Where to keep the cache (default: .gradlint_cache next to the config, or in the current directory).")
@click.option("--run-report", type=click.Path(dir_okay=False),
              help="A `gradlint run --format json` report: the clipping fix uses the max_norm measured per optimizer.")
def check(paths, fix, unsafe_fixes, diff, select, extend_select, ignore, exclude, extend_exclude, force_exclude,
          config, isolated, output_format, output_file, statistics, show_fixes, exit_zero, exit_non_zero_on_fix,
          jobs, quiet, run_verify, fail_on, no_cache, watch, cache_dir, run_report) -> None:
    """Lint PATHS (files or directories; default: the current directory)."""
    from gradlint.diagnostics import FileError
    from gradlint.discovery import discover
    from gradlint.engine import FileResult, FixMode, lint_paths

    paths = list(paths) or ["."]
    settings = _settings(paths, config, isolated, select, extend_select, ignore, exclude, extend_exclude, unsafe_fixes)
    if fail_on != "findings" and not run_verify:
        _fail(f"--fail-on {fail_on} needs --verify (verdicts come from it)")
    if run_report:
        from dataclasses import replace

        from gradlint.config import max_norms_from_run_report

        try:
            settings = replace(settings, max_norm_at=max_norms_from_run_report(run_report))
        except ConfigError as exc:
            _fail(str(exc))
    if watch:
        if fix or diff or run_verify:
            _fail("--watch only reports; it does not combine with --fix, --diff or --verify")
        _watch(paths, settings, force_exclude, jobs, no_cache, cache_dir, output_format)
    mode = FixMode(apply=fix and not diff, diff=diff, unsafe=settings.unsafe_fixes)
    found = discover(paths, settings, force_exclude)
    cache = None
    if not no_cache and not mode.active:
        from gradlint.cache import Cache

        base = settings.root if settings.config_path else os.getcwd()
        cache = Cache(cache_dir or os.path.join(base, ".gradlint_cache"), settings)
    progress = None
    if sys.stderr.isatty() and len(found.files) >= 200:  # none in CI or pipes
        def progress(done: int, total: int) -> None:
            if done % 25 == 0 or done == total:
                click.echo(f"\rlinting {done}/{total} files", err=True, nl=done == total)
    results = lint_paths(found.files, settings, mode, jobs, cache, progress)
    if run_verify:
        reports = _run_verification(results, settings, (), (), "cpu", None, None)  # verify's own defaults
        verdicts = {(r.findings_of or r.file, v.code, r.model): v.verdict for r in reports for v in r.verdicts}
        for result in results:
            for diagnostic in result.diagnostics:
                diagnostic.verdict = verdicts.get((diagnostic.path, diagnostic.code, diagnostic.subject or "(no model class)"))
    # a missing path is a file that could not be checked: one error line, counted in the summary
    # (so never "All checks passed!"), an annotation in the machine formats, exit status 2
    results += [FileResult(path, error=FileError(path, "no such file or directory")) for path in found.missing]

    for result in results:
        if result.error:
            click.echo(f"gradlint: error: {printable(str(result.error))}", err=True)
        for message in result.fix_errors:
            click.echo(f"gradlint: error: {printable(message)}", err=True)

    remaining = sum(1 for r in results for d in r.diagnostics if _fails_the_run(d, fail_on))
    stream = open(output_file, "w", encoding="utf-8") if output_file else None  # noqa: SIM115
    try:
        # every path missing: nothing was checked, and the error lines say it all
        _report(results, mode, output_format, stream, statistics, show_fixes, quiet or (found.missing and not found.files))
        if fail_on != "findings" and not quiet and output_format in ("text", "concise", "full"):
            total = sum(len(r.diagnostics) for r in results)
            click.echo(f"--fail-on {fail_on}: {remaining} of {total} finding{'s' if total != 1 else ''} fail the run.",
                       file=stream)
    finally:
        if stream:
            stream.close()

    fixed = sum(r.fixed for r in results)
    if found.missing or any(r.error or r.fix_errors for r in results):
        sys.exit(2)
    if diff:
        sys.exit(1 if any(r.diff for r in results) else 0)
    if exit_non_zero_on_fix and fixed:
        sys.exit(1)
    sys.exit(0 if exit_zero or remaining == 0 else 1)


def _watch(paths, settings, force_exclude, jobs, no_cache, cache_dir, output_format) -> None:
    """Poll the files' modification times (no extra dependency) and lint again on a change."""
    import time

    from gradlint.cache import Cache
    from gradlint.discovery import discover
    from gradlint.engine import FixMode, lint_paths

    base = settings.root if settings.config_path else os.getcwd()
    cache = None if no_cache else Cache(cache_dir or os.path.join(base, ".gradlint_cache"), settings)

    def snapshot() -> dict[str, tuple[int, int]]:
        stamps = {}
        for path in discover(paths, settings, force_exclude).files:
            try:
                stat = os.stat(path)
                stamps[path] = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                continue
        return stamps

    previous: dict[str, tuple[int, int]] | None = None
    try:
        while True:
            current = snapshot()
            if current != previous:
                changed = len(current) if previous is None else sum(
                    1 for p in set(current) | set(previous) if current.get(p) != previous.get(p))
                results = lint_paths(sorted(current), settings, FixMode(), jobs, cache)
                click.echo(f"[{time.strftime('%H:%M:%S')}] {changed} file(s) changed; {len(current)} checked")
                for result in results:
                    if result.error:
                        click.echo(f"gradlint: error: {printable(str(result.error))}", err=True)
                _report(results, FixMode(), output_format, None, False, False, False)
                sys.stdout.flush()
                previous = current
            time.sleep(0.5)
    except KeyboardInterrupt:
        sys.exit(0)


def _settings(paths, config, isolated, select, extend_select, ignore, exclude, extend_exclude, unsafe_fixes=None):
    from dataclasses import replace

    try:
        settings = load_settings(paths, tuple(config), isolated)
        overrides = {}
        if select:
            overrides["select"] = _split(select)
        if extend_select:
            overrides["extend_select"] = settings.extend_select + _split(extend_select)
        if ignore:
            overrides["ignore"] = settings.ignore + _split(ignore)
        if exclude:
            overrides["exclude"] = _split(exclude)
        if extend_exclude:
            overrides["extend_exclude"] = settings.extend_exclude + _split(extend_exclude)
        if unsafe_fixes is not None:
            overrides["unsafe_fixes"] = unsafe_fixes
        settings = replace(settings, **overrides)
        for name in ("select", "extend_select", "ignore"):
            value = getattr(settings, name)
            if value:
                expand(value, "--" + name.replace("_", "-"))
        settings.enabled  # noqa: B018 - validates the selection now, not in a worker
    except ConfigError as exc:
        _fail(str(exc))
    return settings


def _run_verification(results, settings, init_args, input_shapes, device, timeout, memory, thresholds=(),
                      sandbox=True):
    import json

    from gradlint.verify import INSTALL_HINT, verify_available

    if not verify_available():
        _fail(INSTALL_HINT)
    from gradlint.verify.session import Options, verify_results
    if sandbox:
        from gradlint.verify.sandbox import capabilities

        if not capabilities().usable:
            _fail(f"verify runs the models' code, and this machine cannot sandbox it: {capabilities().why}; "
                  "`gradlint verify --show-sandbox` says more, `gradlint verify --no-sandbox` runs it without one")
    options = Options(device=device, sandbox=sandbox, thresholds=_thresholds(thresholds))
    if timeout is not None:
        options.timeout = timeout
    if memory is not None:
        options.memory_mb = memory
    for item in init_args:
        name, _, value = item.partition("=")
        try:
            options.init_args[name.strip()] = json.loads(value)
        except json.JSONDecodeError as exc:
            _fail(f"--init-args {item!r}: not CLASS=JSON ({exc.msg})")
    for item in input_shapes:
        name, _, value = item.partition("=")
        try:
            options.input_shapes[name.strip()] = [[int(d) for d in part.replace("x", ",").split(",") if d.strip()]
                                                   for part in value.split(";")]
        except ValueError:
            _fail(f"--input-shape {item!r}: expected CLASS=8,17 (several inputs: CLASS=8,17;8,6)")
    progress = (lambda message: click.echo(message, err=True)) if sys.stderr.isatty() else None
    return verify_results(results, settings, options, progress)


def _report(results, mode, output_format, stream, statistics, show_fixes, quiet) -> None:
    from gradlint.output import machine, sarif, text

    colour = stream is None and sys.stdout.isatty()

    def emit(value: str) -> None:
        if value:
            click.echo(value, file=stream, nl=not value.endswith("\n"), color=colour if stream is None else False)

    if mode.diff:
        for result in results:
            if result.diff:
                emit(result.diff)
        if not quiet:
            count = sum(r.fixed for r in results)
            click.echo(f"Would fix {count} problem{'s' if count != 1 else ''}." if count else "No fixes available.", err=True)
        return
    if output_format == "json":
        emit(machine.render_json(results))
    elif output_format == "json-lines":
        emit(machine.render_json_lines(results))
    elif output_format == "sarif":
        emit(sarif.render_sarif(results))
    elif output_format == "github":
        emit(machine.render_github(results))
    else:
        if statistics:
            emit(text.statistics(results, mode))
        else:
            full = output_format == "full" or (output_format == "text" and colour)
            emit(text.render(results, mode, full, colour))
        if show_fixes and mode.apply:
            for result in results:
                if result.fixed:
                    emit(f"Fixed {result.fixed} problem{'s' if result.fixed != 1 else ''} in {printable(result.path)}")
        if not quiet:
            emit(text.summary(results, mode, colour))


@main.command("rules")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--all", "show_all", is_flag=True, help="(kept for symmetry; every rule is always listed)")
def rules_command(output_format: str, show_all: bool) -> None:
    """List every rule: code, name, default, fix safety and summary."""
    import json

    from gradlint.rules import ALL_RULES

    if output_format == "json":
        click.echo(json.dumps([
            {"code": r.code, "name": r.name, "summary": r.summary, "severity": r.severity.value,
             "severities": [severity.value for severity in r.reported_severities()], "default": r.default_enabled, "fix": r.fix_applicability.value if r.fix_applicability else None}
            for r in ALL_RULES
        ], indent=2))
        return
    from gradlint.docs import severities

    for rule in ALL_RULES:
        fix = f"{rule.fix_applicability.value} fix" if rule.fix_applicability else "no fix"
        default = "on" if rule.default_enabled else "off"
        click.echo(f"{rule.code}  {rule.name:<34} {severities(rule):<22} {default:<4} {fix:<11} {rule.summary}")


@main.command("rule")
@click.argument("code")
def rule_command(code: str) -> None:
    """Explain one rule: why it matters, an example, what to write instead, and its fix."""
    from gradlint.rules import RULES_BY_CODE

    rule = RULES_BY_CODE.get(code.upper())
    if rule is None:
        _fail(f"unknown rule {code!r}; `gradlint rules` lists them")
    click.echo(render_rule(rule))


def render_rule(rule) -> str:
    from gradlint.docs import severities

    fix = (f"{rule.fix_applicability.value} fix: {rule.fix_description}" if rule.fix_applicability else "no automatic fix")
    options = "".join(f"\n  {o.name} ({o.type.__name__}, default {o.default!r}): {o.help}" for o in rule.options)
    parts = [
        f"{rule.code} {rule.name}",
        f"{rule.summary}.",
        f"Severity: {severities(rule)}. Enabled by default: {'yes' if rule.default_enabled else 'no'}.",
        "",
        "Why is this bad?",
        rule.rationale,
        "",
        "Example:",
        _indent(rule.bad_example),
        "Use instead:",
        _indent(rule.good_example),
        f"Fix: {fix}",
    ]
    if options:
        parts.append(f"Options ([tool.gradlint.options.{rule.code}]):{options}")
    if rule.references:
        parts.append("References:\n" + "\n".join(f"  - {r}" for r in rule.references))
    return "\n".join(parts)


def _indent(code: str) -> str:
    return "".join(f"    {line}\n" for line in code.splitlines())


@main.command("explain-model")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain_model(paths, output_format: str) -> None:
    """Print what gradlint believes each model of PATHS is: layers, forward path, init, gain."""
    import json

    from gradlint.config import Settings
    from gradlint.context import BudgetExceeded, FileContext
    from gradlint.discovery import discover
    from gradlint.inputs import SourceError, read_for_analysis

    documents = []
    failed = False
    for path in discover(list(paths), Settings()).files:
        try:
            analysed = read_for_analysis(path)  # notebooks: their code cells; marimo: cells at top level
            ctx = FileContext.parse(analysed.source, Settings())
            models = ctx.models.models
        except (SourceError, BudgetExceeded, RecursionError) as exc:
            message = exc.message if isinstance(exc, SourceError) else (
                "analysis budget exceeded" if isinstance(exc, BudgetExceeded) else "too deeply nested to analyse")
            click.echo(f"gradlint: error: {printable(path)}: {printable(message)}", err=True)
            failed = True
            continue
        for model in models:
            cell, line = analysed.place(model.line)
            data = {"file": path, **({"cell": cell} if cell else {}), "line": line, **model.to_dict()}
            documents.append(data)
    if output_format == "json":
        click.echo(json.dumps(documents, indent=2))
    else:
        for data in documents:
            click.echo(printable_lines(render_model(data)))
    sys.exit(2 if failed else 0)


def render_model(data: dict) -> str:
    def show(value) -> str:
        if value is None:
            return "?"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    cell = f"cell {data['cell']}:" if data.get("cell") else ""
    lines = [f"{printable(data['file'])}:{cell}{data['line']}: {printable(data['name'])} ({data['kind']})"]
    if data["init_params"]:
        lines.append("  constructor: " + ", ".join(f"{k}={show(v)}" for k, v in data["init_params"].items()))
    if data["inputs"]:
        lines.append("  inputs: " + ", ".join(data["inputs"]))
    for layer in data["layers"]:
        args = ", ".join(f"{k}={show(v)}" for k, v in layer["args"].items())
        extra = f"  fan_in={show(layer['fan_in'])}" if layer["category"] in ("weight", "param") else ""
        if layer["gain"] is not None or layer["category"] in ("weight", "param"):
            extra += f"  gain c={show(layer['gain'])}"
        inits = f"  init: {'; '.join(layer['inits'])}" if layer["inits"] else ""
        lines.append(f"  {layer['name']:<14} {layer['kind']}({args}){extra}{inits}")
    if data["path"] is None:
        lines.append("  forward: unknown")
    else:
        lines.append("  forward: " + " -> ".join(data["path"]))
    if data["bound"]:
        lines.append(f"  action bound: {data['bound']}")
    for recurrence in data["recurrences"]:
        lines.append(f"  recurrence: {recurrence}")
    return "\n".join(lines) + "\n"


@main.command("verify")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", multiple=True, help="Rule codes or prefixes whose findings to verify.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to leave out.")
@click.option("--config", "config", multiple=True, help="A config file, or an inline TOML override.")
@click.option("--isolated", is_flag=True, help="Ignore configuration files.")
@click.option("--init-args", multiple=True, help='Constructor arguments: CLASS=JSON, e.g. Actor={"state_dim": 17}.')
@click.option("--input-shape", multiple=True, help="Input shapes: CLASS=8,17 (several inputs: CLASS=8,17;8,6).")
@click.option("--device", type=DeviceType(), default="cpu", show_default=True,
              help="Where the probes run: cpu, cuda (the current GPU) or cuda:N (GPU number N).")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds per model: a guard against hangs, generous for a busy machine.")
@click.option("--memory", type=click.IntRange(min=256), default=8192, show_default=True, help="Memory limit of the worker, MiB.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output-file", type=click.Path(dir_okay=False, writable=True))
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="Write PNG plots of the measurements here (needs matplotlib).")
@click.option("--threshold", multiple=True, help="Override a verdict threshold: NAME=VALUE (see gradlint/verify/verdict.py).")
@click.option("--no-sandbox", is_flag=True, help="Run the models' code without the OS sandbox (where the machine has none).")
@click.option("--show-sandbox", is_flag=True, help="Print what the sandbox gets on this machine, and exit.")
def verify_command(paths, select, ignore, config, isolated, init_args, input_shape, device, timeout, memory,
                   output_format, output_file, plot_dir, threshold, no_sandbox, show_sandbox) -> None:
    """Build each model the findings of PATHS concern, in a sandboxed process, and measure
    whether its gradients really grow: confirmed / not confirmed / not verified, with figures.

    This runs the models' code (imports, classes, constructors); the training code of the
    files is removed first. On Linux it runs in an OS sandbox (see --show-sandbox); where the
    machine cannot make one, verify refuses unless --no-sandbox is given.
    """
    from gradlint.discovery import discover
    from gradlint.engine import lint_paths

    if show_sandbox:
        from gradlint.verify.sandbox import capabilities

        click.echo("\n".join(capabilities().describe()))
        sys.exit(0)
    paths = list(paths) or ["."]
    settings = _settings(paths, config, isolated, select, (), ignore, (), ())
    found = discover(paths, settings)
    for missing in found.missing:
        click.echo(f"gradlint: error: {printable(missing)}: no such file or directory", err=True)
    if found.missing and not found.files:
        sys.exit(2)  # nothing to verify, and the error lines said why
    results = lint_paths(found.files, settings)
    for result in results:
        if result.error:
            click.echo(f"gradlint: error: {printable(str(result.error))}", err=True)
    reports = _run_verification(results, settings, init_args, input_shape, device, timeout, memory, threshold,
                                not no_sandbox)
    stream = open(output_file, "w", encoding="utf-8") if output_file else None  # noqa: SIM115
    colour = stream is None and sys.stdout.isatty()
    from gradlint.verify import report as verify_report  # after the availability check: it needs libcst

    text = verify_report.render_json(reports) if output_format == "json" else verify_report.render_text(reports, colour)
    click.echo(text, file=stream, color=colour if stream is None else False)
    if stream:
        stream.close()
    if plot_dir:
        from gradlint.plot import plot_verification

        try:
            for path in plot_verification(reports, plot_dir):
                click.echo(f"wrote {path}", err=True)
        except RuntimeError as exc:
            _fail(str(exc))
    sys.exit(2 if found.missing or any(r.error for r in results) else 0)


@main.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Stop after this many steps of any one optimizer.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop after this many seconds.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-o", "--output-file", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write a PNG: gradient norms per optimizer with events, per-feature input scales (needs matplotlib).")
@click.option("--select", multiple=True, help="Rule codes or prefixes whose findings to verify.")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to leave out.")
@click.option("--config", "config", multiple=True, help="A config file, or an inline TOML override.")
@click.option("--isolated", is_flag=True, help="Ignore configuration files.")
@click.option("--threshold", multiple=True, help="Override a verdict threshold: NAME=VALUE (see gradlint/verify/verdict.py).")
def run_command(script, script_args, steps, time_limit, output_format, output_file, plot_path, select, ignore, config,
                isolated, threshold) -> None:
    """Run SCRIPT as `python SCRIPT SCRIPT_ARGS` would, instrumented with torch's hooks, stop it
    after --steps optimizer steps, and verify each finding of the script (and of the project
    modules it imports) on what the real run measured.

    Options after SCRIPT are the script's (`gradlint run --steps 50 train.py --lr 3e-4`; `--`
    also separates them). Under torchrun: `torchrun --nproc-per-node 2 -m gradlint run train.py`.
    This runs the script: run it only on code you trust.
    """
    from gradlint.run import exit_status, run_and_verify
    from gradlint.run import report as run_report
    from gradlint.verify import INSTALL_HINT, torch_available

    if not os.path.isfile(script):
        _fail(f"{script}: no such file")
    if not torch_available():
        _fail("gradlint run needs torch: pip install 'gradlint[verify]'")
    settings = _settings([script], config, isolated, select, (), ignore, (), ())
    thresholds = _thresholds(threshold)
    report = run_and_verify(script, list(script_args), settings, steps, time_limit,
                            progress=sys.stderr.isatty(), thresholds=thresholds)
    for error in report.get("lint_errors", []):
        click.echo(f"gradlint: error: {error}", err=True)
    rank = report.get("rank", 0)
    if rank:  # under torchrun, rank 0 reports for every rank
        sys.exit(exit_status(report))
    stream = open(output_file, "w", encoding="utf-8") if output_file else None  # noqa: SIM115
    colour = stream is None and sys.stdout.isatty()
    text = run_report.render_json(report) if output_format == "json" else run_report.render_text(report, colour)
    click.echo(text, file=stream, color=colour if stream is None else False)
    if stream:
        stream.close()
    if plot_path:
        from gradlint.plot import plot_run

        try:
            titles = plot_run(report, plot_path)
        except RuntimeError as exc:
            _fail(str(exc))
        click.echo(f"wrote {plot_path} ({'; '.join(titles)})", err=True)
    sys.exit(exit_status(report))


def _thresholds(items) -> dict[str, float]:
    from gradlint.verify.verdict import THRESHOLDS

    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name.strip() not in THRESHOLDS:
            _fail(f"--threshold {item!r}: unknown threshold (known: {', '.join(sorted(THRESHOLDS))})")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            _fail(f"--threshold {item!r}: expected NAME=NUMBER")
    return out


@main.command("plot")
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", default="gradients.png", show_default=True, type=click.Path(dir_okay=False))
def plot_command(log: str, out: str) -> None:
    """Plot a GradMonitor log (JSON Lines or CSV): global norm with blow-ups marked, per-layer
    heatmap, and the extra scalars logged with it."""
    from gradlint.monitor import read_log
    from gradlint.plot import plot_log

    try:
        records = read_log(log)
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"{log}: not a GradMonitor log ({exc})")
    if not records:
        _fail(f"{log}: no records")
    try:
        titles = plot_log(records, out)
    except RuntimeError as exc:
        _fail(str(exc))
    click.echo(f"wrote {out} ({len(titles)} panels: {'; '.join(titles)})")
