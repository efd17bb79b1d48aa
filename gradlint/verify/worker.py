"""The child process of `gradlint verify`: reads one JSON request per line on stdin, builds the
model from its model-only source, runs the probes the findings need, and writes one JSON
result per line on a descriptor of its own. Started by `gradlint.verify.runner`, normally in the
sandbox of `gradlint.verify.sandbox` (applying its Landlock policy to itself first), with an
allow-listed environment, a scratch directory, limits and a timeout; never imported by the
linter. On the CPU each model runs in a fork of this process, ended (with everything it
started) when its result is in or its timeout is up.

`python -m gradlint.verify.worker [--device cpu|cuda[:N]] [--memory-mb N]`: on a CUDA device the
worker checks and initialises CUDA before its first model (and says so in its ready line if it
cannot), caps its GPU memory at --memory-mb, and measures in full fp32 (no TF32).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import math
import os
import re
import sys
import types
from typing import Any


class _ModelOnlyFinder(importlib.abc.MetaPathFinder):
    """Load the user's sibling modules (under the project root) model-only as well."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = [os.path.abspath(r) for r in roots]

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if parts[0] == "gradlint":  # our own modules, even when the project root holds them
            return None
        for root in self.roots:
            for candidate in (os.path.join(root, *parts) + ".py", os.path.join(root, *parts, "__init__.py")):
                if os.path.isfile(candidate):
                    return importlib.util.spec_from_loader(fullname, _ModelOnlyLoader(candidate),
                                                           origin=candidate, is_package=candidate.endswith("__init__.py"))
        return None


class _ModelOnlyLoader(importlib.abc.Loader):
    def __init__(self, path: str) -> None:
        self.path = path

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        from gradlint.verify.loader import model_only_source

        with open(self.path, encoding="utf-8") as handle:
            source = model_only_source(handle.read())
        module.__file__ = self.path
        if self.path.endswith("__init__.py"):
            module.__path__ = [os.path.dirname(self.path)]
        exec(compile(source, self.path, "exec"), module.__dict__)


