"""The training-step analysis shared by the GL1xx rules.

One walk over the file's `ast` tree (every statement; names through `ctx.symbols`) turns every
function (and the module's script code) into a small control-flow skeleton of the events that
matter for gradients: `backward`, clipping, `scaler.unscale_`, optimizer steps, and calls to the
file's own functions. A path-sensitive pass over those skeletons then finds steps reached after
a backward with no clipping in between, and clips that run on still-scaled AMP gradients.

Calls into the file's own functions and methods are followed through summaries, so a
`loss.backward()` in one method and `self.optimizer.step()` in another method of the same
class are seen together, and a helper that clips counts as clipping.

It terminates by construction: which function each call reaches is worked out once for the
whole file, as a bounded fixpoint (a parameter's values come from the calls that reach its
function, which may depend on other parameters); function summaries and loop results are
memoised by their entry state, whose lattice is finite; and every step is charged to the
file's analysis budget (`ctx.budget`) as the last guard.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from gradlint.analysis import sibling_classes
from gradlint.analysis.symbols import names_read
from gradlint.analysis.symbols import parameter_roots as _parameter_roots
from gradlint.analysis.syntax import (
    FUNCTIONS, call_name, defaults, dotted, parameter_names, receiver_text, star_names, target_names,
)

if TYPE_CHECKING:
    from gradlint.analysis.symbols import Symbols
    from gradlint.context import AnalysisBudget, FileContext

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
# the clips that take the tensors to clip (a loss tensor there clips nothing: it has no `.grad`)
_TENSOR_CLIPS = {"clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "clip_grad_value", "clip_grads_with_norm_"}
_OPTIMIZER_BASES = {"torch.optim.Optimizer", "torch.optim.optimizer.Optimizer"}
_REDUCTIONS = {"mean", "sum"}
_BUILTINS = set(dir(builtins))
_MODULE_CHAIN_METHODS = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "share_memory"}
_TOKEN = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_STARRED = (ast.Starred,)
_TRY_STAR = getattr(ast, "TryStar", ast.Try)
_COMPOUND = frozenset({*FUNCTIONS, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, _TRY_STAR,
                       ast.With, ast.AsyncWith, ast.Match})
# method names whose receiver decides what the call is
_RECEIVER_METHODS = BACKWARD_METHODS | {"step", "unscale_", "clamp_", "clamp", "clip_"}


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
    # `soft_q_optimizer1`, `optim2`: a trailing index is part of the last token
    return any(t.rstrip("0123456789") in {"opt", "opts", "optim", "optims", "optimizer", "optimizers", "optimiser",
                                          "optimisers"} for t in tokens)


def looks_like_scaler_name(text: str) -> bool:
    return "scaler" in name_tokens(text.rsplit(".", 1)[-1])


def looks_like_clip_helper(text: str) -> bool:
    tokens = name_tokens(text.rsplit(".", 1)[-1])
    return "clip" in tokens and any(t.startswith("grad") or t == "norm" for t in tokens)


def arguments(call: ast.Call) -> list[tuple[str | None, ast.expr, bool]]:
    """A call's arguments in source order as (keyword or None, value, starred): `*xs` and
    `**kw` are starred with their inner expression as the value."""
    found = [(None, a.value, True) if type(a) in _STARRED else (None, a, False) for a in call.args]
    if call.keywords:
        found += [(k.arg, k.value, k.arg is None) for k in call.keywords]
        if call.args:  # `f(a=1, *b)` is legal: order by position
            found.sort(key=lambda item: (item[1].lineno, item[1].col_offset))
    return found


def has_arguments(call: ast.Call) -> bool:
    return bool(call.args or call.keywords)


def first_argument(call: ast.Call) -> ast.expr | None:
    """The value of the first argument in source order (keyword or not)."""
    found = arguments(call)
    return found[0][1] if found else None


# --------------------------------------------------------------------------------------------
# The skeleton


@dataclass(eq=False, repr=False)
class Event:
    kind: str  # backward | step | clip | unscale | call
    call: ast.Call
    stmt: ast.stmt | None  # the simple statement holding the call (None in a compound header)
    anchor: ast.stmt  # the statement holding the call (a compound one for `if opt.step():`)
    function: "FunctionInfo"
    in_closure: bool = False
    receiver: str | None = None  # optimizer/scaler text, callee text
    optimizer: ast.expr | None = None  # the optimizer expression a step/unscale names
    scaled: bool = False  # backward of `scaler.scale(loss)`
    clip_roots: frozenset[str] = frozenset({"*"})
    in_loop: bool = False  # inside a loop of its function (a module-level step outside any is a demo)
    wrapper: bool = False  # `optimizer.step_and_update_lr()`: a step only if the receiver's class steps


@dataclass(eq=False)
class Branch:
    """One of `arms` runs. With `tests` (an `if/elif` ladder: one test per arm but the last, the
    `else`), test i runs after tests 0..i-1, and arm i after test i; without, every arm starts
    from the same state (`match`)."""

    arms: list["Block"]
    tests: list["Block"] = field(default_factory=list)


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

    value: ast.expr
    function: "FunctionInfo"
    anchor: ast.stmt | None = None  # the statement the value is written in

    @property
    def constructed(self) -> ast.Call | None:
        """The constructor call, seen through `.to(device)`, `.cuda()`, `.float()` chains."""
        value = self.value
        while (
            type(value) is ast.Call
            and type(value.func) is ast.Attribute
            and value.func.attr in _MODULE_CHAIN_METHODS
            and type(value.func.value) is ast.Call
        ):
            value = value.func.value
        return value if type(value) is ast.Call else None

    def call_name(self, symbols: "Symbols") -> str | None:
        """The qualified name of the constructor, through the imports where the value is written."""
        call = self.constructed
        return symbols.resolve_text(dotted(call.func), self.function.node) if call is not None else None


@dataclass(eq=False, repr=False)
class FunctionInfo:
    name: str
    class_name: str | None
    node: ast.FunctionDef | ast.AsyncFunctionDef | None  # None for the module's script code
    parent: "FunctionInfo | None" = None
    body: Block = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    defaults: dict[str, ast.expr] = field(default_factory=dict)  # parameter -> its default
    locals: set[str] = field(default_factory=set)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    call_events: list[Event] = field(default_factory=list)
    event_kinds: set[str] = field(default_factory=set)
    backwards: list[Event] = field(default_factory=list)
    # `q_next[mask] = target_net(s)`: values stored into elements of a name (read by the loss trace)
    element_bindings: dict[str, list[ast.expr]] = field(default_factory=dict)


@dataclass(eq=False)
class ClassInfo:
    name: str
    bases: list[str]
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    attributes: dict[str, list[Binding]] = field(default_factory=dict)
    # what the body calls (the callee expressions) and where (the scope of the imports);
    # their qualified names are worked out only when asked (`recurrent_model`)
    called: list[tuple[ast.expr, ast.AST | None]] = field(default_factory=list)
    handwritten_recurrence: bool = False


def known_function_names(symbols: "Symbols") -> set[str]:
    """Names of the file's functions and methods, nested ones included: a call to one of these
    is followed into the file's own code."""
    names = set(symbols.functions)
    for index in symbols.classes.values():
        names.update(index.methods)
    for inner in symbols.nested.values():
        names.update(name for name, node in inner.items() if type(node) in FUNCTIONS)
    return names


