"""Model-only versions of user files, and constructor arguments for their models.

`model_only_source` keeps what defines models (imports, functions, classes, simple constants)
and drops every top-level statement that does work: training loops, `parse_args()`, env or
dataset creation, `if __name__ == "__main__":`. Imports that fail become placeholders, so a
model file that imports gymnasium for its training loop still loads where gymnasium is absent.

This module runs in the parent (libcst only); the child process receives the transformed text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from gradlint.analysis.symbols import Symbols
from gradlint.analysis.syntax import last_name
from gradlint.analysis.values import UNKNOWN, evaluate, known


@dataclass
class ParsedFile:
    """A user file as the verifier reads it: its text, its one `ast` tree and symbol layer (the
    lint analysis's own when the caller has them), and its libcst module for the model-only
    transform, parsed on first use: one parse of each kind per file."""

    text: str
    tree: ast.Module
    symbols: Symbols
    _module: cst.Module | None = field(default=None, repr=False)

    @classmethod
    def of(cls, text: str) -> "ParsedFile":
        tree = ast.parse(text)
        return cls(text, tree, Symbols(tree))

    @property
    def module(self) -> cst.Module:
        if self._module is None:
            self._module = cst.parse_module(self.text)
        return self._module

PLACEHOLDER = '''
class _GradlintMissing:
    """Stands in for a module that could not be imported; fails only when really used."""
    def __init__(self, name, error):
        self._name, self._error = name, error
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _GradlintMissing(self._name + "." + attr, self._error)
    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self._name} is not available here ({self._error})")
    def __mro_entries__(self, bases):  # `class Wrapper(gym.ActionWrapper)`: defined, fails only when built
        name, error = self._name, self._error

        class _Base:
            def __init__(self, *args, **kwargs):
                raise ImportError(f"{name} is not available here ({error})")

        _Base.__name__ = _Base.__qualname__ = name.rsplit(".", 1)[-1]
        return (_Base,)
    def __instancecheck__(self, instance):  # `isinstance(space, Box)` with gym absent: nothing is one
        return False
    def __subclasscheck__(self, cls):
        return False
'''

GUESSES: dict[str, Any] = {
    # documented guesses for common dimension names, used only when nothing else resolves
    "state_dim": 8, "obs_dim": 8, "observation_dim": 8, "input_dim": 8, "in_dim": 8, "n_obs": 8,
    "num_inputs": 8, "n_states": 8, "s_dim": 8, "obs_size": 8, "input_size": 8, "in_features": 8,
    "num_obs": 8, "n_observations": 8, "obs_shape": 8, "state_size": 8, "ninp": 32, "emsize": 32,
    "action_dim": 2, "act_dim": 2, "n_actions": 2, "num_actions": 2, "action_size": 2, "a_dim": 2,
    "out_dim": 2, "output_dim": 2, "output_size": 2, "out_features": 2, "num_outputs": 2,
    "n_outputs": 2, "num_classes": 10, "n_classes": 10,
    "hidden_dim": 64, "hidden_size": 64, "hidden": 64, "hid": 64, "h_dim": 64, "nhid": 64,
    "hidden_units": 64, "hidden_layers": 2, "num_hidden": 64, "width": 64, "dim": 64, "d_model": 64,
    "n_layers": 2, "num_layers": 2, "nlayers": 2, "depth": 2, "n_blocks": 2,
    "max_action": 1.0, "action_bound": 1.0, "action_scale": 1.0, "max_act": 1.0,
    "vocab_size": 100, "ntoken": 100, "n_tokens": 100, "in_channels": 3, "channels": 3,
    "n_agents": 2, "num_agents": 2, "seq_len": 16, "upscale_factor": 2,
    # a seed only picks the random draw (the worker seeds torch with 0 before building anyway)
    "seed": 0, "random_seed": 0,
}

# A model that reads its sizes off the environment (`QNetwork(envs)` in CleanRL) gets a synthetic
# one, built in the worker: 8 observation features, and an action space that is both Discrete(4)
# and a 2-d Box in [-1, 1]; where the file names one registered env (gradlint.analysis.envs), its
# spaces instead. Only these exact parameter names: `num_envs` is a number.
# A JSON request can only name these stand-ins: {SYNTHETIC: kind} (plus "env": an env id); the
# worker builds them, the report prints their label.
SYNTHETIC = "__gradlint_synthetic__"
SYNTHETIC_LABELS = {
    "env": "<synthetic env: 8 observation features, Discrete(4) or Box(2,) actions>",
    "observation_space": "<synthetic Box(8,)>",
    "action_space": "<synthetic Discrete(4) / Box(2,) in [-1, 1]>",
}
SYNTHETIC_ENV = {SYNTHETIC: "env"}
ENV_PARAMETERS = ("env", "envs", "environment", "venv", "vec_env", "train_env")
# and a model built from the spaces (Spinning Up's `MLPActorCritic(observation_space, action_space)`,
# SB3 policies) gets the synthetic env's spaces
SPACE_PARAMETERS = {
    "observation_space": {SYNTHETIC: "observation_space"},
    "obs_space": {SYNTHETIC: "observation_space"},
    "state_space": {SYNTHETIC: "observation_space"},
    "action_space": {SYNTHETIC: "action_space"},
    "act_space": {SYNTHETIC: "action_space"},
}
# a module-level name the kept code reads these attributes of (`nn.Linear(env.observation_space.shape[0], 128)`
# in a class body, the env itself made by removed code) is an env: the synthetic one stands in
ENV_ATTRIBUTES = {"observation_space", "action_space", "single_observation_space", "single_action_space"}


def synthetic(kind: str, env=None) -> dict:
    """The marker of a synthetic stand-in (`kind`: env, observation_space, action_space), with
    the spaces of `env` (an EnvSpec) when it is a registered env of float observations."""
    marker = {SYNTHETIC: kind}
    if env is not None and env.dtype == "float32" and (env.actions or (env.action_dim and env.action_high)):
        marker["env"] = env.env_id
    return marker


def synthetic_label(marker: dict) -> str:
    from gradlint.analysis.envs import env_spec

    spec = env_spec(marker.get("env") or "")
    kind = marker.get(SYNTHETIC)
    if spec is None:
        return SYNTHETIC_LABELS.get(kind, "?")
    observations = f"Box({spec.observation_dim},)"
    actions = f"Discrete({spec.actions})" if spec.actions else f"Box({spec.action_dim},) in [-{spec.action_high:g}, {spec.action_high:g}]"
    return {"env": f"<stand-in env with {spec.env_id}'s spaces: {observations} observations, {actions} actions>",
            "observation_space": f"<{spec.env_id}'s {observations}>",
            "action_space": f"<{spec.env_id}'s {actions}>"}.get(kind, "?")


def synthetic_code(marker: dict) -> str:
    """A stand-in in the model-only source: built by the worker's own code when the source runs."""
    return f"__import__('gradlint.verify.worker', fromlist=['_materialise'])._materialise({marker!r})"


@dataclass
class ConstructorArgs:
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    guessed: dict = field(default_factory=dict)  # name -> value, printed with the verdict
    missing: list = field(default_factory=list)  # required parameters nothing resolved
    source: str = "defaults"  # user | call site | defaults | guesses
    env_sizes: dict = field(default_factory=dict)  # name -> size read off the registered env, at the call site


def _keep(statement: cst.BaseStatement) -> bool:
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return True
    if isinstance(statement, cst.SimpleStatementLine):
        return all(_keep_small(small) for small in statement.body)
    if isinstance(statement, cst.Try):  # `try: import x; HAS_X = True / except ImportError: ...`
        # (not `try: data = np.load(...) / except: assert False`: that is work)
        return all(isinstance(s, cst.SimpleStatementLine) and all(_keep_small(x) for x in s.body)
                   for s in statement.body.body)
    return False


def _keep_small(small: cst.BaseSmallStatement) -> bool:
    if isinstance(small, (cst.Import, cst.ImportFrom, cst.Pass)):
        return True
    if isinstance(small, (cst.Assign, cst.AnnAssign)):
        value = small.value  # a lambda is a definition, as a def is: `Variable = lambda *a: ...`
        return value is not None and (_constant_expression(value) or isinstance(value, cst.Lambda))
    return False


def _constant_expression(node: cst.BaseExpression) -> bool:
    """Literals, tuples of literals and arithmetic on them: `HIDDEN = 256`, `SHAPE = (4, 84)`."""
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString, cst.Name)):
        return not isinstance(node, cst.Name) or node.value in ("True", "False", "None") or node.value.isupper()
    if isinstance(node, (cst.Tuple, cst.List)):
        return all(_constant_expression(e.value) for e in node.elements)
    if isinstance(node, cst.UnaryOperation):
        return _constant_expression(node.expression)
    if isinstance(node, cst.BinaryOperation):
        return _constant_expression(node.left) and _constant_expression(node.right)
    return False


