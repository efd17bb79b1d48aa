"""What the analysis sees around one unclipped optimizer step: the facts GL101/GL103 grade
their severity and choose the clipping threshold from (the policy itself is in
`gradlint/rules/_clipping.py`).

- the loss: the expressions that build the tensor passed to `backward()`, followed through
  the names of its function and the file's own functions it calls (`loss =
  self._compute_dqn_loss(samples)`), bounded;
- what the optimizer updates: modules (and their classes), or bare tensors (`[log_alpha]`);
- where the step is: its function and class, and whether it is a one-off module-level step;
- the file: does it step an environment.

Every fact carries the text it was seen in, so a message can name it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gradlint.analysis import sibling_classes
from gradlint.analysis.syntax import FUNCTIONS, call_name, dotted, receiver_text
from gradlint.analysis.training import Event, Finding, FunctionInfo, Recurrent, first_argument, name_tokens

if TYPE_CHECKING:
    from gradlint.analysis.training import TrainingAnalysis

HUBER_FUNCTIONS = {"smooth_l1_loss", "huber_loss"}
HUBER_CLASSES = {"SmoothL1Loss", "HuberLoss"}
BINARY_LOSSES = {"binary_cross_entropy", "binary_cross_entropy_with_logits", "BCELoss", "BCEWithLogitsLoss"}
SQUARED_FUNCTIONS = {"mse_loss", "MSELoss"}
# words that say reinforcement learning when a name is made of them (not `gamma`, `ratio`,
# `entropy`, `adv`: a scheduler's gamma, a mask ratio, cross-entropy and adversarial losses)
RL_WORDS = {"reward", "rewards", "advantage", "advantages", "gae", "discount", "discounted", "returns", "logp",
            "logprob", "logprobs"}
RL_PAIRS = {("log", "prob"), ("log", "probs"), ("next", "state"), ("next", "states"), ("next", "obs"),
            ("q", "value"), ("q", "values"), ("q", "target"), ("target", "q"), ("next", "q"), ("td", "target")}
HEAD_WORDS = {"actor", "critic", "policy", "qnet", "qf", "qf1", "qf2", "q1", "q2", "dqn", "ddqn", "mixer"}
ENV_LIBRARIES = {"gym", "gymnasium", "pettingzoo", "smac", "dm_control", "mujoco_py", "procgen", "vizdoom",
                 "pybullet_envs", "ale_py", "ma_gym", "multiagent", "supersuit", "minigrid", "gym_minigrid"}
_SIZED_FACTORIES = {"zeros", "ones", "full", "randn", "rand", "empty"}
_CHAIN_METHODS = {"clone", "detach", "requires_grad_", "to", "cuda", "float", "double"}
_TENSOR_METHODS = {"detach", "max", "min", "gather", "mean", "sum", "view", "squeeze", "unsqueeze", "clone", "cpu",
                   "numpy", "item", "to", "float", "argmax", "reshape", "expand", "repeat", "index_select"}
_ATTENTION_NAME = re.compile(r"[Tt]ransformer|[Aa]ttention|GPT|Gpt|BERT|Bert|former|ViT|(?:^|_)vit(?:_|$)")
TRACE_LIMIT = 160  # expressions read per loss
# names of a BPTT length (not of a cap such as `max_length`, which bounds inputs, not the unroll)
SEQUENCE_LENGTH_NAMES = {"seq_len", "seq_length", "sequence_length", "sequence_len", "seqlen", "bptt", "bptt_len",
                         "chunk_len", "time_steps", "timesteps", "n_timesteps", "num_timesteps"}
SHORT_SEQUENCE = 32
# `X.backward(loss)`: objects whose backward takes the loss (a tensor's takes a gradient)
_BACKWARD_ENGINES = {"accelerator", "fabric", "engine", "model_engine", "trainer", "self", "amp"}


@dataclass
class LossTrace:
    calls: list[ast.Call] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # every Name id and attribute name read
    squares: bool = False  # `(q - target) ** 2`


@dataclass
class StepFacts:
    """What is seen around one finding's step (None / empty: not seen)."""

    lone_tensors: list[str] = field(default_factory=list)  # `[log_alpha]`: not a module's parameters
    # every tensor the optimizer updates is a copy of data (`content.clone().requires_grad_()`):
    # an input optimised through a network (style transfer), no network trained
    optimised_inputs: list[str] = field(default_factory=list)
    huber_td: str | None = None  # "`F.smooth_l1_loss` against the target network `self.dqn_target`"
    demo: bool = False  # a module-level step outside any loop
    rl_signal: str | None = None  # the first RL evidence seen, in words
    attention: str | None = None  # a transformer / attention model the optimizer updates
    recurrent: Recurrent | None = None
    q_learning: str | None = None  # evidence for the DQN / multi-agent Q-learning threshold
    policy_gradient: str | None = None  # evidence for the PPO/A2C threshold
    pretrained: bool = False  # the updated model is loaded pretrained (fine-tuning)
    short_sequence: str | None = None  # "`sequence_length = 28`": every BPTT length seen is short


