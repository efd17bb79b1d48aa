"""From lint results to verdicts: group findings by the model they concern, work out how to
build each model, run the probes in the worker, and apply the verdict rule.

The lint results are read through their public outputs (Diagnostic: code, path, line,
subject). The one place that reads the lint analysis' internals is `_analysis_facts`: the model
descriptions `gradlint explain-model --format json` prints, and the sibling module that defines an
imported model class.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import click

from gradlint.config import Settings
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.engine import FileResult
from gradlint.verify import ModelReport
from gradlint.analysis.envs import env_spec
from gradlint.verify.loader import ParsedFile, constructor_args, model_only_source, removed_names
from gradlint.verify.runner import DeviceUnavailableError, Worker, WorkerStartError, uses_cuda
from gradlint.verify.verdict import NOT_VERIFIED, Verdict, decide

DEFAULT_TIMEOUT = 300.0  # seconds per model: a hang guard, generous for a busy 2-core machine


@dataclass
class Options:
    init_args: dict[str, dict] = field(default_factory=dict)
    input_shapes: dict[str, list[list[int]]] = field(default_factory=dict)
    device: str = "cpu"
    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int = 8192
    thresholds: dict[str, float] = field(default_factory=dict)
    sandbox: bool = True  # False: --no-sandbox


class DeviceError(click.ClickException):
    """The requested device cannot be used: one line on stderr, exit status 2, no traceback
    (a ClickException, so the CLI shows it as such; other callers can catch it)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"gradlint: error: {self.format_message()}", file=file, err=file is None)


def verify_results(results: list[FileResult], settings: Settings, options: Options, progress=None) -> list[ModelReport]:
    reports: list[ModelReport] = []
    project = [settings.root, *{os.path.dirname(os.path.abspath(r.path)) for r in results if r.diagnostics}]
    worker = Worker(options.timeout, options.memory_mb, options.device, sandbox=options.sandbox, project=project)
    try:
        if uses_cuda(options.device):  # find out now, once, rather than as an error on every model
            try:
                worker.start()
            except DeviceUnavailableError as exc:
                raise DeviceError(f"--device {options.device}: {exc}; use --device cpu") from None
            except WorkerStartError:
                pass  # any other start failure: reported on each model, as on the CPU
        for result in results:
            if not result.diagnostics:
                continue
            reports.extend(_verify_file(result.path, result.diagnostics, settings, options, worker, progress))
    finally:
        worker.close()
    return reports


def _analysis_facts(path: str, settings: Settings) -> tuple[ParsedFile, dict[str, dict], Callable[[str], str | None]]:
    """The adapter to the lint analysis (the only code here that reads its internals): the file
    as the linter reads it, parsed once (its ast tree and symbol layer, shared with the loader),
    its nn.Module classes as `gradlint explain-model --format json` describes them (plus "line"
    and, in a notebook, "cell", placed as the linter places findings), and a lookup of the
    sibling module that defines an imported model class.

    The text is the linter's view: a notebook's code cells joined, its IPython magics turned into
    inert placeholders (never run); a marimo notebook's cells at top level, so a class a cell
    defines is a module class and the imports every cell makes are the module's."""
    from gradlint.context import FileContext
    from gradlint.inputs import read_for_analysis

    analysed = read_for_analysis(path)
    ctx = FileContext.parse(analysed.source, settings)
    models = {}
    for model in ctx.models.models:
        if model.kind == "module":
            cell, line = analysed.place(model.line)
            models[model.name] = {**model.to_dict(), "line": line, "cell": cell}
    return ParsedFile(analysed.source.text, ctx.tree, ctx.symbols), models, _sibling_lookup(ctx, path, settings)


def _sibling_lookup(ctx, path: str, settings: Settings) -> Callable[[str], str | None]:
    """The project module that defines a model class the file imports: by name, else through
    the file's `from common.policy_networks import *` (the last star import that defines it,
    as Python binds it)."""
    from gradlint.analysis.project import imported_summary

    def lookup(name: str) -> str | None:
        found = ctx.project_model_file(name)
        if found is not None or "." in name:
            return found
        for module in reversed(ctx.symbols.imports.star_modules):
            summary = imported_summary(path, f"{module}.{name}", settings.root)
            if summary is not None and name in summary[0].classes:
                return summary[0].path if summary[0].classes[name].is_model else None
        return None

    return lookup


