"""Classes defined in a file's sibling modules, as the training analysis needs them.

`from common.value_networks import *` then `QNetworkLSTM(...)`, `from transformer.Optim import
ScheduledOptim` then `optimizer.step_and_update_lr()`, `from utils import SharedAdam`: the
training analysis asks what such a class is (a recurrent model, an attention model, an
optimizer, a wrapper whose method steps an inner optimizer). Each sibling module is read with
`ast` once per process (cached by path, modification time and size) and recorded as a
dependency of the file being linted (`project.READ`), so the result cache notices an edit.
An import that does not resolve to a file of the project gives no answer: unknown, not "no".
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

from gradlint.analysis import project
from gradlint.analysis.syntax import FUNCTIONS, dotted, receiver_text

RECURRENT_GATED = {"LSTM", "GRU", "LSTMCell", "GRUCell"}
RECURRENT_VANILLA = {"RNN", "RNNCell"}
ATTENTION_MODULES = {"MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
                     "TransformerEncoderLayer", "TransformerDecoderLayer", "scaled_dot_product_attention"}


@dataclass
class SiblingClass:
    name: str
    path: str
    bases: list[str]  # qualified through the sibling's imports
    calls: list[str]  # qualified names the class body and its methods call
    # method name -> the `self.<attr>` whose no-argument `.step()` it calls (an inner optimizer)
    stepping_methods: dict[str, str] = field(default_factory=dict)


@dataclass
class SiblingModule:
    path: str
    classes: dict[str, SiblingClass] = field(default_factory=dict)


_CACHE: dict[str, SiblingModule | None] = {}


def read_module(path: str) -> SiblingModule | None:
    """The classes of a project module (cached per process; None if unreadable)."""
    absolute = os.path.abspath(path)
    project.READ.append(absolute)
    try:
        stat = os.stat(absolute)
    except OSError:
        return None
    key = f"{absolute}:{stat.st_mtime_ns}:{stat.st_size}"
    if key in _CACHE:
        return _CACHE[key]
    _CACHE[key] = None  # import cycles
    try:
        from gradlint.analysis.symbols import Symbols
        from gradlint.source import read_source

        tree = ast.parse(read_source(absolute).text)
    except Exception:  # noqa: BLE001 - an unreadable sibling only means "unknown"
        return None
    symbols = Symbols(tree)
    module = SiblingModule(absolute)
    for node in tree.body:
        if type(node) is ast.ClassDef:
            module.classes[node.name] = _describe(node, symbols, absolute)
    symbols.release()
    _CACHE[key] = module
    return module


def _describe(node: ast.ClassDef, symbols, path: str) -> SiblingClass:
    bases = [symbols.resolve_text(dotted(b)) or "" for b in node.bases]
    found = SiblingClass(node.name, path, bases, [])
    for call, _ in symbols.calls(node):
        text = dotted(call.func)
        if text:
            found.calls.append(symbols.resolve_text(text, symbols.scope_of(call)) or text)
    for member in node.body:
        if type(member) not in FUNCTIONS:
            continue
        for call, _ in symbols.calls(member):
            func = call.func
            if type(func) is ast.Attribute and func.attr == "step" and not call.args and not call.keywords:
                owner = receiver_text(func.value) or ""
                head, _, attr = owner.partition(".")
                if head == "self" and attr and "." not in attr and "optim" in attr.lower():
                    found.stepping_methods[member.name] = attr  # type: ignore[union-attr]
    return found


def find_class(importing_file: str, root: str, qualified: str, star_modules: list[str]) -> SiblingClass | None:
    """The sibling class a name refers to: `pkg.mod.Class` through the file's imports, or a
    bare `Class` defined in a module the file star-imports."""
    module, _, name = qualified.rpartition(".")
    candidates = [module] if module else list(star_modules)
    for candidate in candidates:
        path = project.resolve_module(importing_file, candidate, root)
        found = read_module(path) if path else None
        if found is not None and name in found.classes:
            return found.classes[name]
    return None


def class_chain(cls: SiblingClass, limit: int = 8) -> list[SiblingClass]:
    """The class and its bases defined in the same sibling module."""
    module = read_module(cls.path)
    chain, todo, seen = [], [cls], set()
    while todo and len(chain) < limit:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        chain.append(current)
        if module is not None:
            todo.extend(module.classes[b.rsplit(".", 1)[-1]] for b in current.bases
                        if b.rsplit(".", 1)[-1] in module.classes)
    return chain


def recurrent_core(cls: SiblingClass, depth: int = 3) -> tuple[str, bool] | None:
    """(`nn.LSTM`, gated) when the class (its bases, or a class of the same module it builds)
    creates a torch recurrent module; the vanilla one wins when both are seen."""
    module = read_module(cls.path)
    best: tuple[str, bool] | None = None
    for current in class_chain(cls):
        for qualified in current.calls:
            last = qualified.rsplit(".", 1)[-1]
            if qualified.startswith("torch.") and last in RECURRENT_VANILLA:
                return f"nn.{last}", False
            if qualified.startswith("torch.") and last in RECURRENT_GATED and best is None:
                best = (f"nn.{last}", True)
            elif depth and _same_module_class(module, qualified, current):
                inner = recurrent_core(module.classes[last], depth - 1)
                if inner is not None and (best is None or not inner[1]):
                    best = inner
                    if not inner[1]:
                        return best
    return best


def attention_core(cls: SiblingClass, depth: int = 3) -> str | None:
    """`nn.MultiheadAttention` (or another torch attention module) when the class builds one."""
    module = read_module(cls.path)
    for current in class_chain(cls):
        for qualified in current.calls:
            last = qualified.rsplit(".", 1)[-1]
            if qualified.startswith("torch.") and last in ATTENTION_MODULES:
                return f"nn.{last}" if last[0].isupper() else f"F.{last}"
            if depth and _same_module_class(module, qualified, current):
                inner = attention_core(module.classes[last], depth - 1)
                if inner:
                    return inner
    return None


def _same_module_class(module: SiblingModule | None, qualified: str, current: SiblingClass) -> bool:
    """`Encoder(...)` inside a class of the same sibling module (not the class itself)."""
    return module is not None and "." not in qualified and qualified in module.classes and qualified != current.name


def is_optimizer(cls: SiblingClass) -> bool:
    """`class SharedAdam(torch.optim.Adam)` / `(optim.Optimizer)` in a sibling module."""
    from gradlint.analysis.training import is_optimizer_class

    return any(is_optimizer_class(b) or b in ("torch.optim.Optimizer", "torch.optim.optimizer.Optimizer")
               for c in class_chain(cls) for b in c.bases)
