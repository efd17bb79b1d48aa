"""The training-step analysis shared by the GL1xx rules.

One walk over the file's libcst segments turns every function (and the module's script code)
into a small control-flow skeleton of the events that matter for gradients: `backward`,
clipping, `scaler.unscale_`, optimizer steps, and calls to the file's own functions. A
path-sensitive pass over those skeletons then finds steps reached after a backward with no
clipping in between, and clips that run on still-scaled AMP gradients.

Calls into the file's own functions and methods are followed through summaries, so a
`loss.backward()` in one method and `self.optimizer.step()` in another method of the same
class are seen together, and a helper that clips counts as clipping.
"""

from __future__ import annotations

import builtins
import functools
import re
from dataclasses import dataclass, field
from typing import Union

from gradlint.lazy import lazy_module

from gradlint.analysis.cst_walk import iter_calls, iter_names, target_names
from gradlint.analysis.imports import ImportTable, dotted, receiver_text
from gradlint.prepass import Segment

cst = lazy_module("libcst")

OPTIMIZER_NAMES = {
    "Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
    "LBFGS", "SparseAdam", "ASGD", "Rprop", "Adafactor", "Lion", "LAMB", "Lamb", "Muon",
    "FusedAdam", "FusedLAMB", "Adam8bit", "AdamW8bit", "PagedAdamW", "Shampoo",
}
RECURRENT_NAMES = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "RNNBase", "RNNCellBase"}
CLIP_FUNCTIONS = {
    "clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "clip_grad_value",
    "clip_grads_with_norm_", "clip_gradients", "clip_grad",
}
BACKWARD_METHODS = {"backward", "manual_backward"}
_BUILTINS = set(dir(builtins))
_MODULE_CHAIN_METHODS = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "share_memory"}
_TOKEN = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


@functools.lru_cache(maxsize=4096)  # the same few hundred names are asked about over and over
def name_tokens(name: str) -> tuple[str, ...]:
    """`actor_optimizer` -> (actor, optimizer); `optimizerD` -> (optimizer, d)."""
    return tuple(t.lower() for part in name.split("_") for t in _TOKEN.findall(part))


def is_optimizer_class(qualified: str) -> bool:
    """`torch.optim.Adam`, an imported `Adam`, `bnb.optim.AdamW8bit`; not schedulers or SWA."""
    parts = qualified.split(".")
    last = parts[-1]
    if last in OPTIMIZER_NAMES:
        return True
    return len(parts) == 3 and parts[:2] == ["torch", "optim"] and last[:1].isupper() and last != "Optimizer"


def looks_like_optimizer_name(text: str) -> bool:
    tokens = name_tokens(text.rsplit(".", 1)[-1])
    if any(t.startswith("sched") or t == "lr" for t in tokens):
        return False
    return any(t in {"opt", "opts", "optim", "optims", "optimizer", "optimizers", "optimiser", "optimisers"} for t in tokens)


def looks_like_scaler_name(text: str) -> bool:
    return "scaler" in name_tokens(text.rsplit(".", 1)[-1])


def looks_like_clip_helper(text: str) -> bool:
    tokens = name_tokens(text.rsplit(".", 1)[-1])
    return "clip" in tokens and any(t.startswith("grad") or t == "norm" for t in tokens)


# --------------------------------------------------------------------------------------------
# The skeleton


@dataclass(eq=False, repr=False)
class Event:
    kind: str  # backward | step | clip | unscale | call
    call: cst.Call
    stmt: cst.BaseSmallStatement | None  # the small statement holding the call, if simple
    anchor: cst.CSTNode  # the statement holding the call (a compound one for `if opt.step():`)
    segment: Segment
    function: "FunctionInfo"
    in_closure: bool = False
    receiver: str | None = None  # optimizer/scaler text, callee text
    optimizer: cst.BaseExpression | None = None  # the optimizer expression a step/unscale names
    scaled: bool = False  # backward of `scaler.scale(loss)`
    clip_roots: frozenset[str] = frozenset({"*"})


@dataclass(eq=False)
class Branch:
    arms: list["Block"]


@dataclass(eq=False)
class Loop:
    body: "Block"
    orelse: "Block"


@dataclass(eq=False)
class Try:
    body: "Block"
    handlers: list["Block"]
    orelse: "Block"
    final: "Block"