def _verify_file(path: str, diagnostics: list[Diagnostic], settings: Settings, options: Options, worker: Worker,
                 progress, call_site: ParsedFile | None = None) -> list[ModelReport]:
    groups: dict[str | None, list[Diagnostic]] = defaultdict(list)
    for diagnostic in diagnostics:
        groups[diagnostic.subject].append(diagnostic)
    reports: list[ModelReport] = []
    try:
        file, models, project_model_file = _analysis_facts(path, settings)
        env = _registered_env(call_site or file)
        spec = env_spec(env["id"]) if env is not None else None
        stand_ins = removed_names(file, spec, options.device)
        text_only = model_only_source(file, spec, stand_ins)
    except Exception as exc:  # noqa: BLE001 - bad input or a libcst failure: reported, never raised
        return [ModelReport(path, "?", 0, "error", f"cannot prepare the file: {exc}")]
    file_env = env
    prepared = {None if env is None else env["id"]: (env, spec, stand_ins, text_only)}
    for subject, found in groups.items():
        codes = sorted({d.code for d in found})
        key = None if file_env is None else file_env["id"]
        if file_env is None and subject is not None:  # a notebook section's env, where the file names several
            own = _registered_env(call_site or file, subject.rsplit(".", 1)[-1])
            if own is not None and own["id"] not in prepared:
                own_spec = env_spec(own["id"])
                own_stand_ins = removed_names(file, own_spec, options.device)
                prepared[own["id"]] = (own, own_spec, own_stand_ins, model_only_source(file, own_spec, own_stand_ins))
            key = own["id"] if own is not None else None
        env, spec, stand_ins, text_only = prepared[key]

        sibling = project_model_file(subject) if subject and subject not in models else None
        if sibling is not None:  # `from networks import MLPNetwork`: build it from its own file
            reports.extend(_verify_sibling(path, file, sibling, subject.rsplit(".", 1)[-1], codes, settings,
                                           options, worker))
            continue
        if subject is None or subject not in models:
            why = ("the finding names no model class to build (the linter tied it to none)" if subject is None else
                   f"{subject} is not an nn.Module class defined in this file or in a module of the project: "
                   "nothing to build it from")
            reports.append(ModelReport(path, subject or "(no model class)", found[0].line, "error", why,
                                       verdicts=[_unbuilt_verdict(c, why) for c in codes], cell=found[0].cell))
            continue
        model = models[subject]
        construction = constructor_args(file, subject, options.init_args.get(subject), spec, options.device,
                                        caller=call_site)  # the importing file's call first
        report = ModelReport(path, subject, model["line"], "ok", cell=model["cell"], construction={
            "source": construction.source, "args": construction.args, "kwargs": construction.kwargs,
            "guessed": construction.guessed, **({"env_sizes": construction.env_sizes} if construction.env_sizes else {}),
            **({"stand_ins": stand_ins} if stand_ins else {}),
            **({"env": env["id"]} if env is not None else {})})
        if construction.missing:
            report.status = "error"
            names = ", ".join(construction.missing)
            report.error = (f"cannot build {subject}: no value for {names}; pass "
                            f"--init-args '{subject}={{\"{construction.missing[0]}\": ...}}'")
            report.verdicts = [_unbuilt_verdict(c, report.error, spec) for c in codes]
            reports.append(report)
            continue
        if progress:
            progress(f"verifying {subject} ({os.path.basename(path)})")
        request = {
            "file": os.path.abspath(path),
            "module_name": "gradlint_user_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12],
            "source": text_only,
            "sys_path": [os.path.dirname(os.path.abspath(path)), os.path.abspath(settings.root)],
            "class": subject,
            "args": construction.args,
            "kwargs": construction.kwargs,
            "input_shapes": options.input_shapes.get(subject),
            "hints": {"inputs": model["inputs"],
                      "dims": {k: v for k, v in model["init_params"].items()
                               if isinstance(v, (int, float)) and not isinstance(v, bool)}},
            "codes": codes,
            "device": options.device,
            "seed": 0,
        }
        if env is not None:
            request["env"] = env
        reply = worker.request(request)
        if reply.get("status") != "ok":
            report.status = "error"
            report.error = reply.get("error", "unknown error")
            report.verdicts = [_unbuilt_verdict(c, f"the model could not be run: {report.error}", spec) for c in codes]
            reports.append(report)
            continue
        figures = reply["figures"]
        bound = _bound_value(model, construction)
        if bound is not None:
            figures["bound"] = bound
        report.figures = figures
        try:
            report.verdicts = [decide(code, figures, options.thresholds) for code in codes]
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError, OverflowError):
            # figures of the right JSON types but not the probes' shape: the model's code wrote them
            report.status, report.error, report.figures = "error", "worker protocol error: malformed figures", {}
            report.verdicts = [Verdict(c, NOT_VERIFIED, f"the model could not be run: {report.error}") for c in codes]
        reports.append(report)
    return reports