# --------------------------------------------------------------------------------------------
# Building the skeleton: one walk over the file's statements


class _Builder:
    def __init__(self, symbols: "Symbols", budget: "AnalysisBudget") -> None:
        self.symbols = symbols
        self.budget = budget
        self.known_functions = known_function_names(symbols)
        self.module = FunctionInfo("<module>", None, None)
        self.functions: list[FunctionInfo] = []
        self.classes: dict[str, ClassInfo] = {}
        self.current_statement: ast.stmt | None = None
        # `output, hidden = rnn(x, hidden)` in a loop: callee text -> (the state fed back, statement)
        self.fed_back: dict[str, tuple[str, ast.stmt]] = {}

    def build(self, tree: ast.Module) -> None:
        self.module.body = self.block(tree.body, self.module, None, False)

    def resolve(self, text: str | None, func: FunctionInfo) -> str | None:
        return self.symbols.resolve_text(text, func.node)

    # statements ---------------------------------------------------------------------------

    def block(self, body: list[ast.stmt], func: FunctionInfo, cls: ClassInfo | None, in_loop: bool) -> Block:
        items: Block = []
        for stmt in body:
            items.extend(self.statement(stmt, func, cls, in_loop))
        return items

    def statement(self, stmt: ast.stmt, func: FunctionInfo, cls: ClassInfo | None, in_loop: bool) -> Block:
        self.budget.spend()
        kind = type(stmt)
        if kind not in _COMPOUND:
            return self.simple_statement(stmt, func, cls, in_loop)
        if kind in FUNCTIONS:
            self.function(stmt, func, cls)  # type: ignore[arg-type]
            return []
        if kind is ast.ClassDef:
            self.class_def(stmt, func)  # type: ignore[arg-type]
            return []
        if kind is ast.If:
            return self.if_statement(stmt, func, cls, in_loop)  # type: ignore[arg-type]
        if kind is ast.For or kind is ast.AsyncFor or kind is ast.While:
            if kind is ast.While:
                items = self.events(stmt.test, None, func, cls, stmt, True)  # type: ignore[attr-defined]
            else:
                items = self.events(stmt.iter, None, func, cls, stmt, in_loop)  # type: ignore[attr-defined]
                func.locals.update(target_names(stmt.target))  # type: ignore[attr-defined]
                self.bind_targets(stmt.target, stmt.iter, func, cls, loop_variable=True)  # type: ignore[attr-defined]
            body = self.block(stmt.body, func, cls, True)  # type: ignore[attr-defined]
            orelse = self.block(stmt.orelse, func, cls, in_loop)  # type: ignore[attr-defined]
            items.append(Loop(body, orelse))
            return items
        if kind is ast.Try or kind is _TRY_STAR:
            return [
                Try(
                    self.block(stmt.body, func, cls, in_loop),  # type: ignore[attr-defined]
                    [self.block(h.body, func, cls, in_loop) for h in stmt.handlers],  # type: ignore[attr-defined]
                    self.block(stmt.orelse, func, cls, in_loop),  # type: ignore[attr-defined]
                    self.block(stmt.finalbody, func, cls, in_loop),  # type: ignore[attr-defined]
                )
            ]
        if kind is ast.With or kind is ast.AsyncWith:
            items = []
            for item in stmt.items:  # type: ignore[attr-defined]
                items.extend(self.events(item.context_expr, None, func, cls, stmt, in_loop))
                if item.optional_vars is not None:
                    func.locals.update(target_names(item.optional_vars))
            items.extend(self.block(stmt.body, func, cls, in_loop))  # type: ignore[attr-defined]
            return items
        if kind is ast.Match:
            items = self.events(stmt.subject, None, func, cls, stmt, in_loop)  # type: ignore[attr-defined]
            arms = [self.block(case.body, func, cls, in_loop) for case in stmt.cases]  # type: ignore[attr-defined]
            items.append(Branch([*arms, []]))
            return items
        return []

    def if_statement(self, stmt: ast.If, func: FunctionInfo, cls: ClassInfo | None, in_loop: bool) -> Block:
        """`if/elif/.../else` as one branch with a test and an arm per block, read in a loop: a
        ladder of a thousand `elif`s costs no recursion here or in the flow pass."""
        tests = [self.events(stmt.test, None, func, cls, stmt, in_loop)]
        arms = [self.block(stmt.body, func, cls, in_loop)]
        orelse = stmt.orelse
        while len(orelse) == 1 and type(orelse[0]) is ast.If:
            inner = orelse[0]
            self.budget.spend()
            tests.append(self.events(inner.test, None, func, cls, inner, in_loop))
            arms.append(self.block(inner.body, func, cls, in_loop))
            orelse = inner.orelse
        arms.append(self.block(orelse, func, cls, in_loop))
        return [Branch(arms, tests)]

    def simple_statement(self, stmt: ast.stmt, func: FunctionInfo, cls: ClassInfo | None, in_loop: bool) -> Block:
        kind = type(stmt)
        if kind is ast.Import or kind is ast.ImportFrom:
            return []  # the symbol layer holds the imports of every scope
        self.current_statement = stmt
        items = self.events(stmt, stmt, func, cls, stmt, in_loop)
        if kind is ast.Assign:
            for target in stmt.targets:  # type: ignore[attr-defined]
                self.bind_targets(target, stmt.value, func, cls)  # type: ignore[attr-defined]
                if in_loop and cls is not None:
                    self.check_recurrence(target, stmt.value, cls)  # type: ignore[attr-defined]
                if in_loop:
                    self.check_fed_back(target, stmt.value, stmt)  # type: ignore[attr-defined]
        elif (kind is ast.AnnAssign or kind is ast.AugAssign) and stmt.value is not None:  # type: ignore[attr-defined]
            self.bind_targets(stmt.target, stmt.value, func, cls)  # type: ignore[attr-defined]
            if kind is ast.AugAssign and in_loop and cls is not None:
                self.check_recurrence(stmt.target, stmt.value, cls)  # type: ignore[attr-defined]
        if kind is ast.Return or kind is ast.Raise:
            items.append(Jump("return"))
        elif kind is ast.Break:
            items.append(Jump("break"))
        elif kind is ast.Continue:
            items.append(Jump("continue"))
        return items

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, outer: FunctionInfo,
                 cls: ClassInfo | None) -> None:
        info = FunctionInfo(node.name, cls.name if cls else None, node,
                            parent=None if outer is self.module else outer)
        info.params = parameter_names(node)
        info.defaults = defaults(node)
        info.locals.update(info.params)
        info.locals.update(star_names(node))
        if cls is not None and outer is self.module:
            cls.methods[info.name] = info
        else:
            outer.locals.add(info.name)
        self.functions.append(info)
        info.body = self.block(node.body, info, cls, False)

    def class_def(self, node: ast.ClassDef, outer: FunctionInfo) -> None:
        bases = [self.resolve(dotted(base), outer) or "" for base in node.bases]
        info = ClassInfo(node.name, bases)
        self.classes.setdefault(info.name, info)
        for stmt in node.body:
            if type(stmt) in FUNCTIONS:
                self.function(stmt, self.module, info)  # type: ignore[arg-type]
            else:
                self.budget.spend()
                for call, _ in self.symbols.calls(stmt):
                    info.called.append((call.func, outer.node))

    # bindings -----------------------------------------------------------------------------

    def bind_targets(self, target: ast.expr, value: ast.expr, func: FunctionInfo, cls: ClassInfo | None,
                     loop_variable: bool = False) -> None:
        kind = type(target)
        if kind is ast.Tuple or kind is ast.List:
            elements = [e.value if type(e) in _STARRED else e for e in target.elts]  # type: ignore[attr-defined]
            # `model, opt = accelerator.prepare(model, opt)`: bind each name to its argument
            if type(value) is ast.Call and len(value.args) + len(value.keywords) == len(elements):
                for element, (_, arg, _) in zip(elements, arguments(value)):
                    self.bind_targets(element, arg, func, cls)
            elif type(value) in (ast.Tuple, ast.List) and len(value.elts) == len(elements):  # type: ignore[attr-defined]
                for element, item in zip(elements, value.elts):  # type: ignore[attr-defined]
                    self.bind_targets(element, item.value if type(item) in _STARRED else item, func, cls)
            else:
                for element in elements:
                    self.bind_targets(element, value, func, cls, loop_variable=True)
            return
        if loop_variable:  # `for opt in optimizers` - the element of a collection, not the collection
            return
        binding = Binding(value, func, self.current_statement)
        if kind is ast.Name:
            func.locals.add(target.id)  # type: ignore[attr-defined]
            func.bindings.setdefault(target.id, []).append(binding)  # type: ignore[attr-defined]
        elif kind is ast.Attribute and type(target.value) is ast.Name:  # type: ignore[attr-defined]
            if target.value.id == "self" and cls is not None:  # type: ignore[attr-defined]
                cls.attributes.setdefault(target.attr, []).append(binding)  # type: ignore[attr-defined]
        elif kind is ast.Subscript and type(target.value) is ast.Name:  # type: ignore[attr-defined]
            func.element_bindings.setdefault(target.value.id, []).append(value)  # type: ignore[attr-defined]

    def check_recurrence(self, target: ast.expr, value: ast.expr, cls: ClassInfo) -> None:
        """`h = tanh(self.W(h) + self.U(x[t]))` inside a loop: a hand-written recurrence."""
        if type(target) is not ast.Name:
            return
        if target.id not in names_read(value):
            return
        for call, _ in self.symbols.calls(value):
            text = dotted(call.func) or ""
            if text.startswith("self.") or text.rsplit(".", 1)[-1] in {"matmul", "mm", "bmm", "linear", "addmm"}:
                cls.handwritten_recurrence = True
                return
        if any(type(node) is ast.BinOp and type(node.op) is ast.MatMult for node in ast.walk(value)):
            cls.handwritten_recurrence = True

    def check_fed_back(self, target: ast.expr, value: ast.expr, stmt: ast.stmt) -> None:
        """`output, hidden = rnn(x, hidden)` in a loop: a model stepped through time by hand,
        its state (an argument after the first) fed back into the next call."""
        if type(target) is not ast.Tuple or type(value) is not ast.Call or len(value.args) < 2:
            return
        callee = dotted(value.func)
        if not callee:
            return
        outputs = set(target_names(target))
        for arg in value.args[1:]:
            if type(arg) is ast.Name and arg.id in outputs:
                self.fed_back.setdefault(callee, (arg.id, stmt))
                return

    # events -------------------------------------------------------------------------------

    def events(self, node: ast.AST, stmt: ast.stmt | None, func: FunctionInfo, cls: ClassInfo | None,
               anchor: ast.stmt, in_loop: bool = False) -> Block:
        items: Block = []
        for call, in_closure in self.symbols.calls(node):
            if cls is not None:
                cls.called.append((call.func, func.node))
            event = self.classify(call, func)
            if event is None:
                continue
            self.budget.spend()
            kind, receiver, optimizer, scaled, roots, *wrapper = event
            ev = Event(kind, call, stmt, anchor, func, in_closure, receiver, optimizer, scaled, roots, in_loop,
                       bool(wrapper))
            func.event_kinds.add(kind)
            if kind == "call":
                func.call_events.append(ev)
            elif kind == "backward":
                func.backwards.append(ev)
            items.append(ev)
        return items

    def classify(self, call: ast.Call, func_info: FunctionInfo):
        """What a call is to the analysis (None for most calls, which is decided from the
        callee's last name before any text is built)."""
        func = call.func
        kind = type(func)
        name = None
        if kind is ast.Attribute:
            last = func.attr  # type: ignore[union-attr]
            if last in _RECEIVER_METHODS:
                found = self.classify_method(call, func)  # type: ignore[arg-type]
                if found is not None:
                    return found or None
        elif kind is ast.Name:
            last = func.id  # type: ignore[union-attr]
        else:
            name = call_name(call)  # `self.fns[i](x)` -> `self.fns`
            if name is None:
                return None
            last = name.rsplit(".", 1)[-1]
        if last in CLIP_FUNCTIONS:
            event = "clip"
        # resolving only renames the head, so only a bare name can be an alias of a clip
        # (`from torch.nn.utils import clip_grad_norm_ as cgn`)
        elif (kind is ast.Name or (name is not None and "." not in name)) and (
                self.resolve(last, func_info) or last).rsplit(".", 1)[-1] in CLIP_FUNCTIONS:
            event = "clip"
        elif last in self.known_functions:
            event = "call"
        elif "clip" in last.lower() and looks_like_clip_helper(last):
            event = "clip"
        elif kind is ast.Attribute and "step" in name_tokens(last) and not has_arguments(call):
            # `optimizer.step_and_update_lr()`: a wrapper's step, confirmed from its class later
            owner = func.value  # type: ignore[union-attr]
            text = receiver_text(owner)
            return ("step", text, owner, False, frozenset(), True) if text else None
        else:
            return None
        name = name or call_name(call)  # `self.agents[i].update` -> `self.agents.update`
        if name is None:
            return None
        if event == "call":
            return ("call", name, None, False, frozenset())
        return ("clip", name, None, False, self.clip_roots(call))

    def classify_method(self, call: ast.Call, func: ast.Attribute):
        """`x.backward()`, `opt.step()`, `scaler.unscale_(opt)`, `p.grad.clamp_()`: the event;
        False for a call that is none of them for sure (`env.step(action)`); None to go on
        with the callee's name."""
        attr = func.attr
        owner = func.value
        owner_text = receiver_text(owner)
        if attr in BACKWARD_METHODS:
            scaled = (
                type(owner) is ast.Call
                and type(owner.func) is ast.Attribute
                and owner.func.attr == "scale"
                and looks_like_scaler_name(receiver_text(owner.func.value) or "")
            )
            return ("backward", owner_text, None, scaled, frozenset())
        if attr == "step" and owner_text:
            if any(k.arg == "closure" for k in call.keywords):
                return False
            if looks_like_scaler_name(owner_text) and has_arguments(call):
                return ("step", owner_text, first_argument(call), False, frozenset())
            if not has_arguments(call):  # whether the receiver is an optimizer is decided later
                return ("step", owner_text, owner, False, frozenset())
            return False  # `env.step(action)`, `optimizer.step(closure)` (backward runs inside)
        if attr == "unscale_" and owner_text and looks_like_scaler_name(owner_text):
            return ("unscale", owner_text, first_argument(call), False, frozenset())
        if attr in {"clamp_", "clamp", "clip_"} and owner_text and ".grad" in f".{owner_text}":
            return ("clip", owner_text, None, False, frozenset({"*"}))
        return None

    def clip_roots(self, call: ast.Call) -> frozenset[str]:
        """The models a clip call covers: `clip_grad_norm_(self.actor.parameters(), ..)` -> {self.actor}."""
        first = first_argument(call)
        if first is None:
            return frozenset({"*"})
        roots = _parameter_roots(self.symbols, first)
        return frozenset(roots) if roots else frozenset({"*"})


