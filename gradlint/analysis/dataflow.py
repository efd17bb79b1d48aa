"""Follow data from where it enters a script to where it enters a model (the GL4xx rules).

Sources: environment observations and rewards (`env.reset()`, `env.step()`, vector and
multi-agent envs), arrays loaded from disk (`np.load`, `pd.read_csv`), and Atari-style uint8
frames. The value of every name is a set of `Taint`s; conversions (`torch.as_tensor`,
`.float()`, stacking, indexing) keep them, normalizers (`(x - mean) / std`, `/ 255`, running
mean/std helpers, scalers, `np.clip` for rewards) mark them normalized, and anything unknown
drops them, so the rules stay silent rather than guess. Replay buffers are followed from
`buffer.add(obs, a, r, ...)` to `... = buffer.sample(n)` by position.

The analysis is per function (flow-insensitive inside one), run twice over the file so that a
buffer filled in one function and sampled in another is seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gradlint.lazy import lazy_module

from gradlint.analysis.cst_walk import children, iter_calls, target_names, text_of
from gradlint.analysis.imports import ImportTable, dotted, receiver_text
from gradlint.analysis.models import ModelAnalysis
from gradlint.analysis.project import (
    IMAGE_MARKERS,
    OBS_NORMALIZERS,
    REWARD_NORMALIZERS,
    FunctionSummary,
    ProjectClasses,
    imported_summary,
    model_normalizes_input,
    summarize_function_text,
)
from gradlint.analysis.training import name_tokens
from gradlint.analysis.values import number_literal
from gradlint.prepass import Segment

cst = lazy_module("libcst")

CONVERSIONS = {
    "tensor", "as_tensor", "from_numpy", "Tensor", "FloatTensor", "DoubleTensor", "array", "asarray",
    "float32", "float", "double", "half", "to", "cuda", "cpu", "view", "reshape", "unsqueeze",
    "squeeze", "flatten", "stack", "cat", "concatenate", "vstack", "hstack", "list", "tuple", "copy",
    "clone", "detach", "numpy", "astype", "permute", "transpose", "expand_dims", "atleast_2d",
    "moveaxis", "values", "to_numpy", "contiguous", "type", "ascontiguousarray", "get",
    "DataLoader", "TensorDataset", "iter", "next", "zip", "enumerate", "Variable",
}
FRAME_READS = {"read_csv", "read_parquet", "read_excel", "read_json", "read_table", "load", "loadtxt", "genfromtxt", "read_feather"}
MODEL_TOKENS = {"model", "net", "network", "actor", "critic", "policy", "qnet", "qf", "agent", "pi", "mu", "encoder", "q"}
NOT_MODEL_TOKENS = {"env", "envs", "optimizer", "optim", "opt", "buffer", "memory", "scaler", "scheduler", "writer", "logger", "rb", "replay"}
GAMMA_TOKENS = {"gamma", "discount", "lam", "lmbda", "gae"}


@dataclass(frozen=True)
class Taint:
    kind: str  # obs | reward | features | image
    source: str  # how it entered: "env.step(action)"
    line: int
    normalized: bool = False

    def normalize(self) -> "Taint":
        return Taint(self.kind, self.source, self.line, True)


@dataclass(eq=False)
class ModelInput:
    call: cst.Call
    segment: Segment
    anchor: cst.CSTNode
    model: str
    taints: frozenset
    cls: str | None = None


@dataclass(eq=False)
class RewardTarget:
    node: cst.CSTNode
    segment: Segment
    anchor: cst.CSTNode
    taints: frozenset


@dataclass
class EnvFacts:
    normalizes_obs: bool = False
    normalizes_reward: bool = False
    image: bool = False
    known: bool = True  # built from gym/gymnasium or a factory we can read


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
    def __init__(self, imports: ImportTable, segments: list[Segment], models: ModelAnalysis, source_path: str,
                 source_text: str, root: str, line_of, function_segment=None) -> None:
        self.imports = imports
        self.segments = segments
        self.models = models
        self.path = source_path
        self.text = source_text
        self.root = root
        self.line_of = line_of  # (segment, node, anchor) -> line
        self.function_segment = function_segment  # name -> Segment of a function not parsed yet
        self.model_inputs: list[ModelInput] = []
        self.reward_targets: list[RewardTarget] = []
        # What one statement learns for later ones; each notes the keys read before this pass
        # wrote them, which decides whether a second pass is needed (below).
        self.buffers: PassState = PassState()
        self.envs: PassState = PassState()
        self.model_classes: PassState = PassState()  # binding name -> class name
        self.normalizes_advantages = False
        # memo tables of what depends on the file alone, the same in every pass: not tracked
        self._functions: dict[str, cst.FunctionDef] = {}
        self._function_summaries: dict[str, FunctionSummary | None] = {}
        self._project_classes = ProjectClasses()
        self._entered: set[str] = set()
        self._current: str | None = None
        self._positional: PassState = PassState()
        self._returned: PassState = PassState()  # taints a function of the file returns
        self._returned_positions: PassState = PassState()
        self._function_segments: dict[str, Segment] = {}
        self._collect_definitions()
        states = (self.buffers, self.envs, self.model_classes, self._positional, self._returned,
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
            for segment in segments:
                self.segment = segment
                self._block(segment.module.body, {}, None)
            if not any(state.read_early_and_changed() for state in states):
                break

    # definitions --------------------------------------------------------------------------

    def _collect_definitions(self) -> None:
        self._classes: dict[str, cst.ClassDef] = {}
        for segment in self.segments:
            for statement in segment.module.body:
                if type(statement) is cst.FunctionDef:
                    self._functions[statement.name.value] = statement
                elif type(statement) is cst.ClassDef:
                    self._classes[statement.name.value] = statement
        for name, target in self.imports.names.items():
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
        self.normalizes_advantages = advantage_normalization(self.text)

    def function_summary(self, name: str) -> FunctionSummary | None:
        if name in self._function_summaries:
            return self._function_summaries[name]
        node = self._functions.get(name)
        if node is None and self.function_segment is not None:
            segment = self.function_segment(name)
            if segment is not None and type(segment.module.body[0]) is cst.FunctionDef:
                node = segment.module.body[0]
                self._functions[name] = node
                self._function_segments[name] = segment
        if node is None:
            return None
        summary = summarize_function_text(text_of(node))
        self._function_summaries[name] = summary
        return summary

    # statements ---------------------------------------------------------------------------

    def _block(self, body, env: dict[str, frozenset], cls: str | None) -> None:
        for statement in body:
            self._statement(statement, env, cls)

    def _statement(self, statement, env, cls) -> None:
        if type(statement) is cst.SimpleStatementLine:
            for small in statement.body:
                self._small(small, env, cls)
        elif isinstance(statement, cst.BaseSmallStatement):
            self._small(statement, env, cls)
        elif type(statement) is cst.FunctionDef:
            saved, self._current = self._current, statement.name.value
            try:
                self._block(statement.body.body, {}, cls)
            finally:
                self._current = saved
        elif type(statement) is cst.ClassDef:
            for member in statement.body.body:
                if type(member) is cst.FunctionDef:
                    self._block(member.body.body, {}, statement.name.value)
        elif type(statement) is cst.For:
            taints = self._taint(statement.iter, env, statement)
            names = target_names(statement.target)
            positions = self._positional.get(receiver_text(statement.iter) or "")
            if positions and type(statement.target) in (cst.Tuple, cst.List) and len(names) == len(positions):
                for name, position in zip(names, positions):  # `for xb, yb in loader:`
                    env[name] = env.get(name, frozenset()) | position
            else:
                for name in names:
                    env[name] = env.get(name, frozenset()) | taints
            self._block(statement.body.body, env, cls)
            if statement.orelse:
                self._block(statement.orelse.body.body, env, cls)
        elif type(statement) in (cst.If, cst.While):
            self._taint(statement.test, env, statement)
            self._block(statement.body.body, env, cls)
            orelse = statement.orelse
            if type(orelse) is cst.If:
                self._statement(orelse, env, cls)
            elif type(orelse) is cst.Else:
                self._block(orelse.body.body, env, cls)
        elif type(statement) in (cst.With, cst.Try):
            self._block(statement.body.body, env, cls)
            for handler in getattr(statement, "handlers", ()):
                self._block(handler.body.body, env, cls)

    def _small(self, small, env, cls) -> None:
        if type(small) is cst.Assign:
            value = small.value
            for target in small.targets:
                self._assign(target.target, value, env, small)
        elif type(small) in (cst.AnnAssign, cst.AugAssign) and small.value is not None:
            if type(small) is cst.AugAssign:
                value = cst.BinaryOperation(left=small.target, operator=_binary(small.operator), right=small.value)
            else:
                value = small.value
            self._assign(small.target, value, env, small)
        elif type(small) in (cst.Expr, cst.Return) and small.value is not None:
            value = small.value
            taints = self._taint(value, env, small)
            if type(small) is cst.Return and self._current and taints:
                self._returned[self._current] = (self._returned.so_far(self._current) or frozenset()) | taints
                if type(value) is cst.Tuple:  # `return X_train, y_train`: by position
                    self._returned_positions[self._current] = [self._taint(e.value, env, small) for e in value.elements]
            if type(value) is cst.Call and type(value.func) is cst.Attribute and \
                    value.func.attr.value in ("append", "extend", "insert") and value.args:
                key = receiver_text(value.func.value)  # `rewards.append(reward)`
                if key and not set(name_tokens(key.rsplit(".", 1)[-1])) & {"buffer", "memory", "rb", "replay"}:
                    env[key] = env.get(key, frozenset()) | self._taint(value.args[-1].value, env, small)
            del taints

    def _assign(self, target, value, env, statement) -> None:
        self._note_env(target, value)
        self._note_model(target, value)
        results = self._env_results(value, env, statement)
        if results is not None:
            self._env_source(target, results, env)
            return
        if type(value) is cst.Call and type(value.func) is cst.Attribute:
            method = value.func.attr.value
            owner = receiver_text(value.func.value) or ""
            if method == "sample" and self._buffer_key(owner) in self.buffers:
                slots = self.buffers[self._buffer_key(owner)]
                names = target_names(target) if type(target) in (cst.Tuple, cst.List) else []
                if names and len(names) == len(slots):
                    for name, taint in zip(names, slots):
                        env[name] = taint
                    return
                key = receiver_text(target)
                if key:
                    env[key] = frozenset().union(*slots) if slots else frozenset()
                return
        if type(target) in (cst.Tuple, cst.List) and type(value) is cst.Call and type(value.func) is cst.Name:
            returned = self._returned_positions.get(value.func.value)
            names = target_names(target)
            if returned and len(returned) == len(names):
                self._taint(value, env, statement)
                for name, taint in zip(names, returned):
                    env[name] = taint
                return
        taints = self._taint(value, env, statement)
        positions = self._positions_of(value, env, statement)
        if positions is not None and receiver_text(target):
            self._positional[receiver_text(target)] = positions
        if type(target) in (cst.Tuple, cst.List):
            for name in target_names(target):
                env[name] = taints
            return
        if type(target) is cst.Subscript:  # rewards[step] = torch.tensor(reward)
            key = receiver_text(target.value)
            if key:
                env[key] = env.get(key, frozenset()) | taints
            return
        key = receiver_text(target)
        if key:
            env[key] = taints

    def _env_source(self, target, results: tuple[frozenset, ...], env) -> None:
        """Bind the targets of `obs = env.reset()` / `obs, reward, ... = env.step(a)`."""
        names = target_names(target) if type(target) in (cst.Tuple, cst.List) else []
        if not results:  # an env built by code we cannot read
            for name in names or [receiver_text(target) or ""]:
                env[name] = frozenset()
            return
        if len(results) == 1:  # reset
            if names:
                env[names[0]] = results[0]
                for name in names[1:]:
                    env[name] = frozenset()
            else:
                key = receiver_text(target)
                if key:
                    env[key] = results[0]
            return
        if len(names) >= 4:
            env[names[0]], env[names[1]] = results
            for name in names[2:]:
                env[name] = frozenset()
        elif names:
            for name in names:
                env[name] = frozenset()

    # environments and models --------------------------------------------------------------

    def _is_env(self, text: str) -> bool:
        last = text.rsplit(".", 1)[-1]
        return bool({"env", "envs", "environment", "venv"} & set(name_tokens(last))) or last in self.envs

    def _env_facts(self, owner: str) -> EnvFacts:
        key = owner.rsplit(".", 1)[-1]
        return self.envs.get(key, EnvFacts(known=False))

    def _note_env(self, target, value) -> None:
        """`env = gym.make(...)`, `env = NormalizeObservation(env)`, `envs = SyncVectorEnv([make_env(...)])`."""
        key = (receiver_text(target) or "").rsplit(".", 1)[-1]
        if not key or type(value) is not cst.Call:
            return
        facts = self.envs.so_far(key)
        made = False
        for call, _ in iter_calls(value):
            name = dotted(call.func) or ""
            qualified = self.imports.resolve(name) or name
            last = qualified.rsplit(".", 1)[-1]
            if last == "make" and qualified.split(".")[0] in ("gym", "gymnasium"):
                facts = facts or EnvFacts()
                made = True
                env_id = next((a.value for a in call.args if a.keyword is None), None)
                if type(env_id) is cst.SimpleString and any(m in env_id.value for m in IMAGE_MARKERS):
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
                elif last in self._classes and "env" in name_tokens(last) and not made:
                    text = text_of(self._classes[last])  # an env class of this file
                    summary = summarize_function_text(text)
                    facts = facts or EnvFacts()
                    made = True
                    facts.normalizes_obs |= summary.normalizes_obs or summary.normalizes_value
                    facts.normalizes_reward |= summary.normalizes_reward
                    facts.image |= summary.image
                elif "env" in name_tokens(last) and not made and facts is None:
                    facts = EnvFacts(known=False)  # an env from code we cannot read
        if facts is not None:
            self.envs[key] = facts

    def _note_model(self, target, value) -> None:
        if type(target) in (cst.Tuple, cst.List) and type(value) in (cst.Tuple, cst.List):
            for element, item in zip(target.elements, value.elements):  # `mu, mu_target = MuNet(), MuNet()`
                self._note_model(element.value, item.value)
            return
        key = receiver_text(target)
        if type(value) in (cst.DictComp, cst.ListComp):  # `actors = {a: Actor() for a in agents}`
            value = value.value if type(value) is cst.DictComp else value.elt
        elif type(value) in (cst.List, cst.Tuple) and value.elements:
            value = value.elements[0].value
        if not key or type(value) is not cst.Call:
            return
        call = value
        while type(call.func) is cst.Attribute and type(call.func.value) is cst.Call and \
                call.func.attr.value in ("to", "cuda", "cpu", "float", "train", "eval"):
            call = call.func.value
        name = (dotted(call.func) or "").rsplit(".", 1)[-1]
        if name in self.models.module_classes or name in self._project_classes:
            self.model_classes[key] = name
            self.model_classes[key.rsplit(".", 1)[-1]] = name

    def _model_of(self, call: cst.Call) -> tuple[str, str] | None:
        """(display name, class) when `call` runs a model whose class we can read."""
        func = call.func
        text = receiver_text(func) or ""
        candidates = [text]
        if type(func) is cst.Attribute:
            candidates.append(receiver_text(func.value) or "")
        for candidate in candidates:
            if not candidate:
                continue
            cls = self.model_classes.get(candidate) or self.model_classes.get(candidate.rsplit(".", 1)[-1])
            if cls:
                return candidate, cls
        return None

    def _model_normalizes(self, cls: str) -> bool | None:
        if cls in self._project_classes:
            return self._project_classes[cls].normalizes_input
        for model in self.models.models:
            if model.kind == "module" and model.name == cls:
                return model_normalizes_input(model, self.text)
        return None

    def _enter(self, function: cst.FunctionDef, call: cst.Call, env, statement) -> None:
        """Analyse a function of the file with its parameters bound to the call's data."""
        params = [p.name.value for p in function.params.params]
        local: dict[str, frozenset] = {}
        position = 0
        for arg in call.args:
            if arg.star:
                break
            if arg.keyword is not None:
                local[arg.keyword.value] = self._taint(arg.value, env, statement)
            elif position < len(params):
                local[params[position]] = self._taint(arg.value, env, statement)
                position += 1
        self._entered.add(function.name.value)
        saved_current, self._current = self._current, function.name.value
        saved = self.segment
        self.segment = self._function_segments.get(function.name.value, self._segment_of(function))
        try:
            self._block(function.body.body, local, None)
        finally:
            self.segment = saved
            self._current = saved_current
            self._entered.discard(function.name.value)

    def _segment_of(self, function: cst.FunctionDef) -> Segment:
        for segment in self.segments:
            if any(statement is function for statement in segment.module.body):
                return segment
        return self.segment

    def _positions_of(self, value, env, statement) -> list[frozenset] | None:
        """`TensorDataset(X, y)` / `DataLoader(dataset)`: what each position of a batch holds."""
        if type(value) is not cst.Call:
            return None
        name = (dotted(value.func) or "").rsplit(".", 1)[-1]
        args = [a.value for a in value.args if a.keyword is None and not a.star]
        if name == "TensorDataset" and args:
            return [self._taint(arg, env, statement) for arg in args]
        if name == "DataLoader" and args:
            inner = self._positions_of(args[0], env, statement)
            return inner if inner is not None else self._positional.get(receiver_text(args[0]) or "")
        return None

    # buffers ------------------------------------------------------------------------------

    @staticmethod
    def _buffer_key(owner: str) -> str:
        return owner.rsplit(".", 1)[-1]

    def _note_buffer(self, call: cst.Call, env, statement) -> None:
        func = call.func
        if type(func) is not cst.Attribute or func.attr.value not in ("add", "push", "append", "store", "insert", "store_transition", "put"):
            return
        owner = receiver_text(func.value) or ""
        tokens = set(name_tokens(owner.rsplit(".", 1)[-1]))
        if not tokens & {"buffer", "memory", "rb", "replay", "storage", "mem"}:
            return
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        if len(args) == 1 and type(args[0]) in (cst.Tuple, cst.List):
            args = [e.value for e in args[0].elements]
        if len(args) < 2:
            return
        slots = [self._taint(arg, env, statement) for arg in args]
        key = self._buffer_key(owner)
        old = self.buffers.so_far(key)
        if old and len(old) == len(slots):
            slots = [a | b for a, b in zip(old, slots)]
        self.buffers[key] = slots

    # expressions --------------------------------------------------------------------------

    def _taint(self, node, env: dict[str, frozenset], statement) -> frozenset:
        if node is None:
            return frozenset()
        if type(node) is cst.Name:
            return env.get(node.value, frozenset())
        if type(node) is cst.Attribute:
            key = receiver_text(node)
            if key and key in env:
                return env[key]
            if node.attr.value in ("shape", "dtype", "ndim", "size", "device"):
                return frozenset()
            return self._taint(node.value, env, statement)
        if type(node) is cst.Subscript:
            results = self._env_results(node.value, env, statement)
            if results is not None:  # `env.reset()[0]`, `env.step(action)[1]`
                index = _literal_index(node)
                return results[index] if index is not None and index < len(results) else frozenset()
            return self._taint(node.value, env, statement)
        if type(node) in (cst.Tuple, cst.List, cst.Set):
            return frozenset().union(*(self._taint(e.value, env, statement) for e in node.elements)) if node.elements else frozenset()
        if type(node) is cst.IfExp:
            return self._taint(node.body, env, statement) | self._taint(node.orelse, env, statement)
        if type(node) in (cst.ListComp, cst.GeneratorExp):
            return self._taint(node.elt, {**env, **{n: self._taint(node.for_in.iter, env, statement) for n in target_names(node.for_in.target)}}, statement)
        if type(node) is cst.UnaryOperation:
            return self._taint(node.expression, env, statement)
        if type(node) is cst.BinaryOperation:
            return self._binary(node, env, statement)
        if type(node) is cst.Call:
            return self._call(node, env, statement)
        if type(node) is cst.Dict:
            return frozenset().union(*(self._taint(e.value, env, statement) for e in node.elements if type(e) is cst.DictElement)) if node.elements else frozenset()
        if type(node) is cst.DictComp:
            return frozenset()
        return frozenset()

    def _binary(self, node: cst.BinaryOperation, env, statement) -> frozenset:
        left = self._taint(node.left, env, statement)
        right = self._taint(node.right, env, statement)
        operator = node.operator
        if type(operator) is cst.Divide:
            if type(node.left) is cst.BinaryOperation and type(node.left.operator) is cst.Subtract:
                return _normalized(left)  # (x - mean) / std
            if _is_big_number(node.right) or _scale_name(node.right):
                return _normalized(left)  # x / 255, x / obs_scale
            return left | right
        if type(operator) is cst.Multiply:
            if _scale_name(node.right) or _small_number(node.right):
                return _normalized(left)
            if _scale_name(node.left) or _small_number(node.left):
                return _normalized(right)
            return left | right
        if type(operator) is cst.Add and (left or right):
            self._reward_target(node, left, right, statement)
        return left | right

    def _reward_target(self, node, left, right, statement) -> None:
        """`r + gamma * next_value`: rewards entering a return or TD target."""
        for rewards, other in ((left, node.right), (right, node.left)):
            raw = {t for t in rewards if t.kind == "reward" and not t.normalized}
            if raw and _mentions(other, GAMMA_TOKENS):
                if all(r.node is not node for r in self.reward_targets):
                    self.reward_targets.append(RewardTarget(node, self.segment, statement, frozenset(raw)))
                return

    def _env_results(self, node, env, statement) -> tuple[frozenset, ...] | None:
        """The taints of what `env.reset(...)` returns, (observations,), or `env.step(...)`,
        (observations, reward); () for an env built by code we cannot read; None when `node`
        is no env call. The arguments are followed too: `env.step(policy(obs))` runs the model."""
        if type(node) is not cst.Call or type(node.func) is not cst.Attribute:
            return None
        method = node.func.attr.value
        owner = receiver_text(node.func.value) or ""
        if method not in ("reset", "step") or not self._is_env(owner):
            return None
        for argument in node.args:
            self._taint(argument.value, env, statement)
        facts = self._env_facts(owner)
        if not facts.known:
            return ()
        source = f"{owner}.{method}(...)"
        line = self.line_of(self.segment, node, statement)
        obs = frozenset({Taint("image" if facts.image else "obs", source, line, facts.normalizes_obs)})
        if method == "reset":
            return (obs,)
        return (obs, frozenset({Taint("reward", source, line, facts.normalizes_reward)}))

    def _call(self, call: cst.Call, env, statement) -> frozenset:
        results = self._env_results(call, env, statement)
        if results is not None:  # `torch.Tensor(envs.reset())`: the observations, whatever wraps them
            return results[0] if len(results) == 1 else frozenset()
        func = call.func
        args = [a.value for a in call.args]
        arg_taints = [self._taint(a, env, statement) for a in args]
        receiver = func.value if type(func) is cst.Attribute else None
        receiver_taint = self._taint(receiver, env, statement) if receiver is not None else frozenset()
        name = func.attr.value if type(func) is cst.Attribute else (dotted(func) or "")
        qualified = self.imports.resolve(dotted(func) or "") or ""
        last = name.rsplit(".", 1)[-1]
        everything = frozenset().union(receiver_taint, *arg_taints)
        self._note_buffer(call, env, statement)
        model = self._model_of(call)
        if model is not None:
            dirty = frozenset(t for t in everything if t.kind in ("obs", "features", "image") and not t.normalized)
            if dirty and not self._model_normalizes(model[1]):
                self.model_inputs.append(ModelInput(call, self.segment, statement, model[0], dirty, model[1]))
            return frozenset()
        if last in FRAME_READS and qualified.split(".")[0] in ("pandas", "numpy", "pd", "np"):
            line = self.line_of(self.segment, call, statement)
            return frozenset({Taint("features", f"{qualified}(...)", line)})
        tokens = set(name_tokens(last))
        owner_tokens = set(name_tokens((receiver_text(receiver) or "").rsplit(".", 1)[-1])) if receiver is not None else set()
        if tokens & {"normalize", "normalizer", "normalise", "standardize", "whiten", "rms", "scale", "scaler", "norm"} or (
            last in ("transform", "fit_transform") and owner_tokens & {"scaler", "sc", "ss", "normalizer", "norm", "scale", "rms", "transformer"}
        ) or (owner_tokens & {"normalizer", "rms", "obs", "norm"} and tokens & {"normalize", "call"}):
            return _normalized(everything)
        if last in ("clip", "clamp", "sign", "tanh"):
            return frozenset(t.normalize() if t.kind == "reward" else t for t in everything)
        if last in CONVERSIONS:
            return everything
        summary = self.function_summary(last) if receiver is None else None
        if summary is not None and last in self._functions and everything and last not in self._entered:
            self._enter(self._functions[last], call, env, statement)  # `select_action(state)`
        if summary is not None:  # a function of this file: normalizes, or passes data through
            result = everything | self._returned.get(last, frozenset())
            return _normalized(result) if summary.normalizes_value else result
        if receiver is not None and receiver_taint and last not in ("item", "mean", "sum", "max", "min", "std", "var"):
            return receiver_taint  # a method of the data itself: obs.reshape(...)
        return frozenset()