def build(request: dict):
    """Execute the model-only source and construct the class."""
    roots = [p for p in request.get("sys_path", []) if p]
    finder = _ModelOnlyFinder(roots)
    if not any(isinstance(f, _ModelOnlyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, finder)
    module = types.ModuleType(request["module_name"])
    module.__file__ = request["file"]
    sys.modules[request["module_name"]] = module
    exec(compile(request["source"], request["file"], "exec"), module.__dict__)
    cls = getattr(module, request["class"], None)
    if cls is None:
        raise LookupError(f"class {request['class']} is not defined once the training code is removed")
    args = [_materialise(a) for a in request.get("args", [])]
    kwargs = {k: _materialise(v) for k, v in request.get("kwargs", {}).items()}
    return cls(*args, **kwargs)


def _materialise(value):
    """The synthetic stand-ins a JSON request can only name (see loader.SYNTHETIC)."""
    from gradlint.verify.loader import SYNTHETIC

    if isinstance(value, dict) and SYNTHETIC in value:
        env = SyntheticEnv(value.get("env"))
        return {"env": env, "observation_space": env.observation_space,
                "action_space": env.action_space}[value[SYNTHETIC]]
    return value


class _Space:
    def __init__(self, shape, low, high, n=None):
        import numpy as np

        self.shape, self.n, self.dtype = shape, n, np.float32
        self.low = np.full(shape, low, dtype=np.float32)
        self.high = np.full(shape, high, dtype=np.float32)

    def sample(self):
        import numpy as np

        return np.random.uniform(np.maximum(self.low, -1.0), np.minimum(self.high, 1.0)).astype(np.float32)


class SyntheticEnv:
    """Stands in for a gym env or vector env passed to a model's constructor: Box observations of
    8 features; an action space that is both Discrete(4) (`.n`) and a 2-d Box in [-1, 1]. With
    `env_id`, a registered env of gradlint.analysis.envs: that env's observation bounds and its
    Discrete(n) or Box(k,) actions."""

    num_envs = 1

    def __init__(self, env_id: str | None = None) -> None:
        from gradlint.analysis.envs import env_spec

        spec = env_spec(env_id) if env_id else None
        if spec is None:
            observations, actions = _Space((8,), -float("inf"), float("inf")), _Space((2,), -1.0, 1.0, n=4)
        else:
            observations = _Space((spec.observation_dim,), spec.low, spec.high)
            actions = (_Space((), 0, spec.actions - 1, n=spec.actions) if spec.actions else
                       _Space((spec.action_dim,), -spec.action_high, spec.action_high))
        self.observation_space = self.single_observation_space = observations
        self.action_space = self.single_action_space = actions


def candidate_inputs(model, request: dict, device="cpu") -> list[list]:
    """Input candidates, drawn on the CPU (the same numbers whatever the device); the caller
    moves them to the model's device."""
    import torch
    from torch import nn

    batch = 8
    hints = request.get("hints", {})
    user = request.get("input_shapes")
    if user:
        return [[torch.randn(*shape) for shape in user]]
    inputs = hints.get("inputs") or ["x"]
    candidates: list[list] = []
    modules = list(model.modules())
    first = next((m for m in modules if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding,
                                                     nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell))), None)
    numbers = {**hints.get("dims", {}), **request.get("kwargs", {})}
    if len(inputs) >= 2 and hasattr(model, "init_hidden") and first is not None:  # forward(x, hidden)
        for x in _first_inputs(first, batch):
            for call in ((batch,), (batch, str(device)), ()):
                try:
                    candidates.append([x, model.init_hidden(*call)])
                    break
                except Exception:  # noqa: BLE001 - trying signatures
                    continue
    recurrent = next((m for m in modules if isinstance(m, (nn.RNN, nn.LSTM, nn.GRU))), None)
    if recurrent is not None and len(inputs) >= 2 and _is_hidden(inputs[-1]) and isinstance(first, nn.Linear):
        candidates += _sequence_policy_inputs(first, recurrent, len(inputs) - 2, batch)
    if len(inputs) >= 2 and isinstance(first, nn.Linear):
        total = first.in_features
        dims = [_dim_for(name, numbers) for name in inputs]
        if all(isinstance(d, int) for d in dims):
            candidates.append([torch.randn(batch, d) for d in dims])
        for extra in range(1, 9):  # the second input joins later (DDPG critics: cat(h, action))
            candidates.append([torch.randn(batch, total), torch.randn(batch, extra)] + [torch.randn(batch, 1) for _ in inputs[2:]])
        for split in range(1, min(total, 64)):
            candidates.append([torch.randn(batch, total - split), torch.randn(batch, split)] +
                              [torch.randn(batch, 1) for _ in inputs[2:]])
    if isinstance(first, nn.Linear):
        candidates.append([torch.randn(batch, first.in_features)])
        candidates.append([torch.randn(batch, 16, first.in_features)])
    elif isinstance(first, nn.Embedding):
        candidates.append([torch.randint(0, first.num_embeddings, (batch, 16))])
    elif isinstance(first, (nn.Conv2d, nn.Conv1d, nn.Conv3d)):
        dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(first)]
        for side in (84, 64, 32, 28, 96, 128, 224):
            candidates.append([torch.randn(batch, first.in_channels, *([side] * dims))])
    elif isinstance(first, (nn.RNN, nn.LSTM, nn.GRU)):
        if first.batch_first:
            candidates.append([torch.randn(batch, 16, first.input_size)])
        candidates.append([torch.randn(16, batch, first.input_size)])
    elif isinstance(first, (nn.RNNCell, nn.LSTMCell, nn.GRUCell)):
        candidates.append([torch.randn(batch, first.input_size)])
    for param in model.parameters():  # hand-written layers: nn.Parameter weights
        if param.dim() == 2:
            for size in set(param.shape):
                candidates.append([torch.randn(16, batch, size)])
                candidates.append([torch.randn(batch, size)])
    for size in (8, 4, 3, 17, 24, 32, 64, 128, 784):
        candidates.append([torch.randn(batch, size)])
    return candidates


def _required_parameters(method) -> list[str]:
    import inspect

    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return ["x"]
    return [p.name for p in parameters if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] or ["x"]


def _is_hidden(name: str) -> bool:
    return name in ("h", "hx", "h0", "hc", "hidden") or name.startswith("hidden") or name.endswith("hidden")