@dataclass(eq=False)
class Jump:
    kind: str  # return | break | continue


Item = Union[Event, Branch, Loop, Try, Jump]
Block = list  # list[Item]


@dataclass(eq=False, repr=False)
class Binding:
    """`target = value` somewhere in the file (flow-insensitive)."""

    value: cst.BaseExpression
    function: "FunctionInfo"
    segment: Segment
    anchor: cst.CSTNode | None = None  # the statement the value is written in

    @property
    def constructed(self) -> cst.Call | None:
        """The constructor call, seen through `.to(device)`, `.cuda()`, `.float()` chains."""
        value = self.value
        while (
            type(value) is cst.Call
            and type(value.func) is cst.Attribute
            and value.func.attr.value in _MODULE_CHAIN_METHODS
            and type(value.func.value) is cst.Call
        ):
            value = value.func.value
        return value if type(value) is cst.Call else None

    def call_name(self, imports: ImportTable) -> str | None:
        call = self.constructed
        return imports.resolve(dotted(call.func)) if call is not None else None


@dataclass(eq=False, repr=False)
class FunctionInfo:
    name: str
    class_name: str | None
    segment: Segment | None
    parent: "FunctionInfo | None" = None
    body: Block = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    defaults: dict[str, cst.BaseExpression] = field(default_factory=dict)  # parameter -> its default
    locals: set[str] = field(default_factory=set)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    call_events: list[Event] = field(default_factory=list)
    event_kinds: set[str] = field(default_factory=set)


@dataclass(eq=False)
class ClassInfo:
    name: str
    bases: list[str]
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    attributes: dict[str, list[Binding]] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)  # qualified names called anywhere in the body
    handwritten_recurrence: bool = False


# --------------------------------------------------------------------------------------------
# Building the skeleton: one walk over the segments