_DATA_CODES = ("GL401", "GL403")  # probed at a registered env's observation bounds when the file names one


def _unbuilt_verdict(code: str, reason: str, env=None) -> Verdict:
    """A finding whose model was not built, with `reason`, unless building it could not have
    verified it: loop findings, and data findings of a file that names no registered env, need
    the real run anyway, and say so."""
    verdict = decide(code, {})
    if "gradlint run" in verdict.reason and not (env is not None and code in _DATA_CODES):
        return verdict
    return Verdict(code, NOT_VERIFIED, reason)


_ENV_ID = re.compile(r"^(?:[\w.-]+/)?[A-Z][\w-]*-v\d+$")  # `CartPole-v1`, `ALE/Pong-v5`, `HalfCheetah-v2`


def _registered_env(file: ParsedFile, class_name: str | None = None) -> dict | None:
    """The env whose observations reach the model: the one env id the file names, when it names
    exactly one and that one is registered with known observation bounds (a script that can train
    `HalfCheetah-v2` or `Pendulum-v0` has no one env whose bounds describe what its model sees);
    else, for `class_name` built by top-level code (a notebook's sections, each with its env), the
    env of the statement nearest before that construction that names an env id, when it names one."""
    ids = _env_ids(file.tree)
    if len(ids) != 1 and class_name is not None:
        ids = _env_at_construction(file.tree, class_name)
    spec = env_spec(ids[0]) if len(ids) == 1 else None
    if spec is None:
        return None
    return {"id": spec.env_id, "low": list(spec.low), "high": list(spec.high), "dtype": spec.dtype,
            "source": spec.source}


def _env_ids(node: ast.AST) -> list[str]:
    """Every env id (registered or not) named as a string constant in `node`."""
    found: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _ENV_ID.match(sub.value):
            if sub.value not in found:
                found.append(sub.value)
    return found


def _env_at_construction(tree: ast.Module, class_name: str) -> list[str]:
    """The env ids of the top-level statement nearest before (or at) the first top-level one that
    builds `class_name`, read in order as a notebook runs: `env_id = "CartPole-v0"` (cell 8) before
    `model = DQN(...)` (cell 14), though a later section trains `PongNoFrameskip-v4`."""
    from gradlint.analysis.syntax import last_name

    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if any(_env_ids(node) for node in tree.body if isinstance(node, definitions)):
        return []  # a function may make its own env (`def make_env(env_id="HalfCheetah-v2")`): no order to read
    simple = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)
    body = [node for node in tree.body if not isinstance(node, definitions)]
    for index, node in enumerate(body):
        if any(isinstance(call, ast.Call) and last_name(call.func) == class_name for call in ast.walk(node)):
            for statement in reversed(body[: index + 1]):
                ids = _env_ids(statement)
                if ids:  # straight-line code only: a branch or loop may name an env it does not make
                    return ids if isinstance(statement, simple) and isinstance(node, simple) else []
            return []
    return []


def _verify_sibling(path: str, file: ParsedFile, sibling: str, subject: str, codes: list[str], settings: Settings,
                    options: Options, worker: Worker) -> list[ModelReport]:
    """Findings of `path` (parsed as `file`) about a model class defined in the sibling module `sibling`."""
    stand_ins = [Diagnostic(sibling, 1, 1, 1, 1, code, "", Severity.INFO, None, subject) for code in codes]
    reports = _verify_file(sibling, stand_ins, settings, options, worker, None, call_site=file)
    for report in reports:
        report.construction.setdefault("defined_in", sibling)
        report.file = f"{path} -> {sibling}"
        report.findings_of = path
    return reports


def _bound_value(model: dict, construction) -> float | None:
    """The action bound's value: the attribute the description names (`self.max_action`), from
    the constructor arguments used, else the constructor's default."""
    for name in reversed(re.findall(r"[A-Za-z_]\w*", model.get("bound") or "")):
        for value in (construction.kwargs.get(name), model["init_params"].get(name)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None