def _sequence_policy_inputs(first, recurrent, middle: int, batch: int) -> list[list]:
    """`forward(state, [last_action, ...], hidden_in)` of a recurrent policy: sequences of T = 16
    steps (batch-first and time-first) whose first input feeds the first Linear, the middle ones
    of 1-8 features (a last action joins later, or is concatenated to the state before the first
    layer), and a zero initial state of the recurrent layer."""
    import torch
    from torch import nn

    steps = 16
    layers = recurrent.num_layers * (2 if recurrent.bidirectional else 1)
    zeros = torch.zeros(layers, batch, recurrent.hidden_size)
    hidden = (zeros, zeros.clone()) if isinstance(recurrent, nn.LSTM) else zeros
    total = first.in_features
    candidates = []
    if not middle:  # `pi(x, hidden)` that reshapes x itself (minimalRL: `x.view(-1, 1, 64)`, a batch of one)
        ones = torch.zeros(layers, 1, recurrent.hidden_size)
        candidates += [[torch.randn(batch, total), (ones, ones.clone()) if isinstance(recurrent, nn.LSTM) else ones],
                       [torch.randn(batch, total), hidden]]
    for layout in ((batch, steps), (steps, batch)):
        for extra in range(1, 9) if middle else (0,):
            candidates.append([torch.randn(*layout, total), *[torch.randn(*layout, extra) for _ in range(middle)], hidden])
        for split in range(1, min(total, 9)) if middle == 1 else ():  # the first layer takes cat(state, last_action)
            candidates.append([torch.randn(*layout, total - split), torch.randn(*layout, split), hidden])
    return candidates


_STATE = ("state", "obs", "observation", "x", "inputs", "s")
_ACTION = ("action", "act", "a", "u")


def _dim_for(name: str, numbers: dict):
    """`state` -> state_dim/obs_dim, `action` -> action_dim/act_dim, else `<name>_dim`."""
    keys = [f"{name}_dim", f"{name}_size", f"n_{name}s"]
    base = name.rstrip("s")
    if base in _STATE or name.startswith(_STATE):
        keys += ["state_dim", "obs_dim", "input_dim", "in_dim", "num_inputs", "observation_dim"]
    if base in _ACTION or name.startswith(_ACTION):
        keys += ["action_dim", "act_dim", "num_actions", "n_actions", "action_size"]
    for key in keys:
        value = numbers.get(key)
        if isinstance(value, int):
            return value
    return None


def _first_inputs(first, batch: int) -> list:
    import torch
    from torch import nn

    if isinstance(first, nn.Embedding):
        return [torch.randint(0, first.num_embeddings, (batch, 16)), torch.randint(0, first.num_embeddings, (16, batch))]
    if isinstance(first, nn.Linear):
        return [torch.randn(batch, first.in_features)]
    if isinstance(first, (nn.RNN, nn.LSTM, nn.GRU)):
        return [torch.randn(batch, 16, first.input_size), torch.randn(16, batch, first.input_size)]
    return []


# Methods that run an RL model whose class defines no `forward` (CleanRL's PPO `Agent`), in the
# order tried: the one that runs both heads first.
FORWARD_STAND_INS = ("get_action_and_value", "evaluate_actions", "evaluate", "get_value", "get_action",
                     "act", "value", "pi", "q")


def use_method_as_forward(model) -> str | None:
    """For a model without its own `forward`, run its first method of FORWARD_STAND_INS as the
    forward pass (set on the instance, so copies of the model keep it); the method's name."""
    from torch import nn

    if type(model).forward is not nn.Module.forward:
        return None
    for name in FORWARD_STAND_INS:
        method = getattr(type(model), name, None)
        if callable(method) and not hasattr(nn.Module, name):
            model.forward = getattr(model, name)
            return name
    return None


def find_inputs(model, request: dict, device="cpu"):
    """The first candidate the model accepts, on `device` (the model's)."""
    import torch

    last_error = size_mismatch = None
    for candidate in candidate_inputs(model, request, device):
        inputs = _to(candidate, device)
        try:
            with torch.no_grad():
                model(*inputs)
            return inputs
        except Exception as exc:  # noqa: BLE001 - trying shapes
            last_error = exc
            if size_mismatch is None and _MATMUL.search(str(exc)):
                size_mismatch = exc
    if request.get("input_shapes"):
        shapes = ";".join(",".join(map(str, shape)) for shape in request["input_shapes"])
        raise ValueError(f"--input-shape {request.get('class')}={shapes} does not fit the model: "
                         f"{type(last_error).__name__}: {str(last_error).splitlines()[0][:200]}")
    found = _image_side(model, size_mismatch, device)
    if found is not None:
        return found
    raise ValueError(f"no input shape worked (last error: {type(last_error).__name__}: {last_error}); "
                     "pass --input-shape CLASS=B,N")


