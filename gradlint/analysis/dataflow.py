"""Follow data from where it enters a script to where it enters a model (the GL4xx rules).

Sources: environment observations and rewards (`env.reset()`, `env.step()`, vector and
multi-agent envs), arrays loaded from disk (`np.load`, `pd.read_csv`), and Atari-style uint8
frames. The value of every name is a set of `Taint`s; conversions (`torch.as_tensor`,
`.float()`, stacking, indexing) keep them, normalizers (`(x - mean) / std`, `/ 255`, running
mean/std helpers, scalers, `np.clip` for rewards) mark them normalized, and anything unknown
drops them, so the rules stay silent rather than guess. Replay buffers are followed from
`buffer.add(obs, a, r, ...)` to `... = buffer.sample(n)` by position.

The analysis reads the whole file's `ast`, names through the symbol layer. It is per function
(flow-insensitive inside one) and runs a second pass over the file only when the first read
something before the code that sets it had run (see `PassState`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from gradlint.analysis.envs import EnvScale, registered_scale
from gradlint.analysis.project import (
    IMAGE_MARKERS,
    OBS_NORMALIZERS,
    REWARD_NORMALIZERS,
    FunctionSummary,
    ProjectClasses,
    imported_summary,
    model_normalizes_input,
    normalizes_text,
    summarize_function_text,
)
from gradlint.analysis.symbols import Symbols
from gradlint.analysis.syntax import (
    FUNCTIONS,
    dotted,
    is_unpacking,
    number,
    parameter_names,
    positional,
    receiver_text,
    target_names,
)
from gradlint.analysis.training import name_tokens

CONVERSIONS = {
    "tensor", "as_tensor", "from_numpy", "Tensor", "FloatTensor", "DoubleTensor", "array", "asarray",
    "float32", "float", "double", "half", "to", "cuda", "cpu", "view", "reshape", "unsqueeze",
    "squeeze", "flatten", "stack", "cat", "concatenate", "vstack", "hstack", "list", "tuple", "copy",
    "clone", "detach", "numpy", "astype", "permute", "transpose", "expand_dims", "atleast_2d",
    "moveaxis", "values", "to_numpy", "contiguous", "type", "ascontiguousarray", "get",
    "DataLoader", "TensorDataset", "iter", "next", "zip", "enumerate", "Variable",
}
FRAME_READS = {"read_csv", "read_parquet", "read_excel", "read_json", "read_table", "load", "loadtxt", "genfromtxt", "read_feather"}
GAMMA_TOKENS = {"gamma", "discount", "lam", "lmbda", "gae"}
# torch.nn modules that scripts build inline and call on data (`q = nn.Sequential(...)`)
INLINE_MODELS = {"Sequential", "Linear", "Conv1d", "Conv2d", "Conv3d", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell",
                 "RNNCell", "MultiheadAttention", "TransformerEncoder", "Transformer"}
NORM_LAYERS = {"LayerNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "InstanceNorm1d",
               "InstanceNorm2d", "RMSNorm", "LazyBatchNorm1d"}
BUFFER_TOKENS = {"buffer", "memory", "rb", "replay"}
_MODEL_CHAIN = ("to", "cuda", "cpu", "float", "train", "eval")
_EMPTY: frozenset = frozenset()


@dataclass(frozen=True)
class Taint:
    kind: str  # obs | reward | features | image
    source: str  # how it entered: "env.step(action)"
    line: int
    normalized: bool = False
    env: EnvScale | None = None  # the registered env the data comes from, when the script names one

    def normalize(self) -> "Taint":
        return Taint(self.kind, self.source, self.line, True, self.env)


@dataclass(eq=False)
class ModelInput:
    call: ast.Call  # where the data leaves the script's code for the model: the model call, or the
    #                 outermost call of the file's functions/methods that carries it there
    model: str
    taints: frozenset
    cls: str | None = None
    via: ast.Call | None = None  # the model call itself, when `call` is an outer one


@dataclass(eq=False)
class RewardTarget:
    node: ast.expr  # `r + gamma * v` (for `ret += ...`, the whole statement)
    taints: frozenset
    standardized: bool = False  # the return it computes is standardised or scaled later


@dataclass
class EnvFacts:
    normalizes_obs: bool = False
    normalizes_reward: bool = False
    image: bool = False
    known: bool = True  # built from gym/gymnasium or a factory we can read
    registered: EnvScale | None = None  # `gym.make("Pendulum-v1")`: its documented observation scale


_ABSENT = object()


class PassState(dict):
    """A dict of what the data flow learnt, that notes the keys read in a pass before that pass
    wrote them (those reads saw the previous pass's value, or nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self._written: set = set()
        self._early: set = set()
        self._before: dict = {}

    def start_pass(self) -> None:
        self._written, self._early, self._before = set(), set(), dict(self)

    def so_far(self, key):
        """The value this pass has written for `key` (None before it does): what a statement
        that adds to an entry builds on, so that it adds the same in every pass."""
        return dict.get(self, key) if key in self._written else None

    def read_early_and_changed(self) -> bool:
        """Whether a key read before this pass wrote it holds something else now."""
        for key in self._early:
            before, now = dict.get(self._before, key, _ABSENT), dict.get(self, key, _ABSENT)
            if before is not now and before != now:
                return True
        return False

    def _note(self, key) -> None:
        if key not in self._written:
            self._early.add(key)

    def get(self, key, default=None):
        self._note(key)
        return dict.get(self, key, default)

    def __getitem__(self, key):
        self._note(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key) -> bool:
        self._note(key)
        return dict.__contains__(self, key)

    def __setitem__(self, key, value) -> None:
        self._written.add(key)
        dict.__setitem__(self, key, value)


class DataFlow:
    """The GL4xx facts of one file: model calls reached by raw data, raw rewards in targets."""

    def __init__(self, symbols: Symbols, models, source_path: str, source_text: str, root: str,
                 text_of: Callable[[ast.AST], str], spend: Callable[[int], None] = lambda steps: None) -> None:
        self.symbols = symbols
        self.models = models
        self.path = source_path
        self.text = source_text
        self.root = root
        self.text_of = text_of
        self.spend = spend
        self.model_inputs: list[ModelInput] = []
        self.reward_targets: list[RewardTarget] = []
        # What one statement learns for later ones; each notes the keys read before this pass
        # wrote them, which decides whether a second pass is needed (below).
        self.buffers: PassState = PassState()
        self.envs: PassState = PassState()
        self.model_classes: PassState = PassState()  # binding name -> class name
        self.instances: PassState = PassState()  # binding name -> a class of the file it holds
        self._inline_models: dict[str, ast.Call] = {}  # `net = nn.Sequential(...)`: name -> the call
        self.normalizes_advantages = advantage_normalization(source_text)
        # memo tables of what depends on the file alone, the same in every pass: not tracked
        self._function_summaries: dict[str, FunctionSummary | None] = {}
        self._normalizing_classes: dict[str, bool | None] = {}  # class of the file -> normalises its input
        self._project_classes = ProjectClasses()
        self._entered: set[str] = set()
        self._seen_entries: set[tuple] = set()  # (function, argument taints) analysed this pass
        self._current: str | None = None  # the function (`name` or `Class.method`) being read
        self._class: str | None = None  # the class whose method is being read
        self._entries: list[tuple[ast.Call, frozenset]] = []  # calls entered, outermost first, with their data
        self._positional: PassState = PassState()
        self._returned: PassState = PassState()  # taints a function of the file returns
        self._returned_positions: PassState = PassState()
        self._collect_imports()
        states = (self.buffers, self.envs, self.model_classes, self.instances, self._positional, self._returned,
                  self._returned_positions)
        # A second pass only when the first read something before the code that sets it had run
        # and that something has changed since: an env or a model built in main() and used in
        # an earlier function, a buffer filled in one function and sampled in another, what a
        # function defined later returns. A read that saw what the second pass would see too
        # cannot change its outcome, so most scripts, written in order, need one pass.
        for _ in range(2):
            for state in states:
                state.start_pass()
            self.model_inputs, self.reward_targets = [], []
            self._seen_entries = set()
            self._block(symbols.tree.body, {})
            if not any(state.read_early_and_changed() for state in states):
                break

    # definitions --------------------------------------------------------------------------

    def _collect_imports(self) -> None:
        """Functions and model classes the file imports from its own project's modules, also
        through `from networks import *` (the module's top-level classes and functions)."""
        imported = dict(self.symbols.imported_names())
        for module in self.symbols.imports.star_modules:
            found = imported_summary(self.path, f"{module}.*", self.root)
            if found is not None:
                for name in [*found[0].class_names, *found[0].functions]:
                    imported.setdefault(name, f"{module}.{name}")
        for name, target in imported.items():
            if target.split(".")[0] in ("torch", "numpy", "np", "gym", "gymnasium", "pandas"):
                continue
            found = imported_summary(self.path, target, self.root)
            if found is None:
                continue
            summary, attr = found
            if attr in summary.functions:
                self._function_summaries[name] = summary.functions[attr]
            if attr in summary.class_names:
                self._project_classes.add(name, summary, attr)

    def function_summary(self, name: str) -> FunctionSummary | None:
        if name in self._function_summaries:
            return self._function_summaries[name]
        node = self.symbols.functions.get(name)
        summary = summarize_function_text(self.text_of(node)) if node is not None else None
        self._function_summaries[name] = summary
        return summary

    # statements ---------------------------------------------------------------------------

    def _block(self, body: list[ast.stmt], env: dict[str, frozenset]) -> None:
        for statement in body:
            self._statement(statement, env)

    def _statement(self, statement: ast.stmt, env) -> None:
        self.spend(1)
        kind = type(statement)
        if kind is ast.Assign:
            for target in statement.targets:
                self._assign(target, statement.value, env)
        elif kind is ast.AnnAssign:
            if statement.value is not None:
                self._assign(statement.target, statement.value, env)
        elif kind is ast.AugAssign:
            # `ret += gamma * v` is read as `ret + gamma * v`, placed on the whole statement
            value = ast.copy_location(ast.BinOp(left=statement.target, op=statement.op, right=statement.value), statement)
            self._assign(statement.target, value, env)
        elif kind is ast.Expr or kind is ast.Return:
            if statement.value is not None:
                self._value_statement(statement, env)
        elif kind in FUNCTIONS:
            self._run_function(statement, {}, self._class)
        elif kind is ast.ClassDef:
            for member in statement.body:
                if type(member) in FUNCTIONS:
                    self._run_function(member, {}, statement.name)
        elif kind is ast.For or kind is ast.AsyncFor:
            self._for(statement, env)
        elif kind is ast.If or kind is ast.While:
            self._taint(statement.test, env)
            self._block(statement.body, env)
            self._block(statement.orelse, env)
        elif kind is ast.With or kind is ast.AsyncWith:
            for item in statement.items:
                self._taint(item.context_expr, env)
            self._block(statement.body, env)
        elif kind is ast.Try or kind.__name__ == "TryStar":
            self._block(statement.body, env)
            for handler in statement.handlers:
                self._block(handler.body, env)
            self._block(statement.orelse, env)
            self._block(statement.finalbody, env)
        elif kind is ast.Match:
            self._taint(statement.subject, env)
            for case in statement.cases:
                self._block(case.body, env)

    def _run_function(self, function, env: dict[str, frozenset], cls: str | None) -> None:
        """A function's body with `env` for its parameters; a method knows its class (for
        `self.method(...)`), and what it returns is kept under `Class.method`."""
        saved = self._current, self._class
        self._current = f"{cls}.{function.name}" if cls else function.name
        self._class = cls
        try:
            self._block(function.body, env)
        finally:
            self._current, self._class = saved

    def _for(self, statement: ast.For | ast.AsyncFor, env) -> None:
        taints = self._taint(statement.iter, env)
        names = target_names(statement.target)
        positions = self._positional.get(receiver_text(statement.iter) or "")
        if positions and is_unpacking(statement.target) and len(names) == len(positions):
            for name, position in zip(names, positions):  # `for xb, yb in loader:`
                env[name] = env.get(name, _EMPTY) | position
        else:
            for name in names:
                env[name] = env.get(name, _EMPTY) | taints
        self._block(statement.body, env)
        self._block(statement.orelse, env)

    def _value_statement(self, statement: ast.Expr | ast.Return, env) -> None:
        value = statement.value
        taints = self._taint(value, env)
        if type(statement) is ast.Return and self._current and taints:
            self._returned[self._current] = (self._returned.so_far(self._current) or _EMPTY) | taints
            if type(value) is ast.Tuple:  # `return X_train, y_train`: by position
                self._returned_positions[self._current] = [self._taint(e, env) for e in value.elts]
        if type(value) is ast.Call and type(value.func) is ast.Attribute and \
                value.func.attr in ("append", "extend", "insert") and value.args:
            key = receiver_text(value.func.value)  # `rewards.append(reward)`
            if key and not set(name_tokens(key.rsplit(".", 1)[-1])) & BUFFER_TOKENS:
                env[key] = env.get(key, _EMPTY) | self._taint(value.args[-1], env)

    def _assign(self, target: ast.expr, value: ast.expr, env) -> None:
        self._note_env(target, value)
        self._note_model(target, value)
        if type(value) in (ast.Name, ast.Attribute) and receiver_text(target):
            self._alias_env(receiver_text(target), value)  # `self.env = env`
        results = self._env_results(value, env)
        if results is not None:
            self._env_source(target, results, env)
            return
        if type(value) is ast.Call and type(value.func) is ast.Attribute and value.func.attr == "sample":
            owner = receiver_text(value.func.value) or ""
            if self._buffer_key(owner) in self.buffers:
                slots = self.buffers[self._buffer_key(owner)]
                names = target_names(target) if is_unpacking(target) else []
                if names and len(names) == len(slots):
                    for name, taint in zip(names, slots):
                        env[name] = taint
                    return
                key = receiver_text(target)
                if key:
                    env[key] = _EMPTY.union(*slots) if slots else _EMPTY
                return
        if is_unpacking(target) and type(value) is ast.Call and type(value.func) is ast.Name:
            returned = self._returned_positions.get(value.func.id)
            names = target_names(target)
            if returned and len(returned) == len(names):
                self._taint(value, env)
                for name, taint in zip(names, returned):
                    env[name] = taint
                return
        taints = self._taint(value, env)
        positions = self._positions_of(value, env)
        if positions is not None and receiver_text(target):
            self._positional[receiver_text(target)] = positions
        if is_unpacking(target):
            for name in target_names(target):
                env[name] = taints
            return
        if type(target) is ast.Subscript:  # rewards[step] = torch.tensor(reward)
            key = receiver_text(target.value)
            if key:
                env[key] = env.get(key, _EMPTY) | taints
            return
        key = receiver_text(target)
        if key:
            env[key] = taints

    def _env_source(self, target: ast.expr, results: tuple[frozenset, ...], env) -> None:
        """Bind the targets of `obs = env.reset()` / `obs, reward, ... = env.step(a)`."""
        names = target_names(target) if is_unpacking(target) else []
        if not results:  # an env built by code we cannot read
            for name in names or [receiver_text(target) or ""]:
                env[name] = _EMPTY
            return
        if len(results) == 1:  # reset
            if names:
                env[names[0]] = results[0]
                for name in names[1:]:
                    env[name] = _EMPTY
            else:
                key = receiver_text(target)
                if key:
                    env[key] = results[0]
            return
        if len(names) >= 4:
            env[names[0]], env[names[1]] = results
            for name in names[2:]:
                env[name] = _EMPTY
        elif names:
            for name in names:
                env[name] = _EMPTY

    # environments and models --------------------------------------------------------------

    def _is_env(self, text: str) -> bool:
        last = text.rsplit(".", 1)[-1]
        return bool({"env", "envs", "environment", "venv"} & set(name_tokens(last))) or last in self.envs

    def _env_facts(self, owner: str) -> EnvFacts:
        key = owner.rsplit(".", 1)[-1]
        return self.envs.get(key, EnvFacts(known=False))

    def _note_env(self, target: ast.expr, value: ast.expr) -> None:
        """`env = gym.make(...)`, `env = NormalizeObservation(env)`, `envs = SyncVectorEnv([make_env(...)])`."""
        key = (receiver_text(target) or "").rsplit(".", 1)[-1]
        unwrapped = type(value) is ast.Attribute and value.attr == "unwrapped" and type(value.value) is ast.Call
        if unwrapped:  # `gym.make(ENV_NAME).unwrapped`: the base env, without any wrapper's normalization
            value = value.value  # type: ignore[attr-defined]
        if not key or type(value) is not ast.Call:
            return
        facts = self.envs.so_far(key)
        made = False
        for call, _ in self.symbols.calls(value):
            name = dotted(call.func) or ""
            qualified = self.symbols.resolve(call.func) or name
            last = qualified.rsplit(".", 1)[-1]
            if last == "make" and qualified.split(".")[0] in ("gym", "gymnasium"):
                facts = facts or EnvFacts()
                made = True
                env_id = self._string_value(positional(call)[0]) if positional(call) else None
                if env_id is not None:
                    facts.registered = registered_scale(env_id)
                    if any(m in env_id for m in IMAGE_MARKERS) or (
                            facts.registered is not None and facts.registered.scale == "image"):
                        facts.image = True
            elif last in ("SyncVectorEnv", "AsyncVectorEnv", "make_vec", "DummyVecEnv", "SubprocVecEnv"):
                facts = facts or EnvFacts()
                made = True
            elif any(marker in last for marker in OBS_NORMALIZERS + REWARD_NORMALIZERS + IMAGE_MARKERS):
                if facts is None and not made:
                    continue
                facts = facts or EnvFacts()
                facts.normalizes_obs |= any(m in last for m in OBS_NORMALIZERS) and not _disabled(call, "norm_obs")
                facts.normalizes_reward |= any(m in last for m in REWARD_NORMALIZERS) and not _disabled(call, "norm_reward")
                facts.image |= any(m in last for m in IMAGE_MARKERS)
            else:
                summary = self.function_summary(name.rsplit(".", 1)[-1]) if "." not in name else None
                if summary is None and name in self._function_summaries:
                    summary = self._function_summaries[name]
                if summary is not None and ("env" in name_tokens(name) or summary.normalizes_obs or summary.image
                                            or summary.normalizes_reward or made):
                    facts = facts or EnvFacts()
                    made = True
                    facts.normalizes_obs |= summary.normalizes_obs
                    facts.normalizes_reward |= summary.normalizes_reward
                    facts.image |= summary.image
                elif last in self.symbols.classes and "env" in name_tokens(last) and not made:
                    text = self.text_of(self.symbols.classes[last].node)  # an env class of this file
                    summary = summarize_function_text(text)
                    facts = facts or EnvFacts()
                    made = True
                    if _BIT_CODES.search(text):  # bit-flipping and one-hot toy envs: already unit scale
                        facts.registered = EnvScale(last, "unit", "bits or one-hot codes", "this file")
                    facts.normalizes_obs |= summary.normalizes_obs or summary.normalizes_value
                    facts.normalizes_reward |= summary.normalizes_reward
                    facts.image |= summary.image
                elif "env" in name_tokens(last) and not made and facts is None:
                    facts = EnvFacts(known=False)  # an env from code we cannot read
        if facts is not None and unwrapped:
            facts = replace(facts, normalizes_obs=False, normalizes_reward=False)
        if facts is not None:
            self.envs[key] = facts

    def _string_value(self, node: ast.expr) -> str | None:
        """A string literal, or a name bound to one: a module constant (`ENV_NAME = "Pendulum-v1"`),
        the one string assigned to that name in the enclosing function, or the default of a
        command-line option (`args.env_id`, from argparse or an options dataclass)."""
        if type(node) is ast.Constant:
            return node.value if isinstance(node.value, str) else None
        if type(node) is ast.Attribute:  # `args.env_id`: the option's default, as the script runs as written
            value = self.symbols.option_defaults.get(node.attr)
            return value if isinstance(value, str) else None
        if type(node) is not ast.Name:
            return None
        scope = self.symbols.scope_of(node)
        if scope is not None:
            values = {self._string_value(statement.value) for statement in ast.walk(scope)
                      if type(statement) is ast.Assign and statement.value is not node
                      and any(type(t) is ast.Name and t.id == node.id for t in statement.targets)}
            if len(values) == 1:
                return values.pop()
            if values:
                return None
        value = self.symbols.constants.get(node.id)
        return value if isinstance(value, str) else None

    def _note_model(self, target: ast.expr, value: ast.expr) -> None:
        if is_unpacking(target) and type(value) in (ast.Tuple, ast.List):
            for element, item in zip(target.elts, value.elts):  # `mu, mu_target = MuNet(), MuNet()`
                self._note_model(element, item)
            return
        key = receiver_text(target)
        if type(value) is ast.DictComp:  # `actors = {a: Actor() for a in agents}`
            value = value.value
        elif type(value) is ast.ListComp:
            value = value.elt
        elif type(value) in (ast.List, ast.Tuple) and value.elts:
            value = value.elts[0]
        if not key or type(value) is not ast.Call:
            return
        call = value
        while type(call.func) is ast.Attribute and type(call.func.value) is ast.Call and call.func.attr in _MODEL_CHAIN:
            call = call.func.value
        name = (dotted(call.func) or "").rsplit(".", 1)[-1]
        if name in self.models.module_classes or name in self._project_classes:
            self.model_classes[key] = name
            self.model_classes[key.rsplit(".", 1)[-1]] = name
        elif self.symbols.torch_name(call.func) in INLINE_MODELS:  # `q = nn.Sequential(...)` called on data
            self.model_classes[key] = self.model_classes[key.rsplit(".", 1)[-1]] = f"nn.{name}"
            self._inline_models[key] = self._inline_models[key.rsplit(".", 1)[-1]] = call
        elif name in self.symbols.classes:  # an agent or runner of the file: its methods are followed
            self.instances[key] = self.instances[key.rsplit(".", 1)[-1]] = name

    def _model_of(self, call: ast.Call) -> tuple[str, str] | None:
        """(display name, class) when `call` runs a model whose class we can read."""
        func = call.func
        candidates = [receiver_text(func) or ""]
        if type(func) is ast.Attribute:
            candidates.append(receiver_text(func.value) or "")
        for candidate in candidates:
            if not candidate:
                continue
            cls = self.model_classes.get(candidate) or self.model_classes.get(candidate.rsplit(".", 1)[-1])
            if cls:
                return candidate, cls
        return None

    def _model_normalizes(self, cls: str, model: str) -> bool | None:
        if cls.startswith("nn."):
            return self._inline_normalizes(self._inline_models.get(model) or self._inline_models.get(model.rsplit(".", 1)[-1]))
        if cls in self._project_classes:
            return self._project_classes[cls].normalizes_input
        if cls not in self._normalizing_classes:  # the same answer for every call of the class's models
            self._normalizing_classes[cls] = next((model_normalizes_input(model, self.text) for model in self.models.models
                                                   if model.kind == "module" and model.name == cls), None)
        return self._normalizing_classes[cls]

    def _inline_normalizes(self, call: ast.Call | None) -> bool:
        """An inline `nn.Sequential(first, ...)` whose first module normalises or scales its input:
        a norm layer, a lambda or small module of the file that divides or standardises."""
        if call is None or self.symbols.torch_name(call.func) != "Sequential" or not call.args:
            return False
        first = call.args[0]
        if type(first) is ast.Call and self.symbols.torch_name(first.func) in NORM_LAYERS:
            return True
        text = self.text_of(first)
        if type(first) is ast.Call and type(first.func) is ast.Name and first.func.id in self.symbols.classes:
            text += self.text_of(self.symbols.classes[first.func.id].node)
        return normalizes_text(text)

    def _enter(self, function: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, env,
               cls: str | None = None) -> None:
        """Analyse a function (or a method of class `cls`, bound: `self` takes no argument) of
        the file with its parameters bound to the call's data, once per pass for each distinct
        binding: a bounded number of entries, however calls nest."""
        params = parameter_names(function)
        if cls is not None and params and params[0] in ("self", "cls"):
            params = params[1:]
        local: dict[str, frozenset] = {}
        for name, arg in zip(params, positional(call)):
            local[name] = self._taint(arg, env)
            self._alias_env(name, arg)
        for item in call.keywords:
            if item.arg is not None:
                local[item.arg] = self._taint(item.value, env)
                self._alias_env(item.arg, item.value)
        key = (id(function), frozenset(local.items()))
        if key in self._seen_entries:
            return
        self._seen_entries.add(key)
        self.spend(10)
        name = f"{cls}.{function.name}" if cls else function.name
        self._entered.add(name)
        self._entries.append((call, _EMPTY.union(*local.values())))
        try:
            self._run_function(function, local, cls)
        finally:
            self._entries.pop()
            self._entered.discard(name)

    def _alias_env(self, name: str, value: ast.expr) -> None:
        """A parameter or attribute that receives an env (`Agent(env)`, `self.env = env`) is
        that env: the same facts under its new name."""
        source = (receiver_text(value) or "").rsplit(".", 1)[-1]
        if source and source != name and source in self.envs and self._is_env(name):
            self.envs[name.rsplit(".", 1)[-1]] = self.envs[source]

    def _method_of(self, call: ast.Call) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, str] | None:
        """(method, class) that `self.m(...)` (in a method of a class of the file) or
        `x.m(...)`/`C(...)` (an instance of, or a class of, the file) runs; None otherwise."""
        func = call.func
        if type(func) is ast.Name and func.id in self.symbols.classes:
            method = self.symbols.method(func.id, "__init__")
            return (method, func.id) if method is not None else None
        if type(func) is not ast.Attribute:
            return None
        owner = receiver_text(func.value) or ""
        cls = self._class if owner == "self" else self.instances.get(owner)
        if cls is None:
            return None
        method = self.symbols.method(cls, func.attr)
        return (method, cls) if method is not None else None

    def _positions_of(self, value: ast.expr, env) -> list[frozenset] | None:
        """`TensorDataset(X, y)` / `DataLoader(dataset)`: what each position of a batch holds."""
        if type(value) is not ast.Call:
            return None
        name = (dotted(value.func) or "").rsplit(".", 1)[-1]
        args = positional(value)
        if name == "TensorDataset" and args:
            return [self._taint(arg, env) for arg in args]
        if name == "DataLoader" and args:
            inner = self._positions_of(args[0], env)
            return inner if inner is not None else self._positional.get(receiver_text(args[0]) or "")
        return None

    # buffers ------------------------------------------------------------------------------

    @staticmethod
    def _buffer_key(owner: str) -> str:
        return owner.rsplit(".", 1)[-1]

    def _note_buffer(self, call: ast.Call, env) -> None:
        func = call.func
        if type(func) is not ast.Attribute or func.attr not in ("add", "push", "append", "store", "insert", "store_transition", "put"):
            return
        owner = receiver_text(func.value) or ""
        tokens = set(name_tokens(owner.rsplit(".", 1)[-1]))
        if not tokens & (BUFFER_TOKENS | {"storage", "mem"}):
            return
        args = positional(call)
        if len(args) == 1 and type(args[0]) in (ast.Tuple, ast.List):
            args = args[0].elts
        if len(args) < 2:
            return
        slots = [self._taint(arg, env) for arg in args]
        key = self._buffer_key(owner)
        old = self.buffers.so_far(key)
        if old and len(old) == len(slots):
            slots = [a | b for a, b in zip(old, slots)]
        self.buffers[key] = slots

    # expressions --------------------------------------------------------------------------

    def _taint(self, node: ast.AST | None, env: dict[str, frozenset]) -> frozenset:
        if node is None:
            return _EMPTY
        kind = type(node)
        if kind is ast.Name:
            return env.get(node.id, _EMPTY)
        if kind is ast.Attribute:
            key = receiver_text(node)
            if key and key in env:
                return env[key]
            if node.attr in ("shape", "dtype", "ndim", "size", "device"):
                return _EMPTY
            return self._taint(node.value, env)
        if kind is ast.Subscript:
            results = self._env_results(node.value, env)
            if results is not None:  # `env.reset()[0]`, `env.step(action)[1]`
                index = _literal_index(node)
                return results[index] if index is not None and index < len(results) else _EMPTY
            return self._taint(node.value, env)
        if kind in (ast.Tuple, ast.List, ast.Set):
            return _EMPTY.union(*(self._taint(e, env) for e in node.elts)) if node.elts else _EMPTY
        if kind is ast.Starred:
            return self._taint(node.value, env)
        if kind is ast.IfExp:
            return self._taint(node.body, env) | self._taint(node.orelse, env)
        if kind in (ast.ListComp, ast.GeneratorExp, ast.SetComp):
            generator = node.generators[0]
            inner = self._taint(generator.iter, env)
            return self._taint(node.elt, {**env, **{n: inner for n in target_names(generator.target)}})
        if kind is ast.UnaryOp:
            return self._taint(node.operand, env)
        if kind is ast.BinOp:
            return self._binary(node, env)
        if kind is ast.Call:
            return self._call(node, env)
        if kind is ast.Dict:
            return _EMPTY.union(*(self._taint(v, env) for v in node.values)) if node.values else _EMPTY
        return _EMPTY

    def _binary(self, node: ast.BinOp, env) -> frozenset:
        left = self._taint(node.left, env)
        right = self._taint(node.right, env)
        op = type(node.op)
        if op is ast.Div:
            if type(node.left) is ast.BinOp and type(node.left.op) is ast.Sub:
                return self._normalized(left)  # (x - mean) / std
            if _is_big_number(node.right) or _scale_name(node.right):
                return self._normalized(left)  # x / 255, x / obs_scale
            return left | right
        if op is ast.Mult:
            if _scale_name(node.right) or _small_number(node.right):
                return self._normalized(left)
            if _scale_name(node.left) or _small_number(node.left):
                return self._normalized(right)
            return left | right
        if op is ast.Add and (left or right):
            return left | right | self._reward_target(node, left, right)
        return left | right

    def _reward_target(self, node: ast.BinOp, left: frozenset, right: frozenset) -> frozenset:
        """`r + gamma * next_value`: rewards entering a return or TD target. The value it computes
        carries a `target` taint, so that standardising the returns later (`(returns -
        returns.mean()) / returns.std()`, before any loss) is seen and clears the finding."""
        for rewards, other in ((left, node.right), (right, node.left)):
            raw = {t for t in rewards if t.kind == "reward" and not t.normalized}
            if raw and _mentions(other, GAMMA_TOKENS):
                target = next((r for r in self.reward_targets if r.node is node), None)
                if target is None:
                    target = RewardTarget(node, frozenset(raw))
                    self.reward_targets.append(target)
                return frozenset({Taint("target", f"target@{node.lineno}:{node.col_offset}", node.lineno)})
        return _EMPTY

    def _normalized(self, taints: frozenset) -> frozenset:
        """The same data, standardised or scaled; a return computed from raw rewards is noted."""
        for taint in taints:
            if taint.kind == "target" and not taint.normalized:
                for target in self.reward_targets:
                    if f"target@{target.node.lineno}:{target.node.col_offset}" == taint.source:
                        target.standardized = True
        return frozenset(t.normalize() for t in taints)

    def _env_results(self, node: ast.AST, env) -> tuple[frozenset, ...] | None:
        """The taints of what `env.reset(...)` returns, (observations,), or `env.step(...)`,
        (observations, reward); () for an env built by code we cannot read; None when `node`
        is no env call. The arguments are followed too: `env.step(policy(obs))` runs the model."""
        if type(node) is not ast.Call or type(node.func) is not ast.Attribute:
            return None
        method = node.func.attr
        owner = receiver_text(node.func.value) or ""
        if method not in ("reset", "step") or not self._is_env(owner):
            return None
        for argument in node.args:
            self._taint(argument, env)
        for item in node.keywords:
            self._taint(item.value, env)
        facts = self._env_facts(owner)
        if not facts.known:
            return ()
        source = f"{owner}.{method}(...)"
        obs = frozenset({Taint("image" if facts.image else "obs", source, node.lineno, facts.normalizes_obs,
                               facts.registered)})
        if method == "reset":
            return (obs,)
        return (obs, frozenset({Taint("reward", source, node.lineno, facts.normalizes_reward)}))

    def _call(self, call: ast.Call, env) -> frozenset:
        results = self._env_results(call, env)
        if results is not None:  # `torch.Tensor(envs.reset())`: the observations, whatever wraps them
            return results[0] if len(results) == 1 else _EMPTY
        func = call.func
        arg_taints = [self._taint(a, env) for a in call.args] + [self._taint(k.value, env) for k in call.keywords]
        receiver = func.value if type(func) is ast.Attribute else None
        receiver_taint = self._taint(receiver, env) if receiver is not None else _EMPTY
        name = func.attr if type(func) is ast.Attribute else (dotted(func) or "")
        qualified = self.symbols.qualified(func)
        last = name.rsplit(".", 1)[-1]
        everything = _EMPTY.union(receiver_taint, *arg_taints)
        self._note_buffer(call, env)
        model = self._model_of(call)
        if model is not None:
            dirty = frozenset(t for t in everything if t.kind in ("obs", "features", "image") and not t.normalized)
            if dirty and not self._model_normalizes(model[1], model[0]):
                site = next((entry for entry, data in self._entries if data & dirty), call)
                self.model_inputs.append(ModelInput(site, model[0], dirty, model[1], call if site is not call else None))
            return _EMPTY
        method = self._method_of(call)
        if method is not None:  # `agent.act(obs)`, `self.select_action(state)`, `Agent(env)`
            function, cls = method
            name = f"{cls}.{function.name}"
            if name not in self._entered and (everything or function.name == "__init__"):
                self._enter(function, call, env, cls)
            return self._returned.get(name, _EMPTY) if everything else _EMPTY
        if last in FRAME_READS and qualified.split(".")[0] in ("pandas", "numpy", "pd", "np"):
            return frozenset({Taint("features", f"{qualified}(...)", call.lineno)})
        tokens = set(name_tokens(last))
        owner_tokens = set(name_tokens((receiver_text(receiver) or "").rsplit(".", 1)[-1])) if receiver is not None else set()
        if tokens & {"normalize", "normalizer", "normalise", "standardize", "whiten", "rms", "scale", "scaler", "norm"} or (
            last in ("transform", "fit_transform") and owner_tokens & {"scaler", "sc", "ss", "normalizer", "norm", "scale", "rms", "transformer"}
        ) or (owner_tokens & {"normalizer", "rms", "obs", "norm"} and tokens & {"normalize", "call"}):
            return self._normalized(everything)
        if last in ("clip", "clamp", "sign", "tanh"):
            return frozenset(t.normalize() if t.kind == "reward" else t for t in everything)
        if last in CONVERSIONS:
            return everything
        summary = self.function_summary(last) if receiver is None else None
        function = self.symbols.functions.get(last)
        if summary is not None and function is not None and everything and last not in self._entered:
            self._enter(function, call, env)  # `select_action(state)`
        if summary is not None:  # a function of this file: normalizes, or passes data through
            result = everything | self._returned.get(last, _EMPTY)
            return self._normalized(result) if summary.normalizes_value else result
        if receiver is not None and receiver_taint and last not in ("item", "mean", "sum", "max", "min", "std", "var"):
            return receiver_taint  # a method of the data itself: obs.reshape(...)
        return _EMPTY