def _literal_index(node: cst.Subscript) -> int | None:
    if len(node.slice) == 1 and type(node.slice[0].slice) is cst.Index:
        value = node.slice[0].slice.value
        if type(value) is cst.Integer:
            return int(number_literal(value.value))
    return None


def _disabled(call: cst.Call, keyword: str) -> bool:
    return any(a.keyword is not None and a.keyword.value == keyword and type(a.value) is cst.Name
               and a.value.value == "False" for a in call.args)


def _normalized(taints: frozenset) -> frozenset:
    return frozenset(t.normalize() for t in taints)


def _is_big_number(node) -> bool:
    value = _number(node)
    return value is not None and value >= 100


def _small_number(node) -> bool:
    value = _number(node)
    return value is not None and 0 < abs(value) < 1


def _number(node):
    if type(node) in (cst.Integer, cst.Float):
        return float(number_literal(node.value))
    if type(node) is cst.UnaryOperation and type(node.operator) is cst.Minus:
        value = _number(node.expression)
        return -value if value is not None else None
    return None


def _scale_name(node) -> bool:
    text = receiver_text(node) or ""
    if type(node) is cst.Call:
        text = dotted(node.func) or ""
    tokens = set(name_tokens(text.rsplit(".", 1)[-1])) if text else set()
    return bool(tokens & {"scale", "std", "norm", "sigma", "max", "range", "coef", "factor", "sqrt"})


def _mentions(node, tokens: set[str]) -> bool:
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is cst.Name and set(name_tokens(current.value)) & tokens:
            return True
        if type(current) is cst.Attribute and set(name_tokens(current.attr.value)) & tokens:
            return True
        stack.extend(children(current))
    return False


_ADVANTAGE_NORM = re.compile(
    r"\(\s*([\w.\[\]]+)\s*-\s*\1\.mean\([^)]*\)\s*\)\s*/\s*\(?\s*\1\.std\(|ValueNorm|PopArt|normalize_advantage"
)


def advantage_normalization(text: str) -> bool:
    """`(adv - adv.mean()) / (adv.std() + 1e-8)` anywhere in the file, or ValueNorm/PopArt."""
    return _ADVANTAGE_NORM.search(text) is not None


def _binary(operator: cst.BaseAugOp) -> cst.BaseBinaryOp:
    mapping = {cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract, cst.MultiplyAssign: cst.Multiply,
               cst.DivideAssign: cst.Divide}
    return mapping.get(type(operator), cst.Add)()


__all__ = ["DataFlow", "EnvFacts", "ModelInput", "RewardTarget", "Taint"]