_MATMUL = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")


def _image_side(model, error, device):
    """A CNN whose Linear after the flatten fixes the image size (none of the usual sides fit):
    the square side whose flattened features match that Linear, by bisection on the side."""
    import torch
    from torch import nn

    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or error is None or not _MATMUL.search(str(error)):
        return None
    wanted = int(_MATMUL.search(str(error)).group(3))

    def flattened(side: int) -> int | None:
        try:
            with torch.no_grad():
                model(torch.zeros(1, first.in_channels, side, side, device=device))
            return wanted
        except Exception as exc:  # noqa: BLE001 - probing sizes
            match = _MATMUL.search(str(exc))
            return int(match.group(2)) if match else None

    low, high = 8, 512
    while low <= high:
        side = (low + high) // 2
        got = flattened(side)
        if got is None:
            low = side + 1
        elif got == wanted:
            return [torch.randn(8, first.in_channels, side, side).to(device)]
        elif got < wanted:
            low = side + 1
        else:
            high = side - 1
    return None


def measure(request: dict) -> dict:
    import torch
    from torch import nn

    from gradlint.verify import probes

    torch.manual_seed(request.get("seed", 0))
    device = request.get("device", "cpu")
    model = build(request).to(device)  # built on the CPU, so its weights do not depend on the device
    nn.Module.train(model, True)  # not `model.train()`: RL classes often name their update step `train`
    stand_in = use_method_as_forward(model)
    if stand_in:  # the inputs the stand-in method takes, not those of the missing forward
        request = {**request, "hints": {**request.get("hints", {}), "inputs": _required_parameters(model.forward)}}
    inputs = find_inputs(model, request, device)
    codes = set(request.get("codes", []))
    figures: dict[str, Any] = {"input_shapes": [_shape(x) for x in inputs]}
    if stand_in:
        figures["forward"] = stand_in
    profile = probes.gradient_profile(model, inputs)
    figures["gradients"] = probes.summarize(profile)
    figures["layers"] = profile["layers"]
    if codes & {"GL201", "GL301", "GL302"}:
        remedies, remedy_layers = {}, {}
        copies = {"he_init": probes.with_he_init(model), "layernorm": probes.with_layernorm(model, inputs),
                  "small_output_init": probes.with_small_output(model, inputs)}
        for key, copy_ in copies.items():
            if copy_ is not None:
                measured = probes.gradient_profile(copy_, inputs)
                remedies[key] = probes.summarize(measured)
                remedy_layers[key] = [layer["grad_norm"] for layer in measured["layers"]]
        figures["remedies"] = remedies
        figures["remedy_layers"] = remedy_layers
    env = request.get("env")
    if codes & {"GL401", "GL403", "GL204"} and env:
        figures["env"] = _env_figures(model, inputs, env)
    if "GL204" in codes:
        if env and figures["env"].get("output_abs_max") is not None:
            figures["output_abs_max"] = figures["env"]["output_abs_max"]
            figures["output_inputs"] = f"observations spread over {env['id']}'s bounds"
        else:
            figures["output_abs_max"] = probes.output_abs_max(model, inputs)
            figures["output_inputs"] = "unit-scale inputs"
    square = any(p.dim() == 2 and p.shape[0] == p.shape[1] for p in model.parameters())
    if codes & {"GL103", "GL202"} or ("GL301" in codes and square and len(figures["layers"]) < 2):
        figures["recurrent"] = probes.recurrent_profile(model, inputs, _time_axis(model, inputs))
    return figures


def _env_figures(model, inputs, env: dict) -> dict:
    """The data figures of a registered env (its observation bounds, from gradlint.analysis.envs)
    and the model probed at inputs spread over them."""
    from gradlint.verify import probes
    from gradlint.analysis.envs import uniform_scale

    low, high = env["low"], env["high"]
    integer = env.get("dtype") == "uint8"
    source = f"the observation bounds of {env['id']} ({env['source']})"
    data = {"source": source, "env": env["id"], "dtype": env.get("dtype"), "min": min(low), "max": max(high),
            "integer_valued": integer}
    features = inputs[0].shape[-1] if inputs and inputs[0].dim() else 0
    if not integer and len(low) != features:
        data["why_not"] = f"the model's input has {features} features, {env['id']}'s observations {len(low)}"
        data["features"] = []
        return data
    data["features"] = [{"scale": uniform_scale(lo, hi), "abs_max": max(abs(lo), abs(hi))}
                        for lo, hi in zip(low, high)]
    if all(math.isfinite(v) for v in low + high):
        measured = probes.env_bounds_profile(model, inputs, low, high, integer)
        data["nonfinite"] = measured["bounds"]["nonfinite"]
        data["output_abs_max"] = measured["bounds"]["output_abs_max"]
        unit, bounded = measured["unit"]["first_layer_grad_norm"], measured["bounds"]["first_layer_grad_norm"]
        if unit and bounded is not None:
            data["grad_norm_at_bounds_vs_unit"] = bounded / unit
    return data