# --------------------------------------------------------------------------------------------
# Facts and the flow pass


@dataclass(frozen=True)
class State:
    backward: bool = False  # a backward may have run since the last clip
    clipped: frozenset = frozenset()  # what has been clipped since the last backward ('*' = all)
    scaled: bool = False  # that backward ran on AMP-scaled loss
    unscaled: bool = False  # scaler.unscale_ ran since
    last_backward: Event | None = field(default=None, compare=False, hash=False)
    noop_clip: Event | None = field(default=None, compare=False, hash=False)  # a clip of the loss since


def join(*states: State | None) -> State | None:
    """The state after paths meet: a flag holds if it holds on one path, clipped models are
    united, and the first backward named is kept."""
    joined: State | None = None
    for state in states:
        if state is None or state is joined:
            continue
        if joined is None:
            joined = state
        elif state != joined or (joined.last_backward is None and state.last_backward is not None):
            joined = State(joined.backward or state.backward, joined.clipped | state.clipped,
                           joined.scaled or state.scaled, joined.unscaled or state.unscaled,
                           joined.last_backward or state.last_backward, joined.noop_clip or state.noop_clip)
    return joined


@dataclass(eq=False, repr=False)
class Finding:
    kind: str  # missing_clip | clip_before_unscale
    event: Event
    backward: Event | None
    scaled: bool = False
    unscaled: bool = False
    noop_clip: Event | None = None  # a clip between backward and step that clips nothing (the loss)