def _literal_index(node: ast.Subscript) -> int | None:
    index = node.slice
    if type(index) is ast.Constant and type(index.value) is int:
        return index.value
    return None


def _disabled(call: ast.Call, keyword: str) -> bool:
    return any(item.arg == keyword and type(item.value) is ast.Constant and item.value.value is False
               for item in call.keywords)




def _is_big_number(node: ast.AST) -> bool:
    value = number(node)
    return value is not None and value >= 100


def _small_number(node: ast.AST) -> bool:
    value = number(node)
    return value is not None and 0 < abs(value) < 1


def _scale_name(node: ast.AST) -> bool:
    text = dotted(node.func) if type(node) is ast.Call else receiver_text(node)
    tokens = set(name_tokens(text.rsplit(".", 1)[-1])) if text else set()
    return bool(tokens & {"scale", "std", "norm", "sigma", "max", "range", "coef", "factor", "sqrt"})


def _mentions(node: ast.AST, tokens: set[str]) -> bool:
    for current in ast.walk(node):
        kind = type(current)
        if kind is ast.Name and set(name_tokens(current.id)) & tokens:
            return True
        if kind is ast.Attribute and set(name_tokens(current.attr)) & tokens:
            return True
    return False


# an env class whose states are bits or one-hot codes (`np.random.randint(2, size=n)`, `np.eye(n)[i]`)
_BIT_CODES = re.compile(r"randint\(\s*(?:0\s*,\s*)?2\s*[,)]|np\.eye\(|one_hot|\.astype\(\s*(?:np\.)?bool")

_ADVANTAGE_NORM = re.compile(
    r"\(\s*([\w.\[\]]+)\s*-\s*\1\.mean\([^)]*\)\s*\)\s*/\s*\(?\s*\1\.std\(|ValueNorm|PopArt|normalize_advantage"
)


def advantage_normalization(text: str) -> bool:
    """`(adv - adv.mean()) / (adv.std() + 1e-8)` anywhere in the file, or ValueNorm/PopArt."""
    return _ADVANTAGE_NORM.search(text) is not None


__all__ = ["DataFlow", "EnvFacts", "ModelInput", "RewardTarget", "Taint"]