def model_only_source(file: ParsedFile | str, env=None, stand_ins: dict[str, str] | None = None) -> str:
    """The file with its work removed and its imports guarded (see the module docstring); the
    module-level names the kept code reads but the removed code defined get stand-ins
    (`removed_names`, computed here unless given)."""
    file = ParsedFile.of(file) if isinstance(file, str) else file
    module = file.module
    future: list[str] = []  # `from __future__ import ...` must stay first, ahead of the placeholder
    body: list[str] = [PLACEHOLDER]
    stand_ins = dict(removed_names(file, env) if stand_ins is None else stand_ins)
    for statement in module.body:
        if not _keep(statement):  # a removed `NAME = ...` the kept code reads: its stand-in, in place
            names = _assigned_name(statement)
            if names in stand_ins:
                body.append(f"{names} = {stand_ins.pop(names)}\n")
            continue
        if isinstance(statement, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body):
            for small in statement.body:
                (future if _is_future(small) else body).append(_guarded_import(small))
            continue
        body.append(module.code_for_node(statement))
    return "\n".join(future + body) + "\n"


def _assigned_name(statement: cst.BaseStatement) -> str | None:
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        small = statement.body[0]
        target = (small.targets[0].target if isinstance(small, cst.Assign) and len(small.targets) == 1 else
                  small.target if isinstance(small, cst.AnnAssign) else None)
        if isinstance(target, cst.Name):
            return target.value
    return None


