"""What a file's sibling modules provide: models, env factories and normalizers defined in the
project's own code (`from utils.networks import MLPNetwork`, `from envs import make_env`).

Each sibling module is summarised once per process and cached. An import that does not
resolve to a file of the project gives no summary, and the data rules stay silent about what
depends on it.
"""

from __future__ import annotations

import ast
import functools
import os
from dataclasses import dataclass, field

from gradlint.analysis.syntax import parameter_names

OBS_NORMALIZERS = ("NormalizeObservation", "VecNormalize", "ObservationNormalization", "normalize_obs", "RunningMeanStd", "ObsNorm")
REWARD_NORMALIZERS = ("NormalizeReward", "VecNormalize", "ClipRewardEnv", "TransformReward", "ScaleReward", "RewardScal", "clip_reward")
IMAGE_MARKERS = ("AtariPreprocessing", "WarpFrame", "NoFrameskip", "ALE/", "make_atari", "AtariWrapper", "FrameStack", "GrayScaleObservation", "ResizeObservation")


@dataclass
class FunctionSummary:
    """An env factory (or any function): which normalizing wrappers its body applies."""

    normalizes_obs: bool = False
    normalizes_reward: bool = False
    image: bool = False
    normalizes_value: bool = False  # `(x - mean) / std`, `/ 255`, a normalizer call on its input


@dataclass
class ClassSummary:
    is_model: bool = False
    normalizes_input: bool = False  # a norm layer first, or `/ 255` / normalization in forward
    path: list[str] | None = None


@dataclass
class ModuleSummary:
    """A sibling module's functions (from its `ast`, at once) and model classes (on first use:
    they need the libcst parse and the model analysis, which most importers never ask for)."""

    path: str
    functions: dict[str, FunctionSummary] = field(default_factory=dict)
    class_names: frozenset[str] = frozenset()
    _classes: dict[str, ClassSummary] | None = field(default=None, repr=False)

    @property
    def classes(self) -> dict[str, ClassSummary]:
        if self._classes is None:
            self._classes = {}  # import cycles
            self._classes = _describe_models(self.path)
        return self._classes


def summarize_function_text(text: str) -> FunctionSummary:
    """What a function's source says about the data it returns (cheap, text-based)."""
    return FunctionSummary(
        normalizes_obs=any(marker in text for marker in OBS_NORMALIZERS),
        normalizes_reward=any(marker in text for marker in REWARD_NORMALIZERS),
        image=any(marker in text for marker in IMAGE_MARKERS),
        normalizes_value=normalizes_text(text),
    )


def normalizes_text(text: str) -> bool:
    """Whether code text divides by 255, standardises, or calls a normalizer (cheap, textual)."""
    compact = text.replace(" ", "")
    return any(marker in compact for marker in _NORMALIZING_TEXT)


# `x / 255`, `x /= 255.0`, `x.div(255)`, `x * (1 / 255)`, standardisation, normalizer calls
_NORMALIZING_TEXT = ("/255", "/=255", ".div(255", ".div_(255", "*(1/255", "*(1.0/255", "*(1./255", ".std(",
                     "normalize(", "/np.sqrt(", "/torch.sqrt(", ".transform(", "F.normalize")


_CACHE: dict[str, ModuleSummary | None] = {}  # per process, keyed by path, mtime and size
READ: list[str] = []  # sibling modules read while linting the current file (for the result cache)