def _to(value, device):
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value.to(device) if hasattr(value, "to") else value


def _shape(value):
    if isinstance(value, (tuple, list)):
        return [_shape(v) for v in value]
    return list(value.shape) if hasattr(value, "shape") else None


def _time_axis(model, inputs) -> int | None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
            return 1 if module.batch_first else 0
    if inputs and inputs[0].dim() == 3:
        return 0
    return None


def _arguments(argv: list[str]) -> dict:
    options = {"device": "cpu", "memory_mb": None}
    for flag, value in zip(argv, argv[1:]):
        if flag == "--device":
            options["device"] = value
        elif flag == "--memory-mb":
            options["memory_mb"] = int(value)
    return options


def prepare_device(device: str, memory_mb: int | None) -> str | None:
    """Check and initialise an accelerator before any user code runs; None if it is usable,
    else why not (one line)."""
    import torch

    if not str(device).startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = ("this torch is built without CUDA" if torch.version.cuda is None else
               "no CUDA GPU is visible" + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""))
        return f"CUDA is not available: {why} (torch {torch.__version__})"
    try:
        index = torch.device(device).index or 0
        torch.cuda.set_device(index)
        torch.zeros(1, device=device).sum().item()  # creates the context now, not inside a model's timeout
        if memory_mb:  # --memory caps the GPU memory here; host memory is not limited on CUDA
            total = torch.cuda.get_device_properties(index).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, memory_mb * 1024 * 1024 / total), index)
    except Exception as exc:  # noqa: BLE001 - a broken driver, an invalid index
        return f"CUDA could not be initialised on {device}: {type(exc).__name__}: {exc}".splitlines()[0][:300]
    # measure in full fp32, as on the CPU: TF32 convolutions and recurrences (cuDNN's default) blur
    # the figures. The flags of every torch version; torch >= 2.9 maps them onto conv and rnn alike,
    # and user code can still read them with either API.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return None