_PARSE_CALLS = {"parse_args", "parse_known_args", "cli", "parse"}  # argparse, tyro.cli(Args), simple_parsing


def removed_names(file: ParsedFile, env=None, device: str = "cpu") -> dict[str, str]:
    """Stand-ins (name -> Python expression) for module-level names the kept code reads but only
    removed statements define: `args = parser.parse_args()` becomes a namespace of the parser's
    own defaults (`capacity=args.capacity` in a kept default argument); `args = tyro.cli(Args)`
    becomes `Args()`; `NUM_STATES = env.observation_space.shape[0]` the size of the registered env
    the file names; `device = torch.device(...)` the device verify measures on; other names a
    documented guess, else a placeholder that fails when used."""
    tree = file.tree
    try:
        module = file.module
    except cst.ParserSyntaxError:
        return {}
    kept = [node for node, statement in zip(tree.body, module.body) if _keep(statement)]
    bound: set[str] = set()
    for node in kept:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                bound.add(sub.id)
            elif isinstance(sub, ast.alias):
                bound.add((sub.asname or sub.name).split(".")[0])
    removed: dict[str, ast.expr] = {}
    for node in tree.body:
        if node in kept:
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            removed[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            removed[node.target.id] = node.value
    used: dict[str, set[str]] = {}
    for node in kept:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id in removed and sub.id not in bound:
                used.setdefault(sub.id, set())
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in removed:
                used.setdefault(sub.value.id, set()).add(sub.attr)
    classes = {node.name for node in kept if isinstance(node, ast.ClassDef)}
    sizes = env_sizes(env)
    out: dict[str, str] = {}
    for name, attributes in used.items():
        value = removed[name]
        code = ast.unparse(value)
        call = value.func if isinstance(value, ast.Call) else None
        called = call.attr if isinstance(call, ast.Attribute) else (call.id if isinstance(call, ast.Name) else None)
        if called in _PARSE_CALLS:
            first = value.args[0] if value.args else None
            if isinstance(first, ast.Name) and first.id in classes:  # tyro.cli(Args): the dataclass's defaults
                out[name] = f"{first.id}()"
                continue
            defaults = file.symbols.option_defaults
            fields = {attr: defaults.get(attr, _guess(attr)) for attr in sorted(attributes)}
            items = ", ".join(f"{attr}={_literal(v, f'{name}.{attr}')}" for attr, v in fields.items())
            out[name] = f"__import__('types').SimpleNamespace({items})"
            continue
        if name == "device" or called == "device":  # `torch.device("cuda" if ... else "cpu")`
            out[name] = repr(device)
            continue
        if code in ("torch.cuda.is_available()", "cuda.is_available()"):  # USE_CUDA: whether verify measures on one
            out[name] = repr(device.startswith("cuda"))
            continue
        if attributes & ENV_ATTRIBUTES or (name.lower() in ENV_PARAMETERS and not attributes - ENV_ATTRIBUTES):
            out[name] = synthetic_code(synthetic("env", env))  # an env the removed code made
            continue
        env_value = _env_read(code, env, sizes)
        guess = env_value if env_value is not None else sizes.get(name.lower(), _guess(name.lower(), env))
        out[name] = _literal(guess, name)
    return out


def _literal(value, name: str) -> str:
    if value is UNKNOWN or isinstance(value, dict):
        return f"_GradlintMissing({name!r}, 'removed with the training code; pass --init-args')"
    return repr(value)


def env_read_sizes(file: ParsedFile, env) -> dict[str, int]:
    """Names the file binds, in any scope, to a size read off its registered env `env` and to
    nothing else: `state_dim = env.observation_space.shape[0]` -> {"state_dim": 3} for Pendulum.
    What the script itself computes, so a call `Actor(state_dim, action_dim, 256)` resolves."""
    if env is None or env.dtype == "uint8":
        return {}
    values: dict[str, set] = {}
    for node in ast.walk(file.tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    values.setdefault(target.id, set()).add(_env_read(ast.unparse(node.value), env, {}))
                elif isinstance(target, (ast.Tuple, ast.List)):
                    for element in ast.walk(target):
                        if isinstance(element, ast.Name):
                            values.setdefault(element.id, set()).add(None)
    return {name: next(iter(found)) for name, found in values.items() if len(found) == 1 and None not in found}


def _env_read(code: str, env, sizes: dict) -> int | None:
    if env is None:
        return None
    if re.search(r"observation_space\.shape\[0\]$|observation_space\.shape\)?\.prod\(\)", code):
        return env.observation_dim
    if code.endswith("action_space.n"):
        return env.actions
    if re.search(r"action_space\.shape\[0\]$", code):
        return env.action_dim
    return None


def _is_future(node: cst.Import | cst.ImportFrom) -> bool:
    return isinstance(node, cst.ImportFrom) and node.module is not None and dotted(node.module) == "__future__"


def _guarded_import(node: cst.Import | cst.ImportFrom) -> str:
    code = cst.Module([]).code_for_node(node)
    if _is_future(node):
        return code
    names: list[str] = []
    if isinstance(node, cst.Import):
        for alias in node.names:
            names.append(alias.asname.name.value if alias.asname else (dotted(alias.name) or "").split(".")[0])  # type: ignore[union-attr]
    elif not isinstance(node.names, cst.ImportStar):
        for alias in node.names:
            names.append(alias.asname.name.value if alias.asname else (dotted(alias.name) or ""))  # type: ignore[union-attr]
    fallback = "; ".join(f"{n} = _GradlintMissing({n!r}, repr(_e))" for n in names if n) or "pass"
    return f"try:\n    {code}\nexcept Exception as _e:\n    {fallback}\n"


# sizes read off a registered env (gradlint.analysis.envs) rather than guessed, for these names
OBSERVATION_NAMES = {"state_dim", "obs_dim", "observation_dim", "input_dim", "in_dim", "n_obs", "num_inputs", "n_states",
                     "s_dim", "obs_size", "input_size", "in_features", "num_obs", "n_observations", "obs_shape",
                     "state_size", "num_states", "n_state", "obs_space_dim"}
ACTION_NAMES = {"action_dim", "act_dim", "n_actions", "num_actions", "action_size", "a_dim", "n_action", "num_action",
                "action_n"}


def env_sizes(env) -> dict[str, int]:
    """`state_dim`-like names -> the env's observation size, `action_dim`-like -> its actions."""
    if env is None or env.dtype == "uint8":
        return {}
    sizes = {name: env.observation_dim for name in OBSERVATION_NAMES}
    actions = env.actions if env.actions is not None else env.action_dim
    if actions is not None:
        sizes.update({name: actions for name in ACTION_NAMES})
    return sizes


def constructor_args(file: ParsedFile, class_name: str, user: dict | None = None, env=None,
                     device: str = "cpu", caller: ParsedFile | None = None) -> ConstructorArgs:
    """Arguments to build `class_name`: the user's, else a call site (of `caller`, the file that
    imports the class, first, then of the defining file) whose arguments all resolve to
    constants; else the constants such a call passes (`Actor(state_dim, action_dim, 256)`: the
    hidden size the script builds) with the constructor's defaults for the rest, sizes of the
    registered env the file names (`env`, an EnvSpec), then documented guesses by name (a
    `device` parameter: the device verify measures on)."""
    tree = file.tree
    result = ConstructorArgs()
    params = _init_params(tree, class_name)
    if user:
        result.kwargs = dict(user)
        result.source = "user"
        required = [p for p, has_default in params if not has_default and p not in user]
        if not required:
            return result
    else:
        sites = [(site, env_read_sizes(site, env)) for site in (caller, file) if site is not None]
        for site, read in sites:
            call = resolvable_call_site(site, class_name, read)
            if call is not None:
                result.args, result.kwargs = call
                result.source, result.env_sizes = "call site", _used(read, site, class_name)
                return result
        for site, read in sites:
            given = call_site_constants(site, tree, class_name, read)
            if given:
                result.kwargs, result.source, result.env_sizes = given, "call site", _used(read, site, class_name)
                break
    sizes = env_sizes(env)
    for name, has_default in params:
        if has_default or name in result.kwargs:
            continue
        guess = sizes.get(name.lower(), UNKNOWN)
        if guess is UNKNOWN:
            guess = device if name == "device" else _guess(name, env)
        if guess is UNKNOWN:
            result.missing.append(name)
        else:
            result.kwargs[name] = guess
            result.guessed[name] = guess
    if result.guessed and result.source not in ("user", "call site"):
        result.source = "guesses"
    return result


def call_site_constants(site: ParsedFile, tree: ast.Module, class_name: str, sizes: dict | None = None) -> dict[str, Any]:
    """The arguments of the first call `ClassName(...)` in `site` that resolve to constants (or
    env sizes, as `resolvable_call_site`), by the name of the parameter they bind in the
    constructor (defined in `tree`)."""
    positional, keyword_only = _init_signature(tree, class_name)
    if positional is None:
        return {}
    constants = {**site.symbols.constants, **(sizes or {})}
    for call, _ in site.symbols.calls(site.tree):
        if last_name(call.func) != class_name:
            continue
        if any(type(a) is ast.Starred for a in call.args) or any(k.arg is None for k in call.keywords):
            return {}
        if len(call.args) > len(positional):
            return {}
        bound = {**dict(zip(positional, call.args)),
                 **{k.arg: k.value for k in call.keywords if k.arg in positional or k.arg in keyword_only}}
        values = {name: evaluate(node, constants) for name, node in bound.items()}
        return {name: value for name, value in values.items()
                if known(value) and isinstance(value, (int, float, str, bool, tuple, list))}
    return {}


def _used(sizes: dict, site: ParsedFile, class_name: str) -> dict:
    """The env sizes the first call of `class_name` in `site` reads."""
    for call, _ in site.symbols.calls(site.tree):
        if last_name(call.func) == class_name:
            names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
            return {name: value for name, value in sizes.items() if name in names}
    return {}


def _init_signature(tree: ast.Module, class_name: str) -> tuple[list[str] | None, list[str]]:
    """(positional parameters after self, keyword-only ones) of the class's constructor in
    `tree`, or (None, []) when it takes *args or is not found there."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and member.name == "__init__":
                    args = member.args
                    if args.vararg is not None:
                        return None, []
                    return [a.arg for a in args.posonlyargs + args.args][1:], [a.arg for a in args.kwonlyargs]
            for base in node.bases:
                if isinstance(base, ast.Name):
                    found = _init_signature(tree, base.id)
                    if found[0] is not None:
                        return found
    return None, []


def _guess(name: str, env=None) -> Any:
    if name in ENV_PARAMETERS:
        return synthetic("env", env)
    if name in SPACE_PARAMETERS:
        return synthetic(SPACE_PARAMETERS[name][SYNTHETIC], env)
    if name in GUESSES:
        return GUESSES[name]
    lowered = name.lower()
    for key, value in GUESSES.items():
        if lowered.endswith(key) or lowered.startswith(key):
            return value
    return UNKNOWN


def _init_params(tree: ast.Module, class_name: str) -> list[tuple[str, bool]]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and member.name == "__init__":
                    args = member.args
                    positional = [a.arg for a in args.posonlyargs + args.args][1:]
                    defaults = len(args.defaults)
                    out = [(name, i >= len(positional) - defaults) for i, name in enumerate(positional)]
                    out += [(a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
                    return out
            for base in node.bases:  # inherited constructor: look at the base of the file
                if isinstance(base, ast.Name):
                    inherited = _init_params(tree, base.id)
                    if inherited:
                        return inherited
    return []


def resolvable_call_site(file: ParsedFile, class_name: str, sizes: dict | None = None) -> tuple[list, dict] | None:
    """Arguments of the first call `ClassName(...)` in the file whose arguments are all constants
    (or `sizes` the script read off its env, `env_read_sizes`)."""
    constants = {**file.symbols.constants, **(sizes or {})}
    for call, _ in file.symbols.calls(file.tree):
        if last_name(call.func) != class_name:
            continue
        if any(type(a) is ast.Starred for a in call.args) or any(k.arg is None for k in call.keywords):
            continue
        args = [evaluate(a, constants) for a in call.args]
        kwargs = {k.arg: evaluate(k.value, constants) for k in call.keywords}
        if all(known(v) and isinstance(v, (int, float, str, bool, tuple, list)) for v in [*args, *kwargs.values()]):
            return args, kwargs
    return None


def dotted(node: cst.BaseExpression | None) -> str | None:
    """`a.b.c` for a libcst Name/Attribute chain; None for anything else."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None