def step_facts(analysis: "TrainingAnalysis", finding: Finding) -> StepFacts:
    """The facts of one finding (computed on demand, memoised on the analysis)."""
    memo = analysis.__dict__.setdefault("_step_facts", {})
    key = id(finding.event)
    if key not in memo:
        memo[key] = _Collector(analysis, finding).collect()
    return memo[key]


class _Collector:
    def __init__(self, analysis: "TrainingAnalysis", finding: Finding) -> None:
        self.analysis = analysis
        self.finding = finding
        self.step = finding.event
        self.trace = self._trace(finding.backward) if finding.backward is not None else LossTrace()

    def collect(self) -> StepFacts:
        facts = StepFacts()
        step = self.step
        facts.demo = step.function is self.analysis.module and not step.in_loop
        facts.lone_tensors, copies = self.lone_tensors()
        if copies:
            facts.optimised_inputs = facts.lone_tensors
        facts.recurrent = self.analysis.recurrent_model(step)
        target = self.target_network()
        huber, squared = self.loss_kinds()
        if huber and not squared and target:
            facts.huber_td = f"`{huber}` against the target network `{target}`"
        facts.q_learning = self.q_learning(target)
        facts.policy_gradient = self.policy_gradient()
        facts.attention, facts.pretrained = self.attention()
        if facts.recurrent is not None:
            facts.short_sequence = self.short_sequence()
        facts.rl_signal = (facts.policy_gradient or facts.q_learning or self.loss_words(target)
                           or self.head_names())
        if facts.rl_signal is None and not self.binary_classifier_loss():
            # what surrounds the step: not for a discriminator's BCE in an RL file (GAIL)
            facts.rl_signal = self.scope_words() or self.file_env()
        return facts

    # the loss -------------------------------------------------------------------------------

    def _trace(self, backward: Event) -> LossTrace:
        """The expressions that build the loss `backward` runs on, through the names of their
        function and the returns of the file's functions they call."""
        func = backward.call.func
        start = getattr(func, "value", None)  # `loss.backward()`
        owner = (backward.receiver or "").rsplit(".", 1)[-1].lower()
        if backward.call.args and (owner in _BACKWARD_ENGINES or getattr(func, "attr", "") == "manual_backward"):
            start = first_argument(backward.call)  # `accelerator.backward(loss)`
        trace = LossTrace()
        if start is None:
            return trace
        analysis = self.analysis
        todo: list[tuple[ast.AST, FunctionInfo, int]] = [(start, backward.function, 0)]
        seen: set[int] = set()
        while todo and len(seen) < TRACE_LIMIT:
            expr, context, depth = todo.pop()
            if id(expr) in seen:
                continue
            seen.add(id(expr))
            analysis.budget.spend()
            for node in ast.walk(expr):
                kind = type(node)
                if kind is ast.Name:
                    trace.names.append(node.id)  # type: ignore[attr-defined]
                    if node.id != "self":  # type: ignore[attr-defined]
                        for bound in analysis.lookup(node.id, context):  # type: ignore[attr-defined]
                            todo.append((bound.value, bound.function, depth))
                        for value in context.element_bindings.get(node.id, ()):  # type: ignore[attr-defined]
                            todo.append((value, context, depth))
                elif kind is ast.BinOp and type(node.op) is ast.Pow and _is_two(node.right):  # type: ignore
                    trace.squares = True
                elif kind is ast.Attribute:
                    trace.names.append(node.attr)  # type: ignore[attr-defined]
                elif kind is ast.Call:
                    trace.calls.append(node)  # type: ignore[arg-type]
                    text = call_name(node)  # type: ignore[arg-type]
                    if text and depth < 3 and text.rsplit(".", 1)[-1] in analysis._named:
                        callee = analysis.resolve_function(text, context)
                        if callee is not None and callee.node is not None:
                            for returned in _returns(callee.node):
                                todo.append((returned, callee, depth + 1))
        return trace

    def loss_kinds(self) -> tuple[str | None, str | None]:
        """(the Huber call seen, the squared-error call seen) in the loss."""
        huber = None
        squared = "`** 2`" if self.trace.squares else None
        for call in self.trace.calls:
            text = dotted(call.func) or ""
            last = text.rsplit(".", 1)[-1]
            if type(call.func) is ast.Call:  # `nn.SmoothL1Loss()(q, target)`
                last = (dotted(call.func.func) or "").rsplit(".", 1)[-1]
                text = f"{last}()"
            else:
                for bound in self._attribute_values(text):  # `self.loss_fn = nn.SmoothL1Loss()`
                    built = bound.constructed
                    if built is not None:
                        last = (dotted(built.func) or "").rsplit(".", 1)[-1]
                        text = f"{text} = {last}()"
            if last in HUBER_FUNCTIONS or last in HUBER_CLASSES:
                huber = huber or text
            elif last in SQUARED_FUNCTIONS or (type(call.func) is ast.Attribute and call.func.attr == "pow"
                                               and call.args and _is_two(call.args[0])):
                squared = squared or text
        return huber, squared

    def _attribute_values(self, text: str):
        if not text or "." in text and not text.startswith("self."):
            return []
        if text.count(".") > 1:
            return []
        return self.analysis.lookup(text, self.finding.backward.function) if self.finding.backward else []

    def target_network(self) -> str | None:
        """A target network called while building the loss: `self.dqn_target(next_state)`,
        `self.target_net(s)`, `target_model(x)`; not a tensor named `target_q`."""
        for call in self.trace.calls:
            text = dotted(call.func)
            if not text:
                continue
            parts = text.split(".")
            if parts[-1] in _TENSOR_METHODS:
                continue
            if parts[-1] == "forward" and len(parts) > 1:
                parts = parts[:-1]
            tokens = name_tokens(parts[-1])
            if "target" in tokens and len(tokens) >= 2:
                return ".".join(parts)
        return None

    def q_learning(self, target: str | None) -> str | None:
        """Q-learning: a TD target from a target network over discrete actions (`.max(1)`,
        `.gather(1, a)`), or a QMIX/VDN mixer."""
        for name in self.trace.names:
            if "mixer" in name_tokens(name):
                return f"a value-decomposition mixer (`{name}`)"
        if target is None:
            return None
        if any(type(c.func) is ast.Attribute and c.func.attr in ("max", "gather", "argmax") for c in self.trace.calls):
            return f"a TD target from the target network `{target}`"
        return None

    def policy_gradient(self) -> str | None:
        """PPO's clipped ratio (`clamp(ratio, 1 - eps, 1 + eps)`), or a policy-gradient loss that
        weights log-probabilities by advantages."""
        for call in self.trace.calls:
            last = (dotted(call.func) or "").rsplit(".", 1)[-1]
            if last in ("clamp", "clip") and any(_one_plus_minus(a) for a in call.args[1:]):
                return "a PPO ratio clip"
        words = {t for name in self.trace.names for t in name_tokens(name)}
        names = set(self.trace.names)
        logp = bool(words & {"logp", "logprob", "logprobs"}) or ("log" in words and words & {"prob", "probs"}) \
            or "log_prob" in names
        if logp and words & {"advantage", "advantages", "adv", "advs", "gae"}:
            return "a policy-gradient loss weighted by advantages"
        return None

    def binary_classifier_loss(self) -> bool:
        """The loss is a binary cross-entropy (a GAN or GAIL discriminator): its gradient with
        respect to each logit is bounded by 1, whatever the file around it does."""
        for call in self.trace.calls:
            func = call.func.func if type(call.func) is ast.Call else call.func  # `nn.BCELoss()(p, y)`
            last = (dotted(func) or "").rsplit(".", 1)[-1]
            for bound in self._attribute_values(dotted(func) or "") if type(call.func) is not ast.Call else ():
                if bound.constructed is not None:  # `self.criterion = nn.BCELoss()`
                    last = (dotted(bound.constructed.func) or "").rsplit(".", 1)[-1]
            if last in BINARY_LOSSES:
                return True
        return False

    def loss_words(self, target: str | None) -> str | None:
        for name in self.trace.names:
            if _rl_name(name) and "loss" not in name_tokens(name):
                return f"the loss is built from `{name}`"
        if target:
            return f"the loss reads the target network `{target}`"
        return None

    # what the optimizer updates ----------------------------------------------------------

    def lone_tensors(self) -> tuple[list[str], bool]:
        """`Adam([log_alpha])`, `Adam([target])`: every element is a tensor built here (not a
        module's parameters); empty when unknown or when any element is a module's. The flag says
        whether every one of them is a copy of data (`target = content.clone().requires_grad_()`)."""
        params = self.analysis.optimizer_params(self.step)
        if params is None:
            return [], False
        expr, binding = params
        if type(expr) not in (ast.List, ast.Tuple) or not expr.elts:  # type: ignore[attr-defined]
            return self.scalar_modules(), False
        names = []
        copies = True
        for element in expr.elts:  # type: ignore[attr-defined]
            text = receiver_text(element) if type(element) in (ast.Name, ast.Attribute) else None
            if not text:
                return [], False
            bound = self.analysis.lookup(text, binding.function)
            kinds = [_tensor_kind(b.value) for b in bound] if bound else [None]
            if None in kinds:
                return [], False
            copies = copies and all(kind == "copy" for kind in kinds)
            names.append(text)
        return names, copies

    def scalar_modules(self) -> list[str]:
        """`SharedAdam(self.log_alpha.parameters())` where `log_alpha = Alpha()` and the class of
        the file only wraps `nn.Parameter`s (no layer): tensors in a module's clothing."""
        analysis = self.analysis
        owners = analysis.parameter_owners(self.step)
        constructions = analysis.model_constructions(self.step)
        if not owners or not constructions:
            return []
        for qualified, binding in constructions:
            info = analysis.classes.get(qualified) if binding is not None else None
            if info is None:
                return []
            called = {(analysis.symbols.resolve_text(dotted(f), scope) or "").rsplit(".", 1)[-1]
                      for f, scope in info.called}
            layers = {c for c in called if c[:1].isupper() and c not in ("Parameter", "Module")}
            if "Parameter" not in called or layers:
                return []
        return [root for root, _ in owners]

    def head_names(self) -> str | None:
        """An actor, critic or Q network updated: the optimizer's or the module's name says so."""
        texts = [self.step.receiver or ""] + [root for root, _ in self.analysis.parameter_owners(self.step)]
        for text in texts:
            last = text.rsplit(".", 1)[-1]
            tokens = name_tokens(last)
            if set(tokens) & HEAD_WORDS or ("q" in tokens and len(tokens) > 1) or _rl_name(last):
                return f"it updates `{text}`"
        return None

    def scope_words(self) -> str | None:
        """The step's function (or a method of its class) reads rewards, returns, advantages..."""
        functions = [self.step.function]
        if self.finding.backward is not None and self.finding.backward.function is not self.step.function:
            functions.append(self.finding.backward.function)
        owner = self.step.function.class_name
        if owner and owner in self.analysis.classes:
            functions += [m for c in self.analysis._class_chain(owner) for m in c.methods.values()]
        for func in functions:
            if func.node is None:
                continue
            for node in ast.walk(func.node):
                self.analysis.budget.spend()
                kind = type(node)
                name = node.id if kind is ast.Name else node.attr if kind is ast.Attribute else None  # type: ignore
                if name and _rl_name(name):
                    where = f"{owner}.{func.name}" if func.class_name else func.name
                    return f"`{where}` reads `{name}`"
        return None

    def file_env(self) -> str | None:
        """The file steps an environment (`env.step(action)`) or imports an RL environment library."""
        memo = self.analysis.__dict__.get("_file_env", False)
        if memo is not False:
            return memo
        found = None
        for call, _ in self.analysis.symbols.calls(self.analysis.symbols.tree):
            func = call.func
            if type(func) is ast.Attribute and func.attr in ("step", "reset") and (call.args or call.keywords
                                                                                 or func.attr == "reset"):
                owner = receiver_text(func.value) or ""
                if "env" in name_tokens(owner.rsplit(".", 1)[-1]) or "envs" in name_tokens(owner.rsplit(".", 1)[-1]):
                    found = f"the file runs an environment, `{owner}.{func.attr}()` at line {call.lineno}"
                    break
        if found is None:
            for qualified in self.analysis.symbols.imported_names().values():
                if qualified.split(".", 1)[0] in ENV_LIBRARIES:
                    found = f"the file imports `{qualified.split('.', 1)[0]}`"
                    break
        self.analysis.__dict__["_file_env"] = found
        return found

    def short_sequence(self) -> str | None:
        """Every sequence length the file sets (a module constant or an option default named
        `seq_len`, `sequence_length`, `bptt`, ...) is a small integer: `sequence_length = 28`."""
        symbols = self.analysis.symbols
        found = [(name, value) for source in (symbols.constants, symbols.option_defaults)
                 for name, value in source.items()
                 if name.lower() in SEQUENCE_LENGTH_NAMES and type(value) is int]
        if found and all(0 < value <= SHORT_SEQUENCE for _, value in found):
            return ", ".join(f"`{name} = {value}`" for name, value in found)
        return None

    # the model ---------------------------------------------------------------------------

    def attention(self) -> tuple[str | None, bool]:
        """(an attention/transformer model the optimizer updates, whether it is loaded pretrained)."""
        pretrained = False
        for qualified, binding in self.analysis.model_constructions(self.step):
            if binding is not None and _pretrained(binding, self.analysis):
                pretrained = True
                continue
            last = qualified.rsplit(".", 1)[-1]
            if _ATTENTION_NAME.search(last):
                return f"`{last}`", False
            described = self._attention_class(qualified)
            if described:
                return described, False
        return None, pretrained

    def _attention_class(self, qualified: str, depth: int = 3) -> str | None:
        analysis = self.analysis
        last = qualified.rsplit(".", 1)[-1]
        if qualified == last and last in analysis.classes:
            info = analysis.classes[last]
            for func, scope in info.called:
                analysis.budget.spend()
                called = analysis.symbols.resolve_text(dotted(func), scope) or ""
                name = called.rsplit(".", 1)[-1]
                if called.startswith("torch.") and name in sibling_classes.ATTENTION_MODULES:
                    return f"nn.{name} in {last}"
                if name != last and name in analysis.classes and depth:
                    if _ATTENTION_NAME.search(name):
                        return f"`{name}` in {last}"
                    inner = self._attention_class(name, depth - 1)
                    if inner:
                        return inner
            return None
        sibling = analysis.sibling_class(qualified)
        if sibling is not None:
            core = sibling_classes.attention_core(sibling)
            return f"{core} in {sibling.name}" if core else None
        return None