def summarize_module(path: str) -> ModuleSummary | None:
    """Summary of a project module (cached); None if it cannot be read or parsed."""
    absolute = os.path.abspath(path)
    READ.append(absolute)
    try:
        stat = os.stat(absolute)
        key = f"{absolute}:{stat.st_mtime_ns}:{stat.st_size}"  # an edited sibling is read again
    except OSError:
        return None
    if key in _CACHE:
        return _CACHE[key]
    _CACHE[key] = None  # import cycles
    try:
        from gradlint.analysis.symbols import Symbols
        from gradlint.parsing import parse_python
        from gradlint.source import read_source

        source = read_source(path)
        symbols = Symbols(parse_python(source))
    except Exception:  # noqa: BLE001 - an unreadable sibling only means "unknown"
        return None
    summary = ModuleSummary(path)
    lines = source.text.splitlines()
    for name, node in symbols.functions.items():  # the module's own (also under top-level if/try)
        summary.functions[name] = summarize_function_text("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    summary.class_names = frozenset(symbols.classes)
    _CACHE[key] = summary
    return summary


def imported_summary(importing_file: str, target: str, root: str) -> tuple[ModuleSummary, str] | None:
    """The summary of the project module an import names (`networks.QNetwork` -> the summary
    of networks.py and `QNetwork`); None when the import is not a module of the project."""
    module, _, attr = target.rpartition(".")
    if not module:
        return None
    path = resolve_module(importing_file, module, root)
    summary = summarize_module(path) if path else None
    return (summary, attr) if summary is not None else None


def _describe_models(path: str) -> dict[str, ClassSummary]:
    from gradlint.config import Settings
    from gradlint.context import FileContext, file_may_model
    from gradlint.source import read_source

    try:
        source = read_source(path)
        if not file_may_model(source.text):  # the model rules' own skip criterion
            return {}
        ctx = FileContext.parse(source, Settings())
        try:
            return describe_models(ctx)
        finally:
            ctx.release()
    except Exception:  # noqa: BLE001 - an unreadable sibling only means "unknown"
        return {}


class ProjectClasses:
    """Classes a file imports from its sibling modules, looked up as model classes; a sibling
    is only parsed with libcst and described when one of its names is looked up."""

    def __init__(self) -> None:
        self._imported: dict[str, tuple[ModuleSummary, str]] = {}

    def add(self, name: str, summary: ModuleSummary, attr: str) -> None:
        self._imported[name] = (summary, attr)

    def __contains__(self, name: object) -> bool:
        found = self._imported.get(name)  # type: ignore[arg-type]
        return found is not None and found[1] in found[0].classes

    def __getitem__(self, name: str) -> ClassSummary:
        summary, attr = self._imported[name]
        return summary.classes[attr]


def describe_models(ctx) -> dict[str, ClassSummary]:
    """The module's model classes, as its own FileContext describes them."""
    return {
        model.name: ClassSummary(
            is_model=True,
            normalizes_input=model_normalizes_input(model, ctx.source.text),
            path=None if model.path is None else [op.describe() for op in model.path],
        )
        for model in ctx.models.models
        if model.kind == "module"
    }


def model_normalizes_input(model, text: str) -> bool:
    """A normalization layer as the model's first operation, or scaling in one of its methods
    (`text` is the source of the file that defines it)."""
    if model.path:
        ops = [op for op in model.path if op.kind not in ("input", "concat")]
        if ops and ops[0].kind == "norm":
            return True
    node = model.node
    if type(node) is not ast.ClassDef:
        return False
    starts = _line_starts(text)
    # any method that takes the data: CleanRL scales Atari frames in `get_value`/`get_states`,
    # not in `forward`; a method with no argument but self, or one that trains (`train_net`
    # standardising its advantages before `backward()`), scales no input of the model
    for statement in node.body:
        if (type(statement) in (ast.FunctionDef, ast.AsyncFunctionDef) and statement.name != "__init__"
                and _takes_data(statement) and not _trains(statement)):
            first = min([statement.lineno, *(d.lineno for d in statement.decorator_list)])
            last = statement.end_lineno or statement.lineno
            end = starts[last] if last < len(starts) else len(text)
            if normalizes_text(text[starts[first - 1] : end]):
                return True
    return False


def _takes_data(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    names = parameter_names(method)
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return bool(names or method.args.vararg)


def _trains(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(type(node) is ast.Attribute and node.attr == "backward" for node in ast.walk(method))


@functools.lru_cache(maxsize=4)
def _line_starts(text: str) -> list[int]:
    from gradlint.source import SourceFile

    return SourceFile("", text).line_starts


def resolve_module(importing_file: str, module: str, root: str) -> str | None:
    """The file a project import refers to: relative (`.networks`) or absolute (`utils.networks`)
    searched from the importing file's folder up to the project root."""
    here = os.path.dirname(os.path.abspath(importing_file))
    level = len(module) - len(module.lstrip("."))
    name = module.lstrip(".")
    parts = name.split(".") if name else []
    if level:
        base = here
        for _ in range(level - 1):
            base = os.path.dirname(base)
        return _module_file(base, parts)
    root = os.path.abspath(root)
    base = here
    for _ in range(8):
        found = _module_file(base, parts)
        if found:
            return found
        if base == root or os.path.dirname(base) == base or not base.startswith(root):
            break
        base = os.path.dirname(base)
    return None


def _module_file(base: str, parts: list[str]) -> str | None:
    if not parts:
        candidate = os.path.join(base, "__init__.py")
        return candidate if os.path.isfile(candidate) else None
    candidate = os.path.join(base, *parts) + ".py"
    if os.path.isfile(candidate):
        return candidate
    candidate = os.path.join(base, *parts, "__init__.py")
    return candidate if os.path.isfile(candidate) else None