class _Builder:
    def __init__(self, imports: ImportTable, known_functions: set[str]) -> None:
        self.imports = imports
        self.known_functions = known_functions
        self.module = FunctionInfo("<module>", None, None)
        self.functions: list[FunctionInfo] = []
        self.classes: dict[str, ClassInfo] = {}
        self.segment: Segment | None = None
        self.current_statement: cst.CSTNode | None = None

    def build(self, segments: list[Segment]) -> None:
        for segment in segments:
            self.segment = segment
            self.module.body.extend(self.block(segment.module.body, self.module, None, False))

    # statements ---------------------------------------------------------------------------

    def block(self, body, func: FunctionInfo, cls: ClassInfo | None, in_loop: bool) -> Block:
        items: Block = []
        for stmt in body:
            items.extend(self.statement(stmt, func, cls, in_loop))
        return items

    def statement(self, stmt, func, cls, in_loop) -> Block:
        if isinstance(stmt, cst.BaseSmallStatement):  # the body of `if x: opt.step()`
            return self.small_statement(stmt, func, cls, in_loop)
        if type(stmt) is cst.SimpleStatementLine:
            items: Block = []
            for small in stmt.body:
                items.extend(self.small_statement(small, func, cls, in_loop))
            return items
        if type(stmt) is cst.FunctionDef:
            self.function(stmt, func, cls)
            return []
        if type(stmt) is cst.ClassDef:
            self.class_def(stmt, func)
            return []
        if type(stmt) is cst.If:
            items = self.events(stmt.test, None, func, cls, stmt)
            orelse = stmt.orelse
            if type(orelse) is cst.If:
                other = self.statement(orelse, func, cls, in_loop)
            elif type(orelse) is cst.Else:
                other = self.block(orelse.body.body, func, cls, in_loop)
            else:
                other = []
            items.append(Branch([self.block(stmt.body.body, func, cls, in_loop), other]))
            return items
        if type(stmt) in (cst.For, cst.While):
            if type(stmt) is cst.For:
                items = self.events(stmt.iter, None, func, cls, stmt)
                func.locals.update(target_names(stmt.target))
                self.bind_targets(stmt.target, stmt.iter, func, cls, loop_variable=True)
            else:
                items = self.events(stmt.test, None, func, cls, stmt)
            body = self.block(stmt.body.body, func, cls, True)
            orelse = self.block(stmt.orelse.body.body, func, cls, in_loop) if stmt.orelse else []
            items.append(Loop(body, orelse))
            return items
        if type(stmt) in (cst.Try, cst.TryStar):
            return [
                Try(
                    self.block(stmt.body.body, func, cls, in_loop),
                    [self.block(h.body.body, func, cls, in_loop) for h in stmt.handlers],
                    self.block(stmt.orelse.body.body, func, cls, in_loop) if stmt.orelse else [],
                    self.block(stmt.finalbody.body.body, func, cls, in_loop) if stmt.finalbody else [],
                )
            ]
        if type(stmt) is cst.With:
            items = []
            for item in stmt.items:
                items.extend(self.events(item.item, None, func, cls, stmt))
                if item.asname is not None:
                    func.locals.update(target_names(item.asname.name))
            items.extend(self.block(stmt.body.body, func, cls, in_loop))
            return items
        if type(stmt) is cst.Match:
            items = self.events(stmt.subject, None, func, cls, stmt)
            items.append(Branch([self.block(case.body.body, func, cls, in_loop) for case in stmt.cases] + [[]]))
            return items
        return []

    def small_statement(self, small, func, cls, in_loop) -> Block:
        self.current_statement = small
        if type(small) in (cst.Import, cst.ImportFrom):
            self.imports.add_cst(small)
            return []
        items = self.events(small, small, func, cls, small)
        if type(small) is cst.Assign:
            for target in small.targets:
                self.bind_targets(target.target, small.value, func, cls)
                if in_loop and cls is not None:
                    self.check_recurrence(target.target, small.value, cls)
        elif type(small) in (cst.AnnAssign, cst.AugAssign) and small.value is not None:
            self.bind_targets(small.target, small.value, func, cls)
            if type(small) is cst.AugAssign and in_loop and cls is not None:
                self.check_recurrence(small.target, small.value, cls)
        if type(small) in (cst.Return, cst.Raise):
            items.append(Jump("return"))
        elif type(small) is cst.Break:
            items.append(Jump("break"))
        elif type(small) is cst.Continue:
            items.append(Jump("continue"))
        return items

    def function(self, node: cst.FunctionDef, outer: FunctionInfo, cls: ClassInfo | None) -> None:
        info = FunctionInfo(node.name.value, cls.name if cls else None, self.segment,
                            parent=None if outer is self.module else outer)
        params = node.params
        for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
            info.locals.add(param.name.value)
            info.params.append(param.name.value)
            if param.default is not None:
                info.defaults[param.name.value] = param.default
        for star in (params.star_arg, params.star_kwarg):
            if type(star) is cst.Param:
                info.locals.add(star.name.value)
        if cls is not None and outer is self.module:
            cls.methods[info.name] = info
        else:
            outer.locals.add(info.name)
        self.functions.append(info)
        info.body = self.block(node.body.body, info, cls, False)

    def class_def(self, node: cst.ClassDef, outer: FunctionInfo) -> None:
        bases = [self.imports.resolve(dotted(arg.value)) or "" for arg in node.bases if arg.keyword is None]
        info = ClassInfo(node.name.value, bases)
        self.classes.setdefault(info.name, info)
        for stmt in node.body.body:
            if type(stmt) is cst.FunctionDef:
                self.function(stmt, self.module, info)
            else:
                for call, _ in iter_calls(stmt):
                    name = self.imports.resolve(dotted(call.func))
                    if name:
                        info.calls.add(name)

    # bindings -----------------------------------------------------------------------------

    def bind_targets(self, target, value, func, cls, loop_variable: bool = False) -> None:
        if type(target) in (cst.Tuple, cst.List):
            elements = [e.value for e in target.elements]
            # `model, opt = accelerator.prepare(model, opt)`: bind each name to its argument
            if type(value) is cst.Call and len(value.args) == len(elements):
                for element, arg in zip(elements, value.args):
                    self.bind_targets(element, arg.value, func, cls)
            elif type(value) in (cst.Tuple, cst.List) and len(value.elements) == len(elements):
                for element, item in zip(elements, value.elements):
                    self.bind_targets(element, item.value, func, cls)
            else:
                for element in elements:
                    self.bind_targets(element, value, func, cls, loop_variable=True)
            return
        if loop_variable:  # `for opt in optimizers` - the element of a collection, not the collection
            return
        binding = Binding(value, func, self.segment, self.current_statement)  # type: ignore[arg-type]
        if type(target) is cst.Name:
            func.locals.add(target.value)
            func.bindings.setdefault(target.value, []).append(binding)
        elif type(target) is cst.Attribute and type(target.value) is cst.Name:
            if target.value.value == "self" and cls is not None:
                cls.attributes.setdefault(target.attr.value, []).append(binding)

    def check_recurrence(self, target, value, cls: ClassInfo) -> None:
        """`h = tanh(self.W(h) + self.U(x[t]))` inside a loop: a hand-written recurrence."""
        if type(target) is not cst.Name:
            return
        name = target.value
        if name not in set(iter_names(value)):
            return
        for call, _ in iter_calls(value):
            text = dotted(call.func) or ""
            if text.startswith("self.") or text.rsplit(".", 1)[-1] in {"matmul", "mm", "bmm", "linear", "addmm"}:
                cls.handwritten_recurrence = True
                return
        if "@" in cst.Module([]).code_for_node(value):
            cls.handwritten_recurrence = True

    # events -------------------------------------------------------------------------------

    def events(self, node, stmt, func: FunctionInfo, cls: ClassInfo | None, anchor: cst.CSTNode) -> Block:
        items: Block = []
        for call, in_closure in iter_calls(node):
            name = dotted(call.func)
            if cls is not None and name:
                resolved = self.imports.resolve(name)
                if resolved:
                    cls.calls.add(resolved)
            event = self.classify(call, name)
            if event is None:
                continue
            kind, receiver, optimizer, scaled, roots = event
            ev = Event(kind, call, stmt, anchor, self.segment, func, in_closure, receiver,  # type: ignore[arg-type]
                       optimizer, scaled, roots)
            func.event_kinds.add(kind)
            if kind == "call":
                func.call_events.append(ev)
            items.append(ev)
        return items

    def classify(self, call: cst.Call, name: str | None):
        func = call.func
        if type(func) is cst.Attribute:
            attr = func.attr.value
            owner = func.value
            owner_text = receiver_text(owner)
            if attr in BACKWARD_METHODS:
                scaled = (
                    type(owner) is cst.Call
                    and type(owner.func) is cst.Attribute
                    and owner.func.attr.value == "scale"
                    and looks_like_scaler_name(receiver_text(owner.func.value) or "")
                )
                return ("backward", owner_text, None, scaled, frozenset())
            if attr == "step" and owner_text:
                if any(a.keyword is not None and a.keyword.value == "closure" for a in call.args):
                    return None
                if looks_like_scaler_name(owner_text) and call.args:
                    return ("step", owner_text, call.args[0].value, False, frozenset())
                if not call.args:  # whether the receiver is an optimizer is decided later
                    return ("step", owner_text, owner, False, frozenset())
                return None  # `env.step(action)`, `optimizer.step(closure)` (backward runs inside)
            if attr == "unscale_" and owner_text and looks_like_scaler_name(owner_text):
                return ("unscale", owner_text, call.args[0].value if call.args else None, False, frozenset())
            if attr in {"clamp_", "clamp", "clip_"} and owner_text and ".grad" in f".{owner_text}":
                return ("clip", owner_text, None, False, frozenset({"*"}))
        name = name or receiver_text(func)  # `self.agents[i].update` -> `self.agents.update`
        if name is None:
            return None
        last = name.rsplit(".", 1)[-1]
        resolved = self.imports.resolve(name) or name
        if last in CLIP_FUNCTIONS or resolved.rsplit(".", 1)[-1] in CLIP_FUNCTIONS:
            return ("clip", name, None, False, self.clip_roots(call))
        if last in self.known_functions:
            return ("call", name, None, False, frozenset())
        if looks_like_clip_helper(last):
            return ("clip", name, None, False, self.clip_roots(call))
        return None

    def clip_roots(self, call: cst.Call) -> frozenset[str]:
        """The models a clip call covers: `clip_grad_norm_(self.actor.parameters(), ..)` -> {self.actor}."""
        if not call.args:
            return frozenset({"*"})
        roots = parameter_roots(call.args[0].value)
        return frozenset(roots) if roots else frozenset({"*"})