# The loop fixpoint iterates at most this often (the lattice of a State is finite and the loop
# head only grows; this is a guard on top).
LOOP_ROUNDS = 6
# Calls are followed this many levels deep (a summary per function and entry state); deeper
# calls are taken as doing nothing to the gradients, so that a chain of hundreds of helpers
# neither recurses past Python's limit nor costs more than its length.
MAX_CALL_DEPTH = 32


class _Frame:
    """The jumps of one function body being interpreted, and the loops already interpreted
    from a given entry state (their results do not change within one interpretation)."""

    def __init__(self) -> None:
        self.returns: list[State] = []
        self.breaks: list[list[State]] = []
        self.continues: list[list[State]] = []
        self.loops: dict[tuple, tuple] = {}


class TrainingAnalysis:
    """Optimizers, clipping and AMP order for one file."""

    def __init__(self, ctx: "FileContext") -> None:
        self.symbols = ctx.symbols
        self.budget = ctx.budget
        self.path = ctx.source.path
        self.root = ctx.settings.root
        builder = _Builder(self.symbols, self.budget)
        builder.build(ctx.tree)
        self.module = builder.module
        self.functions = builder.functions
        self.classes = builder.classes
        self.fed_back = builder.fed_back
        self._named: dict[str, list[FunctionInfo]] = {}  # name -> the functions of that name, in order
        for func in self.functions:
            self._named.setdefault(func.name, []).append(func)
        self.findings: dict[tuple[str, int], Finding] = {}
        self._summaries: dict[tuple[int, bool, bool, frozenset], State | None] = {}
        self._in_progress: set[int] = set()
        self._recurrent_classes: dict[str, Recurrent | None] = {}
        self._noop_clips: dict[int, str | None] = {}
        self._siblings: dict[str, object] = {}
        self._callee: dict[int, FunctionInfo | None] = {}  # id(call event) -> the function it reaches
        self._callers: dict[int, list[tuple[FunctionInfo, Event]]] = {}  # id(function) -> its calls
        self._arguments: dict[tuple[int, str], list[Binding]] = {}
        self._read_arguments = False
        self._resolve_calls()
        self._run()

    def release(self) -> None:
        """Unlink the skeleton (events and bindings point back at their function), so that
        reference counting frees it and the trees it holds without the cyclic collector."""
        methods = [m for c in self.classes.values() for m in c.methods.values()]
        for func in [self.module, *self.functions, *methods]:
            func.body.clear()
            func.bindings.clear()
            func.call_events.clear()
            func.backwards.clear()
            func.element_bindings.clear()
            func.parent = None
        self.findings.clear()
        self._callee.clear()
        self._callers.clear()
        self._arguments.clear()
        self._summaries.clear()
        self._named.clear()
        self._siblings.clear()
        self._noop_clips.clear()
        self.fed_back.clear()
        self.__dict__.pop("_step_facts", None)

    # public -------------------------------------------------------------------------------

    @property
    def missing_clip(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind == "missing_clip"]

    @property
    def clip_before_unscale(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind == "clip_before_unscale"]

    # the call graph -----------------------------------------------------------------------

    def _resolve_calls(self) -> None:
        """Which of the file's functions each call event reaches, for the whole file at once.

        `agent.update()` inside `def run(agent)` depends on what the callers of `run` pass, and
        finding those callers means resolving their calls in turn. Instead of recursing (which
        is exponential on files whose functions pass their parameters around), the answers are
        computed in rounds: each round resolves the calls whose answer read a parameter's
        values, with those values taken from the previous round's call graph. An answer that
        depends on a chain of k parameters is right after k rounds; the rounds stop when
        nothing changes, and at most one round per function of the file (the longest chain
        without a cycle); a cycle of parameters that never settles keeps its last answer.
        """
        pending = [(caller, ev) for caller in (self.module, *self.functions) for ev in caller.call_events]
        seen: set[tuple] = set()
        for _ in range(len(self.functions) + 2):
            answers: dict[int, FunctionInfo | None] = {}
            dependent = []
            for caller, ev in pending:
                self.budget.spend()
                self._read_arguments = False
                answers[id(ev)] = self.resolve_function(ev.receiver or "", caller)
                if self._read_arguments:
                    dependent.append((caller, ev))
            self._callee.update(answers)
            self._index_callers()
            # the rounds are deterministic: a table seen before would repeat forever
            table = tuple((id(ev), id(self._callee[id(ev)])) for _, ev in dependent)
            if not dependent or table in seen:
                break
            seen.add(table)
            pending = dependent

    def _index_callers(self) -> None:
        self._callers = {}
        self._arguments = {}
        for caller in (self.module, *self.functions):
            for ev in caller.call_events:
                callee = self._callee.get(id(ev))
                if callee is not None:
                    self._callers.setdefault(id(callee), []).append((caller, ev))

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
        self.budget.spend(len(block))
        for item in block:
            if state is None:
                return None
            state = self._item(item, state, frame)
        return state

    def _item(self, item: Item, state: State, frame: _Frame) -> State | None:
        if isinstance(item, Event):
            return self._event(item, state)
        if isinstance(item, Branch):
            if not item.tests:
                return join(*(self._block(arm, state, frame) for arm in item.arms))
            outs = []
            current: State | None = state
            for test, arm in zip(item.tests, item.arms):
                current = self._block(test, current, frame)
                outs.append(self._block(arm, current, frame))
            outs.append(self._block(item.arms[-1], current, frame))
            return join(*outs)
        if isinstance(item, Loop):
            return self._loop(item, state, frame)
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

    def _loop(self, item: Loop, state: State, frame: _Frame) -> State | None:
        """Iterate the body until the loop head stops changing. Memoised by entry state, so
        that nested loops cost the sum and not the product of their iterations; the jumps the
        loop sends out of itself (returns; a break or continue in its `else`) are replayed."""
        key = (id(item), state, id(state.last_backward))
        outer_breaks = frame.breaks[-1] if frame.breaks else None
        outer_continues = frame.continues[-1] if frame.continues else None
        known = frame.loops.get(key)
        if known is not None:
            result, returns, breaks, continues = known
            frame.returns.extend(returns)
            if outer_breaks is not None:
                outer_breaks.extend(breaks)
            if outer_continues is not None:
                outer_continues.extend(continues)
            return result
        marks = (len(frame.returns), len(outer_breaks or ()), len(outer_continues or ()))
        frame.breaks.append([])
        head: State | None = state
        for _ in range(LOOP_ROUNDS):
            frame.continues.append([])
            out = self._block(item.body, head, frame)
            new_head = join(state, out, *frame.continues.pop())
            if new_head == head:
                break
            head = new_head
        breaks = frame.breaks.pop()
        result = join(self._block(item.orelse, head, frame), *breaks)
        frame.loops[key] = (result, frame.returns[marks[0]:],
                            (outer_breaks or [])[marks[1]:], (outer_continues or [])[marks[2]:])
        return result

    def _event(self, ev: Event, state: State) -> State:
        if ev.kind == "backward":
            return State(backward=True, scaled=ev.scaled, last_backward=ev)
        if ev.kind == "clip":
            if self.clip_clips_nothing(ev):
                return State(state.backward, state.clipped, state.scaled, state.unscaled, state.last_backward, ev)
            if state.backward and state.scaled and not state.unscaled:
                self._add(Finding("clip_before_unscale", ev, state.last_backward, True, False))
            return State(state.backward, state.clipped | ev.clip_roots, state.scaled, state.unscaled,
                         state.last_backward, state.noop_clip)
        if ev.kind == "unscale":
            return State(state.backward, state.clipped, state.scaled, True, state.last_backward, state.noop_clip)
        if ev.kind == "step":
            if state.backward and self.is_optimizer_step(ev) and not self._covered(ev, state.clipped):
                self._add(Finding("missing_clip", ev, state.last_backward, state.scaled, state.unscaled,
                                  state.noop_clip if state.backward else None))
            return state
        if ev.kind == "call":
            return self._call(ev, state)
        return state

    def _call(self, ev: Event, state: State) -> State:
        callee = self._callee.get(id(ev))
        if callee is None:
            return state
        # the clip state goes in: `backprop()` clips, then `apply_update()` steps
        key = (id(callee), state.backward, state.scaled, state.clipped)
        if id(callee) in self._in_progress or len(self._in_progress) >= MAX_CALL_DEPTH:
            return state
        if key not in self._summaries:
            self._in_progress.add(id(callee))
            try:
                entry = State(backward=state.backward, clipped=state.clipped, scaled=state.scaled,
                              last_backward=state.last_backward, noop_clip=state.noop_clip)
                self._summaries[key] = self._analyze(callee, entry)
            finally:
                self._in_progress.discard(id(callee))
        out = self._summaries[key]
        if out is None:
            return state
        if "backward" in callee.event_kinds:
            return out
        return State(out.backward, out.clipped | state.clipped, out.scaled,
                     out.unscaled or state.unscaled, out.last_backward or state.last_backward,
                     out.noop_clip or state.noop_clip)

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
        roots = _parameter_roots(self.symbols, params[0])
        return not roots or bool(roots & clipped)

    # resolution ---------------------------------------------------------------------------

    def is_optimizer_step(self, step: Event) -> bool:
        """`scaler.step(opt)`, or `X.step()` where X was built by an optimizer class or is named
        like one (`optimizer`, `actor_optim`, `opt_d`); never `env`/`scheduler`/`self`."""
        if step.wrapper:
            return self.wrapper_step(step) is not None
        if has_arguments(step.call):
            return True  # only scaler steps with an argument are recorded
        text = step.receiver or ""
        return looks_like_optimizer_name(text) or self.optimizer_construction(step) is not None

    def wrapper_step(self, step: Event) -> tuple[str, str] | None:
        """(class, inner optimizer attribute) when `opt.step_and_update_lr()` calls a method of a
        project class that steps the optimizer it holds (`self._optimizer.step()`)."""
        key = f"wrapper:{id(step)}"
        if key in self._siblings:
            return self._siblings[key]  # type: ignore[return-value]
        self._siblings[key] = None
        method = step.call.func.attr  # type: ignore[attr-defined]
        for binding in self._value_bindings(step.receiver or "", step.function):
            qualified = binding.call_name(self.symbols) if binding.constructed is not None else None
            found = self.sibling_class(qualified) if qualified else None
            if found is None:
                continue
            for cls in sibling_classes.class_chain(found):
                if method in cls.stepping_methods:
                    self._siblings[key] = (found.name, cls.stepping_methods[method])
                    return self._siblings[key]  # type: ignore[return-value]
        return None

    def sibling_class(self, qualified: str) -> "sibling_classes.SiblingClass | None":
        """The class of a sibling module a qualified name (or a star-imported bare name) names."""
        if qualified in self.classes or not qualified:
            return None
        key = f"class:{qualified}"
        if key not in self._siblings:
            self.budget.spend()
            star = self.symbols.imports.star_modules if "." not in qualified else []
            self._siblings[key] = sibling_classes.find_class(self.path, self.root, qualified, star)
        return self._siblings[key]  # type: ignore[return-value]

    def _value_bindings(self, text: str, context: FunctionInfo) -> list[Binding]:
        """The bindings of a name, through plain aliases (`opt = self.optimizer`)."""
        found, todo, seen = [], [(text, context)], set()
        while todo:
            name, where = todo.pop()
            if (name, id(where)) in seen or len(seen) > 32:
                continue
            seen.add((name, id(where)))
            for binding in self.lookup(name, where):
                self.budget.spend()
                if type(binding.value) in (ast.Name, ast.Attribute):
                    alias = receiver_text(binding.value)
                    if alias:
                        todo.append((alias, binding.function))
                else:
                    found.append(binding)
        return found

    def is_optimizer_constructor(self, qualified: str) -> bool:
        """A `torch.optim` class (or an imported optimizer class), or a class of the project that
        derives from one (`class SharedAdam(torch.optim.Adam)`, `(optim.Optimizer)`)."""
        if is_optimizer_class(qualified):
            return True
        last = qualified.rsplit(".", 1)[-1]
        if qualified == last and last in self.classes:
            return any(is_optimizer_class(b) or b in _OPTIMIZER_BASES for c in self._class_chain(last) for b in c.bases)
        found = self.sibling_class(qualified) if qualified and qualified[0].isalpha() else None
        return found is not None and sibling_classes.is_optimizer(found)

    def clip_clips_nothing(self, clip: Event) -> str | None:
        """Why a clip call clips nothing, if it does: its first argument is the loss tensor (the
        receiver of a `.backward()` in its function, or a name bound to a loss expression) -
        a tensor with no `.grad`. A first argument that cannot be resolved still counts as a clip."""
        key = id(clip)
        if key in self._noop_clips:
            return self._noop_clips[key]
        self._noop_clips[key] = None
        name = (clip.receiver or "").rsplit(".", 1)[-1]
        if name not in _TENSOR_CLIPS and (self.resolve_text_tail(clip) not in _TENSOR_CLIPS):
            return None
        first = first_argument(clip.call)
        text = receiver_text(first) if type(first) in (ast.Name, ast.Attribute) else None
        if not text:
            return None
        reason = None
        for backward in clip.function.backwards:
            if backward.receiver == text:
                reason = f"`{text}` is the loss passed to `.backward()`"
                break
        if reason is None:
            bindings = self.lookup(text, clip.function)
            if bindings and all(_is_loss_expression(b.value, self.symbols) for b in bindings):
                reason = f"`{text}` is bound to a loss expression"
        self._noop_clips[key] = reason
        return reason

    def resolve_text_tail(self, clip: Event) -> str:
        return (self.symbols.resolve_text(clip.receiver, clip.function.node) or "").rsplit(".", 1)[-1]

    def resolve_function(self, text: str, context: FunctionInfo) -> FunctionInfo | None:
        """The file's function a call spelled `text` inside `context` reaches, if one is seen.
        Reads the call graph of the previous round (see `_resolve_calls`), never recurses."""
        parts = text.split(".")
        if len(parts) == 1:
            named = self._named.get(text, ())
            scope: FunctionInfo | None = context
            while scope is not None:
                for func in named:
                    if func.parent is scope and func.class_name is None:
                        return func
                scope = scope.parent
            for func in named:
                if func.parent is None and func.class_name is None:
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
        `train_epoch(model, data, optimizer)` binds `optimizer` to the caller's `optimizer`.
        The callers come from the current call graph; the answer is memoised."""
        self._read_arguments = True
        key = (id(func), param)
        found = self._arguments.get(key)
        if found is None:
            found = self._arguments[key] = self._collect_arguments(func, param)
        return found

    def _collect_arguments(self, func: FunctionInfo, param: str) -> list[Binding]:
        index = func.params.index(param)
        found = []
        for caller, event in self._callers.get(id(func), ()):
            self.budget.spend()
            position = index
            if func.class_name and func.params[:1] in (["self"], ["cls"]) and "." in (event.receiver or ""):
                position -= 1
            value = None
            for i, (keyword, arg, starred) in enumerate(arguments(event.call)):
                if keyword is not None:
                    if keyword == param:
                        value = arg
                elif starred:
                    break
                elif i == position:
                    value = arg
            if value is not None:
                found.append(Binding(value, caller, event.anchor))
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

    def optimizer_construction(self, step: Event) -> tuple[ast.Call, Binding] | None:
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
                self.budget.spend()
                value = binding.constructed or binding.value
                if type(value) is ast.Call:
                    if self.is_optimizer_constructor(binding.call_name(self.symbols) or "") and has_arguments(value):
                        return value, binding
                    inner = self._wrapped_optimizer(value, binding)
                    if inner is not None:  # `ScheduledOptim(optim.Adam(params), ...)`
                        return inner, binding
                elif type(value) in (ast.Name, ast.Attribute):
                    alias = receiver_text(value)
                    if alias:
                        todo.append((alias, binding.function))
        return None

    def _wrapped_optimizer(self, call: ast.Call, binding: Binding) -> ast.Call | None:
        """The optimizer built inline as the first argument of a wrapper's construction."""
        first = first_argument(call)
        wrapper = (dotted(call.func) or "").rsplit(".", 1)[-1]
        tokens = name_tokens(wrapper)
        if any(t.startswith("sched") or t == "lr" for t in tokens) and not any(t.startswith("optim") for t in tokens):
            return None  # `StepLR(Adam(...))` is a scheduler; `ScheduledOptim(Adam(...))` wraps an optimizer
        if type(first) is ast.Call and has_arguments(first):
            qualified = self.symbols.resolve_text(dotted(first.func), binding.function.node) or ""
            if is_optimizer_class(qualified):
                return first
        return None

    def optimizer_params(self, step: Event) -> tuple[ast.expr, Binding] | None:
        built = self.optimizer_construction(step)
        if built is None:
            return None
        call, binding = built
        for keyword in call.keywords:
            if keyword.arg == "params":
                return keyword.value, binding
        keyword, first, starred = arguments(call)[0]
        if keyword is None and not starred:
            return first, binding
        return None

    def params_valid_at(self, params: ast.expr, binding: Binding, step: Event) -> bool:
        """Can the optimizer's `params` expression be written again where the step is, meaning
        the same thing? Yes in the same function, or for `self.` in methods of one class."""
        here = step.function
        for name in names_read(params):
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

    # what the optimizer updates -----------------------------------------------------------

    def parameter_owners(self, step: Event) -> list[tuple[str, FunctionInfo]]:
        """The modules whose parameters the stepped optimizer updates, as (text, where it is
        read): `Adam(model.parameters())` -> model; through names and list sums too
        (`params = list(agent.parameters()) + list(mixer.parameters()); RMSprop(params)`,
        `self.params += list(self.mixer.parameters())`)."""
        params = self.optimizer_params(step)
        if params is None:
            return []
        expr, binding = params
        found: list[tuple[str, FunctionInfo]] = []
        todo, seen = [(expr, binding.function)], set()
        while todo and len(seen) < 64:
            value, context = todo.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            self.budget.spend()
            roots = _parameter_roots(self.symbols, value)
            found.extend((root, context) for root in sorted(roots) if (root, context) not in found)
            for text in _collection_names(value, roots):
                for bound in self.lookup(text, context):
                    todo.append((bound.value, bound.function))
        return found

    def model_classes(self, step: Event) -> set[str]:
        """Names of the classes whose parameters the stepped optimizer updates, where visible."""
        found: set[str] = set()
        for root, context in self.parameter_owners(step):
            if root == "self" and context.class_name:
                found.add(context.class_name)
                continue
            for candidate in self._constructions(root, context):
                name = dotted(candidate.constructed.func) or ""  # type: ignore[union-attr]
                default = _parameter_default(name, candidate.function)
                if default is not None:  # Spinning Up: `def ddpg(env_fn, actor_critic=core.MLPActorCritic)`
                    name = dotted(default) or name
                # `networks.QNetwork` stays dotted: the project module is found through the import
                found.add(name if "." in name and name.rsplit(".", 1)[-1] not in self.classes
                          else name.rsplit(".", 1)[-1])
        return found

    def _constructions(self, root: str, context: FunctionInfo) -> list[Binding]:
        # `self.net = self.net.cuda()` is the same module again, not another construction
        candidates = [c for c in self.lookup(root, context)
                      if c.constructed is not None and not _rebinding(c.constructed)]
        if not candidates and "." in root and not root.startswith("self."):
            # `Adam(ac.pi.parameters())`: a part of the model built as `ac`
            candidates = [c for c in self.lookup(root.split(".", 1)[0], context) if c.constructed is not None]
        return candidates

    def model_constructions(self, step: Event) -> list[tuple[str, Binding | None]]:
        """(qualified class, its construction) of each module the optimizer updates; the
        construction is None for `self.parameters()` (the class the optimizer is built in)."""
        found: list[tuple[str, Binding | None]] = []
        for root, context in self.parameter_owners(step):
            if root == "self" and context.class_name:
                found.append((context.class_name, None))
                continue
            for candidate in self._constructions(root, context):
                name = dotted(candidate.constructed.func) or ""  # type: ignore[union-attr]
                default = _parameter_default(name, candidate.function)
                qualified = (self.symbols.resolve_text(dotted(default), candidate.function.node) if default is not None
                             else candidate.call_name(self.symbols)) or name
                found.append((qualified, candidate))
        return found

    # recurrence ---------------------------------------------------------------------------

    def recurrent_model(self, step: Event) -> "Recurrent | None":
        """The recurrent module the stepped optimizer updates, if one can be seen (a vanilla
        RNN or hand-written recurrence before a gated one)."""
        best: Recurrent | None = None
        for root, context in self.parameter_owners(step):
            if root == "self" and context.class_name in self.classes:  # `optim.Adam(self.parameters())`
                found = self._recurrent_class(context.class_name)  # type: ignore[arg-type]
            else:
                found = self._recurrent_value(root, context)
            if found is None and root in self.fed_back:
                state, stmt = self.fed_back[root]
                found = Recurrent(f"a hand-written recurrence: `{state}` fed back into `{root}` in a loop, "
                                  f"line {stmt.lineno}", False)
            best = _worse(best, found)
            if best is not None and best.gated is False:
                break
        return best

    def _recurrent_value(self, text: str, context: FunctionInfo) -> "Recurrent | None":
        best = None
        for binding in self._constructions(text, context):
            best = _worse(best, self._recurrent_constructor(binding.call_name(self.symbols) or ""))
        return best

    def _recurrent_constructor(self, qualified: str) -> "Recurrent | None":
        last = qualified.rsplit(".", 1)[-1]
        if qualified == last and last in self.classes:  # the file's own `class RNN(nn.Module)` first
            return self._recurrent_class(last)
        sibling = self.sibling_class(qualified)  # a star-imported `RNN` of the project is not torch's
        if sibling is not None:
            core = sibling_classes.recurrent_core(sibling)
            return Recurrent(f"{core[0]} in {sibling.name} ({self._relative(sibling.path)})", core[1]) if core else None
        if last in RECURRENT_NAMES and (qualified.startswith("torch.") or qualified == last):
            return Recurrent(f"nn.{last}", _gated(last))
        tokens = name_tokens(last)
        if "." in qualified and any(t in {"rnn", "lstm", "gru"} for t in tokens):
            gated = True if any(t in {"lstm", "gru"} for t in tokens) else None
            return Recurrent(f"{last} (imported; its name says recurrent)", gated)
        return None

    def _relative(self, path: str) -> str:
        import os

        try:
            return os.path.relpath(path, os.path.dirname(os.path.abspath(self.path))).replace(os.sep, "/")
        except ValueError:  # another drive
            return os.path.basename(path)

    def _recurrent_class(self, name: str) -> "Recurrent | None":
        if name in self._recurrent_classes:
            return self._recurrent_classes[name]
        self._recurrent_classes[name] = None  # cycles
        info = self.classes[name]
        result = None
        calls = {self.symbols.resolve_text(text, scope) or text
                 for text, scope in ((dotted(func), scope) for func, scope in info.called) if text}
        for qualified in sorted(calls) + info.bases:
            self.budget.spend()
            last = qualified.rsplit(".", 1)[-1]
            if qualified == last and last in self.classes:
                if last != name:
                    result = _worse(result, self._recurrent_class(last))
            elif last in RECURRENT_NAMES and (qualified.startswith("torch.") or qualified == last):
                result = _worse(result, Recurrent(f"nn.{last} in {name}", _gated(last)))
            elif last[:1].isupper() and not qualified.startswith("torch."):  # a class of a sibling module
                found = self._recurrent_constructor(qualified)
                if found is not None and found.gated is not None:  # a sibling class read, not a name
                    result = _worse(result, found)
            if result is not None and result.gated is False:
                break
        if info.handwritten_recurrence and (result is None or result.gated is not False):
            result = Recurrent(f"a hand-written recurrence in {name}", False)
        self._recurrent_classes[name] = result
        return result