def _returns(node: ast.AST) -> list[ast.expr]:
    found = []
    stack = list(getattr(node, "body", []))
    while stack:
        current = stack.pop()
        if type(current) is ast.Return and current.value is not None:  # type: ignore[attr-defined]
            found.append(current.value)  # type: ignore[attr-defined]
        elif type(current) not in FUNCTIONS and type(current) is not ast.ClassDef:
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                stack.extend(getattr(current, name, []) or [])
    return found


def _rl_name(name: str) -> bool:
    tokens = name_tokens(name)
    if set(tokens) & RL_WORDS:
        return True
    return any(pair in RL_PAIRS for pair in zip(tokens, tokens[1:]))


def _is_two(node: ast.expr) -> bool:
    return type(node) is ast.Constant and node.value == 2


def _one_plus_minus(node: ast.expr) -> bool:
    """`1 - eps`, `1.0 + self.clip`: a PPO ratio bound."""
    return (type(node) is ast.BinOp and type(node.op) in (ast.Add, ast.Sub)
            and type(node.left) is ast.Constant and node.left.value == 1)


def _tensor_kind(value: ast.expr) -> str | None:
    """A lone tensor that is not a layer's weight: "scalar" for a small learnt tensor
    (`torch.zeros(1, requires_grad=True)`, `torch.tensor(np.log(0.2), requires_grad=True)`,
    `nn.Parameter(torch.zeros(1))`), "copy" for a copy of data optimised directly
    (`content.clone().requires_grad_(True)`); None otherwise. A tensor made with two or more sizes
    (`nn.Parameter(torch.randn(n, n))`) may be a hand-written layer's weight: not one."""
    if type(value) is not ast.Call:
        return None
    call = value
    while type(call) is ast.Call and type(call.func) is ast.Attribute and call.func.attr in _CHAIN_METHODS:
        if type(call.func.value) is not ast.Call:  # `content.clone()`: a copy of data
            return "copy" if call.func.attr in ("clone", "detach", "requires_grad_") else None
        call = call.func.value
    if type(call) is not ast.Call:
        return None
    last = (dotted(call.func) or "").rsplit(".", 1)[-1]
    if last == "Parameter" and call.args:
        return "scalar" if _tensor_kind(call.args[0]) else None
    if last in ("tensor", "as_tensor", "FloatTensor"):
        scalar = bool(call.args) and type(call.args[0]) is not ast.List or _scalar_list(call.args)
        return "scalar" if scalar else None
    if last in _SIZED_FACTORIES:
        sizes = [a for a in call.args if type(a) is not ast.Starred]
        if len(sizes) == 1 and type(sizes[0]) in (ast.Tuple, ast.List):
            sizes = sizes[0].elts  # type: ignore[attr-defined]
        small = len(sizes) <= 1 and all(type(a) is ast.Constant and a.value == 1 for a in sizes)
        return "scalar" if small else None
    return None


def _scalar_list(args: list[ast.expr]) -> bool:
    return len(args) == 1 and type(args[0]) is ast.List and len(args[0].elts) == 1  # type: ignore[attr-defined]


def _pretrained(binding, analysis) -> bool:
    """The model is loaded pretrained: `X.from_pretrained(...)`, `pretrained=True`, or built
    around a value that is (`Transformer(AutoModel.from_pretrained(name), ...)`)."""
    call = binding.constructed
    values = [call]
    for arg in [*call.args, *(k.value for k in call.keywords)]:
        if type(arg) is ast.Name:
            values.extend(b.value for b in analysis.lookup(arg.id, binding.function))
    for value in values:
        for node in ast.walk(value):
            if type(node) is ast.Call:
                if (dotted(node.func) or "").endswith("from_pretrained"):
                    return True
                for k in node.keywords:
                    off = type(k.value) is ast.Constant and k.value.value in (False, None)
                    if k.arg in ("pretrained", "weights") and not off:
                        return True
    return False