def parameter_roots(expr: cst.BaseExpression) -> set[str]:
    """`self.actor.parameters()` -> {'self.actor'}; works inside lists, sums and chains.

    Empty when the expression does not name its modules (`params`): unknown, not "none".
    """
    roots = set()
    for call, _ in iter_calls(expr):
        if type(call.func) is cst.Attribute and call.func.attr.value in {"parameters", "named_parameters"}:
            text = receiver_text(call.func.value)
            if text:
                roots.add(text)
    return roots


# --------------------------------------------------------------------------------------------
# Facts and the flow pass


@dataclass(frozen=True)
class State:
    backward: bool = False  # a backward may have run since the last clip
    clipped: frozenset = frozenset()  # what has been clipped since the last backward ('*' = all)
    scaled: bool = False  # that backward ran on AMP-scaled loss
    unscaled: bool = False  # scaler.unscale_ ran since
    last_backward: Event | None = field(default=None, compare=False, hash=False)


def join(*states: State | None) -> State | None:
    live = [s for s in states if s is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    return State(
        backward=any(s.backward for s in live),
        clipped=frozenset().union(*(s.clipped for s in live)),
        scaled=any(s.scaled for s in live),
        unscaled=any(s.unscaled for s in live),
        last_backward=next((s.last_backward for s in live if s.last_backward), None),
    )


@dataclass(eq=False, repr=False)
class Finding:
    kind: str  # missing_clip | clip_before_unscale
    event: Event
    backward: Event | None
    scaled: bool = False
    unscaled: bool = False


class _Frame:
    def __init__(self) -> None:
        self.returns: list[State] = []
        self.breaks: list[list[State]] = []
        self.continues: list[list[State]] = []


class TrainingAnalysis:
    """Optimizers, clipping and AMP order for one file."""

    def __init__(self, imports: ImportTable, segments: list[Segment], known_functions: set[str]) -> None:
        self.imports = imports
        builder = _Builder(imports, known_functions)
        builder.build(segments)
        self.module = builder.module
        self.functions = builder.functions
        self.classes = builder.classes
        self.findings: dict[tuple[str, int], Finding] = {}
        self._summaries: dict[tuple[int, bool, bool], State | None] = {}
        self._in_progress: set[int] = set()
        self._binding_in_progress: set[tuple[int, str]] = set()
        self._recurrent_classes: dict[str, str | None] = {}
        self._run()

    def release(self) -> None:
        """Unlink the skeleton (events and bindings point back at their function), so that
        reference counting frees it and the trees it holds without the cyclic collector."""
        methods = [m for c in self.classes.values() for m in c.methods.values()]
        for func in [self.module, *self.functions, *methods]:
            func.body.clear()
            func.bindings.clear()
            func.call_events.clear()
            func.parent = None
        self.findings.clear()

    # public -------------------------------------------------------------------------------

    @property
    def missing_clip(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind == "missing_clip"]

    @property
    def clip_before_unscale(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind == "clip_before_unscale"]

    # flow ---------------------------------------------------------------------------------

    def _run(self) -> None:
        for func in [self.module, *self.functions]:
            if func.event_kinds & {"step", "clip", "call"}:
                self._analyze(func, State())

    def _analyze(self, func: FunctionInfo, entry: State) -> State | None:
        frame = _Frame()
        out = self._block(func.body, entry, frame)
        return join(out, *frame.returns)

    def _block(self, block: Block, state: State | None, frame: _Frame) -> State | None:
        for item in block:
            if state is None:
                return None
            state = self._item(item, state, frame)
        return state

    def _item(self, item: Item, state: State, frame: _Frame) -> State | None:
        if isinstance(item, Event):
            return self._event(item, state)
        if isinstance(item, Branch):
            return join(*(self._block(arm, state, frame) for arm in item.arms))
        if isinstance(item, Loop):
            frame.breaks.append([])
            head: State | None = state
            for _ in range(6):
                frame.continues.append([])
                out = self._block(item.body, head, frame)
                new_head = join(state, out, *frame.continues.pop())
                if new_head == head:
                    break
                head = new_head
            breaks = frame.breaks.pop()
            return join(self._block(item.orelse, head, frame), *breaks)
        if isinstance(item, Try):
            body = self._block(item.body, state, frame)
            handled = [self._block(h, join(state, body), frame) for h in item.handlers]
            normal = self._block(item.orelse, body, frame)
            return self._block(item.final, join(normal, *handled), frame)
        if isinstance(item, Jump):
            if item.kind == "return":
                frame.returns.append(state)
            elif item.kind == "break" and frame.breaks:
                frame.breaks[-1].append(state)
            elif item.kind == "continue" and frame.continues:
                frame.continues[-1].append(state)
            return None
        return state

    def _event(self, ev: Event, state: State) -> State:
        if ev.kind == "backward":
            return State(backward=True, scaled=ev.scaled, last_backward=ev)
        if ev.kind == "clip":
            if state.backward and state.scaled and not state.unscaled:
                self._add(Finding("clip_before_unscale", ev, state.last_backward, True, False))
            return State(state.backward, state.clipped | ev.clip_roots, state.scaled, state.unscaled,
                         state.last_backward)
        if ev.kind == "unscale":
            return State(state.backward, state.clipped, state.scaled, True, state.last_backward)
        if ev.kind == "step":
            if state.backward and self.is_optimizer_step(ev) and not self._covered(ev, state.clipped):
                self._add(Finding("missing_clip", ev, state.last_backward, state.scaled, state.unscaled))
            return state
        if ev.kind == "call":
            return self._call(ev, state)
        return state

    def _call(self, ev: Event, state: State) -> State:
        callee = self.resolve_function(ev.receiver or "", ev.function)
        if callee is None:
            return state
        key = (id(callee), state.backward, state.scaled)
        if id(callee) in self._in_progress:
            return state
        if key not in self._summaries:
            self._in_progress.add(id(callee))
            try:
                entry = State(backward=state.backward, scaled=state.scaled, last_backward=state.last_backward)
                self._summaries[key] = self._analyze(callee, entry)
            finally:
                self._in_progress.discard(id(callee))
        out = self._summaries[key]
        if out is None:
            return state
        if "backward" in callee.event_kinds:
            return out
        return State(out.backward, out.clipped | state.clipped, out.scaled,
                     out.unscaled or state.unscaled, out.last_backward or state.last_backward)

    def _add(self, finding: Finding) -> None:
        self.findings.setdefault((finding.kind, id(finding.event.call)), finding)

    def _covered(self, step: Event, clipped: frozenset) -> bool:
        if not clipped:
            return False
        if "*" in clipped:
            return True
        params = self.optimizer_params(step)
        # roots are names: compare them only where they mean the same thing as at the step
        if params is None or not self.params_valid_at(params[0], params[1], step):
            return True
        roots = parameter_roots(params[0])
        return not roots or bool(roots & clipped)

    # resolution ---------------------------------------------------------------------------

    def is_optimizer_step(self, step: Event) -> bool:
        """`scaler.step(opt)`, or `X.step()` where X was built by an optimizer class or is named
        like one (`optimizer`, `actor_optim`, `opt_d`); never `env`/`scheduler`/`self`."""
        if step.call.args:
            return True  # only scaler steps with an argument are recorded
        text = step.receiver or ""
        return looks_like_optimizer_name(text) or self.optimizer_construction(step) is not None

    def resolve_function(self, text: str, context: FunctionInfo) -> FunctionInfo | None:
        parts = text.split(".")
        if len(parts) == 1:
            scope: FunctionInfo | None = context
            while scope is not None:
                for func in self.functions:
                    if func.name == text and func.parent is scope and func.class_name is None:
                        return func
                scope = scope.parent
            for func in self.functions:
                if func.name == text and func.parent is None and func.class_name is None:
                    return func
            return None
        method = parts[-1]
        if parts[0] in {"self", "cls"} and len(parts) == 2 and context.class_name:
            return self.find_method(context.class_name, method)
        owner_text = ".".join(parts[:-1])
        for binding in self.lookup(owner_text, context):  # `agent = Agent(...)`
            if binding.constructed is not None:
                built = (dotted(binding.constructed.func) or "").rsplit(".", 1)[-1]
                if built in self.classes:
                    return self.find_method(built, method)
        # `agent.update()` / `self.agents[i].update()` with one class of the file, named like
        # the receiver (`DDPGAgent`), defining `update`
        owner_tokens = {t.rstrip("s") for t in name_tokens(parts[-2])}
        owners = [
            c for c in self.classes.values()
            if method in c.methods and owner_tokens & set(name_tokens(c.name))
        ]
        if len(owners) == 1:
            return owners[0].methods[method]
        return None

    def find_method(self, class_name: str, method: str, seen: set | None = None) -> FunctionInfo | None:
        seen = seen or set()
        info = self.classes.get(class_name)
        if info is None or class_name in seen:
            return None
        seen.add(class_name)
        if method in info.methods:
            return info.methods[method]
        for base in info.bases:
            found = self.find_method(base.rsplit(".", 1)[-1], method, seen)
            if found:
                return found
        return None

    def lookup(self, text: str, context: FunctionInfo) -> list[Binding]:
        """The bindings that may give `text` its value where `context` reads it."""
        head, _, rest = text.partition(".")
        if head == "self" and context.class_name and rest and "." not in rest:
            found: list[Binding] = []
            for cls in self._class_chain(context.class_name):
                found.extend(cls.attributes.get(rest, []))
            return found
        if rest:
            return []
        scope: FunctionInfo | None = context
        while scope is not None:
            if text in scope.bindings:
                return scope.bindings[text]
            if text in scope.params:
                return self._argument_bindings(scope, text)
            if text in scope.locals:
                return []
            scope = scope.parent
        return self.module.bindings.get(text, [])

    def _argument_bindings(self, func: FunctionInfo, param: str) -> list[Binding]:
        """A parameter takes its values from the file's calls of the function:
        `train_epoch(model, data, optimizer)` binds `optimizer` to the caller's `optimizer`."""
        key = (id(func), param)
        if key in self._binding_in_progress:
            return []
        self._binding_in_progress.add(key)
        try:
            return self._collect_arguments(func, param)
        finally:
            self._binding_in_progress.discard(key)

    def _collect_arguments(self, func: FunctionInfo, param: str) -> list[Binding]:
        index = func.params.index(param)
        found = []
        for caller in (self.module, *self.functions):
            for event in caller.call_events:
                if self.resolve_function(event.receiver or "", caller) is not func:
                    continue
                position = index
                if func.class_name and func.params[:1] in (["self"], ["cls"]) and "." in (event.receiver or ""):
                    position -= 1
                value = None
                for i, arg in enumerate(event.call.args):
                    if arg.keyword is not None:
                        if arg.keyword.value == param:
                            value = arg.value
                    elif arg.star:
                        break
                    elif i == position:
                        value = arg.value
                if value is not None:
                    found.append(Binding(value, caller, event.segment, event.anchor))
        return found

    def _class_chain(self, name: str) -> list[ClassInfo]:
        chain, todo, seen = [], [name], set()
        while todo:
            current = todo.pop()
            if current in seen or current not in self.classes:
                continue
            seen.add(current)
            chain.append(self.classes[current])
            todo.extend(b.rsplit(".", 1)[-1] for b in self.classes[current].bases)
        return chain

    def optimizer_construction(self, step: Event) -> tuple[cst.Call, Binding] | None:
        """The `torch.optim.X(params, ...)` call that built the optimizer a step updates."""
        if step.optimizer is None:
            return None
        text = receiver_text(step.optimizer)
        if text is None:
            return None
        todo = [(text, step.function)]
        seen = set()
        while todo:
            name, context = todo.pop()
            if (name, id(context)) in seen:
                continue
            seen.add((name, id(context)))
            for binding in self.lookup(name, context):
                value = binding.constructed or binding.value
                if type(value) is cst.Call:
                    if is_optimizer_class(binding.call_name(self.imports) or "") and value.args:
                        return value, binding
                elif type(value) in (cst.Name, cst.Attribute):
                    alias = receiver_text(value)
                    if alias:
                        todo.append((alias, binding.function))
        return None

    def optimizer_params(self, step: Event) -> tuple[cst.BaseExpression, Binding] | None:
        built = self.optimizer_construction(step)
        if built is None:
            return None
        call, binding = built
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "params":
                return arg.value, binding
        first = call.args[0]
        if first.keyword is None and not first.star:
            return first.value, binding
        return None

    def params_valid_at(self, params: cst.BaseExpression, binding: Binding, step: Event) -> bool:
        """Can the optimizer's `params` expression be written again where the step is, meaning
        the same thing? Yes in the same function, or for `self.` in methods of one class."""
        here = step.function
        for name in iter_names(params):
            if name in _BUILTINS and name not in here.locals:
                continue
            if binding.function is here:
                continue
            if name == "self":
                if here.class_name and binding.function.class_name and (
                    binding.function.class_name in {c.name for c in self._class_chain(here.class_name)}
                ):
                    continue
                return False
            # a module-level name read inside a function may be a caller's object passed under
            # another name (`fit(regressor, opt)`): not the same text, so not trusted
            return False
        return True

    # recurrence ---------------------------------------------------------------------------

    def model_classes(self, step: Event) -> set[str]:
        """Names of the classes whose parameters the stepped optimizer updates, where visible."""
        params = self.optimizer_params(step)
        if params is None:
            return set()
        expr, binding = params
        found: set[str] = set()
        for root in parameter_roots(expr):
            if root == "self" and binding.function.class_name:
                found.add(binding.function.class_name)
                continue
            candidates = [c for c in self.lookup(root, binding.function) if c.constructed is not None]
            if not candidates and "." in root and not root.startswith("self."):
                # `Adam(ac.pi.parameters())`: a part of the model built as `ac`
                candidates = [c for c in self.lookup(root.split(".", 1)[0], binding.function) if c.constructed is not None]
            for candidate in candidates:
                name = dotted(candidate.constructed.func) or ""  # type: ignore[union-attr]
                default = _parameter_default(name, candidate.function)
                if default is not None:  # Spinning Up: `def ddpg(env_fn, actor_critic=core.MLPActorCritic)`
                    name = dotted(default) or name
                # `networks.QNetwork` stays dotted: the project module is found through the import
                found.add(name if "." in name and name.rsplit(".", 1)[-1] not in self.classes
                          else name.rsplit(".", 1)[-1])
        return found

    def recurrent_model(self, step: Event) -> str | None:
        """Describe the recurrent module the stepped optimizer updates, if one can be seen."""
        params = self.optimizer_params(step)
        if params is None:
            return None
        expr, binding = params
        for root in parameter_roots(expr):
            owner = binding.function.class_name
            if root == "self" and owner in self.classes:  # `optim.Adam(self.parameters())`
                found = self._recurrent_class(owner)
            else:
                found = self._recurrent_value(root, binding.function)
            if found:
                return found
        return None

    def _recurrent_value(self, text: str, context: FunctionInfo) -> str | None:
        for binding in self.lookup(text, context):
            if binding.constructed is not None:
                qualified = binding.call_name(self.imports) or ""
                described = self._recurrent_constructor(qualified)
                if described:
                    return described
        return None

    def _recurrent_constructor(self, qualified: str) -> str | None:
        last = qualified.rsplit(".", 1)[-1]
        if last in RECURRENT_NAMES and (qualified.startswith("torch.") or qualified == last):
            return f"nn.{last}"
        if last in self.classes:
            return self._recurrent_class(last)
        if "." in qualified and any(t in {"rnn", "lstm", "gru"} for t in name_tokens(last)):
            return f"{last} (imported; its name says recurrent)"
        return None

    def _recurrent_class(self, name: str) -> str | None:
        if name in self._recurrent_classes:
            return self._recurrent_classes[name]
        self._recurrent_classes[name] = None  # cycles
        info = self.classes[name]
        result = None
        for qualified in sorted(info.calls) + info.bases:
            last = qualified.rsplit(".", 1)[-1]
            if last in RECURRENT_NAMES and (qualified.startswith("torch.") or qualified == last):
                result = f"nn.{last} in {name}"
                break
            if last in self.classes and last != name:
                inner = self._recurrent_class(last)
                if inner:
                    result = inner
                    break
        if result is None and info.handwritten_recurrence:
            result = f"a hand-written recurrence in {name}"
        self._recurrent_classes[name] = result
        return result


def _parameter_default(name: str, function: FunctionInfo | None) -> cst.BaseExpression | None:
    """The default of the parameter `name` of `function` or of a function enclosing it."""
    while function is not None:
        if name in function.params:
            return function.defaults.get(name)
        function = function.parent
    return None