@dataclass(frozen=True)
class Recurrent:
    """A recurrent module an optimizer updates: `nn.LSTM in CharLSTM`; gated for LSTM/GRU,
    not for a vanilla (tanh/ReLU) RNN or a hand-written recurrence, None when only a name
    says recurrent."""

    description: str
    gated: bool | None

    def __str__(self) -> str:
        return self.description


def _gated(last: str) -> bool | None:
    if last in {"LSTM", "GRU", "LSTMCell", "GRUCell"}:
        return True
    if last in {"RNN", "RNNCell"}:
        return False
    return None


def _worse(a: "Recurrent | None", b: "Recurrent | None") -> "Recurrent | None":
    """The riskier of two: vanilla (False) over unknown (None) over gated (True)."""
    if a is None or b is None:
        return a or b
    rank = {False: 0, None: 1, True: 2}
    return b if rank[b.gated] < rank[a.gated] else a


def _rebinding(call: ast.Call) -> bool:
    """`x.cuda()`, `self.net.to(device)`: a module moved, not built."""
    func = call.func
    return type(func) is ast.Attribute and func.attr in _MODULE_CHAIN_METHODS and type(func.value) is not ast.Call


def _collection_names(value: ast.expr, roots: set[str]) -> list[str]:
    """Names in a parameters expression that may hold parameter collections (`params`,
    `self.params`), other than the modules whose `.parameters()` it calls."""
    heads = {r.split(".", 1)[0] for r in roots} | {"self"}
    found = []
    for node in ast.walk(value):
        kind = type(node)
        if kind is ast.Name and node.id not in heads and node.id not in _BUILTINS:  # type: ignore[attr-defined]
            found.append(node.id)  # type: ignore[attr-defined]
        elif kind is ast.Attribute and type(node.value) is ast.Name and node.value.id == "self":  # type: ignore
            text = f"self.{node.attr}"  # type: ignore[attr-defined]
            if text not in roots and not any(r.startswith(text + ".") for r in roots):
                found.append(text)
    return found