def _error_reply(request_id, exc: BaseException, device: str, memory_mb: int | None) -> dict:
    reply = {"id": request_id, "status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryError" and memory_mb:
        reply["error"] = (f"out of GPU memory (the worker may use {memory_mb} MiB on {device}: raise --memory); "
                          + reply["error"])[:500]
    if "CUDA error" in text or "device-side assert" in text or "illegal memory access" in text:
        reply["restart"] = True  # the CUDA context is unusable from here on: the runner starts a fresh worker
    return reply


def _confinement(argv: list[str]) -> dict:
    """`--confine JSON` from the runner: the scratch directory, whether the worker is PID 1 of
    its own sandbox, and the Landlock policy to apply (None: none)."""
    for flag, value in zip(argv, argv[1:]):
        if flag == "--confine":
            return json.loads(value)
    return {"scratch": os.getcwd(), "sandboxed": False, "landlock": None}


RESULT_LIMIT = 32 << 20  # bytes of one model's result; more is a protocol error


def main() -> None:
    options = _arguments(sys.argv[1:])
    confinement = _confinement(sys.argv[1:])
    scratch = confinement["scratch"]
    # the protocol owns the real stdout (a descriptor no child inherits); whatever user code
    # prints goes to stderr
    protocol_fd = os.dup(1)
    protocol = os.fdopen(protocol_fd, "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    ruleset, landlock_abi = _confine_process(confinement)
    import torch  # imported once, before the first model's timeout starts

    problem = prepare_device(options["device"], options["memory_mb"])
    if problem is not None:
        protocol.write(json.dumps({"ready": False, "error": problem, "device_unavailable": True}) + "\n")
        protocol.flush()
        return
    # On the CPU each model runs in a fork of this process, which never runs user code: the
    # model's code cannot reach the reply channel or the next model. A CUDA context does not
    # survive a fork, so on CUDA the models run here, one after the other.
    forking = not options["device"].startswith("cuda") and "--in-process" not in sys.argv and hasattr(os, "fork")
    kept = set(os.listdir(scratch))  # mount points of a project under the scratch directory
    if not forking:
        workdir = _enter_workdir(scratch)
        _confine(workdir)
    protocol.write(json.dumps({"ready": True, "device": options["device"], "landlock": landlock_abi,
                               "isolation": "fork" if forking else "in-process"}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        nonce = request.pop("nonce", None)
        timeout = float(request.pop("timeout", 60.0))
        if forking:
            reply = _measure_in_child(request, timeout, ruleset, protocol_fd, options, scratch)
        else:
            reply = _measure_here(request, options)
            if options["device"].startswith("cuda"):
                torch.cuda.empty_cache()  # the next model gets the memory back
        _end_descendants()
        _clear(scratch, kept if forking else kept | {os.path.basename(workdir)})
        if not forking:
            _clear(workdir, set())
        reply["nonce"] = nonce
        protocol.write(json.dumps(reply, default=_json_default) + "\n")
        protocol.flush()


def _measure_here(request: dict, options: dict) -> dict:
    try:
        return {"id": request.get("id"), "status": "ok", "figures": measure(request)}
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, even SystemExit
        return _error_reply(request.get("id"), exc, options["device"], options["memory_mb"])


def _confine_process(confinement: dict) -> tuple[int | None, int]:
    """Before torch starts a thread: make this process non-dumpable (its descendants cannot read
    its memory, descriptors or environment), apply the Landlock policy, and limit the tasks of
    the sandbox. The Landlock ruleset (kept to add a layer in each model's process) and its ABI."""
    from gradlint.verify import landlock, sandbox

    sandbox.set_dumpable(False)
    try:
        import resource
    except ImportError:  # Windows, with --no-sandbox
        return None, 0
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if confinement.get("sandboxed"):
        # counted per user namespace: here, the sandbox's own (the kernel exempts root)
        resource.setrlimit(resource.RLIMIT_NPROC, (sandbox.TASKS, sandbox.TASKS))
    else:
        _become_subreaper()
    policy = confinement.get("landlock")
    if not policy:
        return None, 0
    fd, abi = landlock.ruleset(landlock.Policy(policy["read"], policy["write"], policy["devices"]))
    landlock.restrict(fd)
    return fd, abi


def _become_subreaper() -> None:
    """Orphaned descendants become this process's children, so `_end_descendants` finds them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _measure_in_child(request: dict, timeout: float, ruleset: int | None, protocol_fd: int, options: dict,
                      scratch: str) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the model's process
        code = 0
        try:
            os.close(read_end)
            os.close(protocol_fd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            _model_process_limits(timeout, ruleset)
            _confine(_enter_workdir(scratch))
            reply = _measure_here(request, options)
            data = (json.dumps(reply, default=_json_default) + "\n").encode()
            while data:
                data = data[os.write(write_end, data):]
        except BaseException:  # noqa: BLE001 - whatever happens, this process ends here
            code = 70
        finally:
            os._exit(code)  # no atexit handlers, no __del__, no daemon threads: the model's code ends now
    os.close(write_end)
    try:
        return _collect(pid, read_end, timeout)
    finally:
        os.close(read_end)


def _enter_workdir(scratch: str) -> str:
    """A fresh directory in the scratch space: the working directory, HOME and TMPDIR of the
    model's code, and the only place the audit hook lets it write to."""
    import tempfile

    workdir = tempfile.mkdtemp(prefix="model-", dir=scratch)
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = tempfile.tempdir = workdir
    return workdir


def _model_process_limits(timeout: float, ruleset: int | None) -> None:
    import resource

    from gradlint.verify import landlock

    os.setpgid(0, 0)
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL: ends with the worker
    except (OSError, AttributeError):
        pass
    if ruleset is not None:
        # a layer of its own: it cannot signal or ptrace the worker, whose domain is the parent
        landlock.restrict(ruleset)
        os.close(ruleset)
    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    seconds = int(timeout * max(1, threads)) + 10  # CPU time never ends a model before its wall-clock timeout
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))


def _collect(pid: int, fd: int, timeout: float) -> dict:
    """The reply the model's process sends on `fd`, or an error reply if it hangs, dies or
    sends anything but one JSON object."""
    import selectors
    import signal
    import time

    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    try:
        pidfd = os.pidfd_open(pid)
        selector.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pidfd = None
    buffer, status, overflow = bytearray(), None, False
    try:
        while status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                _end_descendants((pid,))
                return {"status": "error", "error": f"timed out after {timeout:g} s (a hang or a very slow model); "
                                                    "raise --timeout if the model is just large"}
            for key, _ in selector.select(min(remaining, 0.05) if pidfd is None else remaining):
                if key.fd == fd:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        selector.unregister(fd)
                    elif len(buffer) + len(chunk) > RESULT_LIMIT:
                        overflow = True
                    else:
                        buffer += chunk
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
    _end_descendants((pid,))  # nothing else may still hold the pipe
    os.set_blocking(fd, False)
    try:
        while len(buffer) <= RESULT_LIMIT:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            buffer += chunk
    except BlockingIOError:
        pass
    if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0:
        return {"status": "error", "error": "the model's code ended its process: it " + _ended(status)}
    try:
        reply = json.loads(bytes(buffer))
    except (ValueError, RecursionError):
        reply = None
    if overflow or not _valid_result(reply):
        return {"status": "error", "error": "worker protocol error: the model's process sent no valid result"}
    return reply


def _valid_result(reply) -> bool:
    """One result as `_measure_here` makes it: figures (an object nested 32 deep at most) or an error."""
    if not isinstance(reply, dict) or set(reply) - {"id", "status", "figures", "error", "restart"}:
        return False
    if reply.get("status") == "error":
        return isinstance(reply.get("error"), str) and isinstance(reply.get("restart", False), bool)
    if reply.get("status") != "ok" or not isinstance(reply.get("figures"), dict):
        return False
    level, depth = [reply["figures"]], 0
    while level:
        depth += 1
        if depth > 32:
            return False
        level = [v for item in level for v in (item.values() if isinstance(item, dict) else item)
                 if isinstance(v, (dict, list))]
    return True


def _ended(status: int) -> str:
    import signal

    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = {"SIGKILL": " (out of memory? raise --memory)", "SIGSEGV": " (out of memory? raise --memory)",
                "SIGXCPU": " (its CPU-time limit)"}.get(name, "")
        return f"was killed by {name}{hint}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _end_descendants(groups: tuple[int, ...] = ()) -> None:
    """Kill every process the model left behind (daemons, `setsid` grandchildren, fork bombs)
    and reap them. As PID 1 of the sandbox: everything in it but this process. Without a sandbox:
    every descendant, found as this subreaper's children round by round."""
    import signal
    import time

    if os.name != "posix":
        return
    for _ in range(500):
        if os.getpid() == 1:
            targets = [-1]
        elif os.path.isdir("/proc"):
            targets = _children()
        else:  # no /proc (macOS): the process groups of this process's children
            targets = [-group for group in groups]
        for target in targets:
            try:
                os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            while True:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
                if reaped == 0:
                    break
        except ChildProcessError:
            return  # no child left
        time.sleep(0.002)


def _children() -> list[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                if int(fields[1]) == me:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _clear(scratch: str, kept: set[str]) -> None:
    """Empty the scratch directory for the next model (what a model wrote is not seen again)."""
    import shutil

    for name in os.listdir(scratch):
        if name in kept:
            continue
        path = os.path.join(scratch, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
                "os.truncate", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
_NETWORK_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo"}


def _confine(directory: str) -> None:
    """A tripwire, not a wall: from here on, Python-level writes outside `directory` and any
    network use raise PermissionError with a message that names them (an audit hook; C code,
    other programs and Python code that disables the hook are stopped by the sandbox instead)."""
    allowed = (os.path.realpath(directory) + os.sep, os.devnull)

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real.startswith(allowed[0]) or real == allowed[1]

    def hook(event, args):
        if event == "open" and args:
            path, mode, flags = (list(args) + [None, None])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes and not inside(path):
                raise PermissionError(f"gradlint verify: writing {path} is not allowed (only the temporary directory)")
        elif event in _PATH_EVENTS and args and not inside(args[0]):
            raise PermissionError(f"gradlint verify: {event} on {args[0]} is not allowed")
        elif event in _NETWORK_EVENTS:
            raise PermissionError("gradlint verify: network use is not allowed while building models")

    sys.addaudithook(hook)


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


if __name__ == "__main__":
    main()