def _parameter_default(name: str, function: FunctionInfo | None) -> ast.expr | None:
    """The default of the parameter `name` of `function` or of a function enclosing it."""
    while function is not None:
        if name in function.params:
            return function.defaults.get(name)
        function = function.parent
    return None


def _is_loss_expression(value: ast.expr, symbols: "Symbols") -> bool:
    """`F.mse_loss(q, target)`, `criterion(out, y)`, `nn.MSELoss()(a, b)`, `(x - y).pow(2).mean()`,
    `-(logp * adv).mean()`, `actor_loss + critic_loss`: a tensor computed from data, which can
    never be the parameters a clip needs. Anything mentioning parameters or gradients is not."""
    kind = type(value)
    if kind not in (ast.Call, ast.BinOp, ast.UnaryOp):
        return False
    for node in ast.walk(value):
        if type(node) is ast.Attribute and (node.attr in ("parameters", "named_parameters", "param_groups", "grad")):
            return False
        if type(node) is ast.Name and ("param" in node.id.lower() or "grad" in node.id.lower()):
            return False
    if kind is ast.UnaryOp:
        return True  # `-(logp * adv).mean()`
    if kind is ast.BinOp:  # arithmetic; a sum only of names that say loss (a list sum is parameters)
        return type(value.op) is not ast.Add or _mentions_loss(value)  # type: ignore[attr-defined]
    func = value.func  # type: ignore[attr-defined]
    if type(func) is ast.Call:  # `nn.MSELoss()(a, b)`
        return (dotted(func.func) or "").endswith("Loss")
    last = (dotted(func) or "").rsplit(".", 1)[-1]
    tokens = name_tokens(last)
    if "loss" in tokens or "criterion" in tokens:
        return True
    return type(func) is ast.Attribute and func.attr in _REDUCTIONS


def _mentions_loss(value: ast.expr) -> bool:
    """`actor_loss + critic_loss`: a sum of names that say loss."""
    return any(type(n) is ast.Name and "loss" in name_tokens(n.id) for n in ast.walk(value))
