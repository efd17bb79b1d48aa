"""What `gradlint run` keeps about each optimizer and model it watches, and how it names the
user's own code sites (used by the recorder, in the child process that runs the script)."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import weakref
from collections import Counter
from typing import Any, Callable

import torch
from torch import nn

WRAPPERS = ("DistributedDataParallel", "DataParallel", "FullyShardedDataParallel", "OptimizedModule")
# what reaches a model is watched on its first 20 calls, then on up to 4 calls after every 10th
# optimizer step; between those windows the model carries no hook at all (a forward hook costs
# ~10 us a call, more than a small RL policy's forward pass)
INPUT_FIRST, INPUT_EVERY, INPUT_WINDOW = 20, 20, 2


def _internal_roots() -> tuple[str, ...]:
    roots = {os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


class CallSites:
    """file:line of the first frame outside torch, gradlint, installed packages and the standard
    library: the user's line that constructed an optimizer, stepped it or called a model."""

    def __init__(self) -> None:
        self.roots = _internal_roots()
        self.cache: dict[Any, bool] = {}

    def internal(self, code) -> bool:
        known = self.cache.get(code)
        if known is None:
            filename = code.co_filename
            known = filename.startswith("<") or os.path.realpath(filename).startswith(self.roots)
            self.cache[code] = known
        return known

    def user_frame(self, skip: Callable[[Any], bool] | None = None):
        frame = sys._getframe(2)
        while frame is not None and (self.internal(frame.f_code) or (skip is not None and skip(frame))):
            frame = frame.f_back
        return frame

    def site(self, skip=None) -> tuple[str, int] | None:
        frame = self.user_frame(skip)
        return (os.path.abspath(frame.f_code.co_filename), frame.f_lineno) if frame is not None else None


class FeatureStats:
    """Per-feature running moments of what reaches a first layer, kept on the device (no host
    synchronisation until the end)."""

    def __init__(self) -> None:
        self.n = 0
        self.sum = self.sumsq = self.abs_max = self.min = self.max = None
        self.integer = None
        self.nonfinite = None
        self.dtype = None
        self.shape = None
        self.feature_axis = -1
        self.calls = 0

    def add(self, x: torch.Tensor, feature_axis: int) -> None:
        self.calls += 1
        self.dtype = str(x.dtype)
        self.shape = list(x.shape)
        self.feature_axis = feature_axis
        if x.dim() == 0 or x.is_complex():
            return
        flat = x.detach().movedim(feature_axis, -1).reshape(-1, x.shape[feature_axis]).double()
        if flat.shape[0] == 0:
            return
        finite = torch.isfinite(flat)
        clean = torch.where(finite, flat, torch.zeros((), dtype=flat.dtype, device=flat.device))
        parts = (clean.sum(0), (clean * clean).sum(0), clean.abs().amax(0), clean.amin(0), clean.amax(0))
        integer = (clean == clean.round()).all()
        nonfinite = (~finite).any()
        if self.sum is None or self.sum.shape != parts[0].shape:
            self.sum, self.sumsq, self.abs_max, self.min, self.max = parts
            self.integer, self.nonfinite, self.n = integer, nonfinite, flat.shape[0]
            return
        self.sum += parts[0]
        self.sumsq += parts[1]
        self.abs_max = torch.maximum(self.abs_max, parts[2])
        self.min = torch.minimum(self.min, parts[3])
        self.max = torch.maximum(self.max, parts[4])
        self.integer = self.integer & integer
        self.nonfinite = self.nonfinite | nonfinite
        self.n += flat.shape[0]

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"calls_seen": self.calls, "dtype": self.dtype, "shape": self.shape,
                               "feature_axis": self.feature_axis, "n": self.n}
        if self.sum is not None:
            out.update({"sum": self.sum.tolist(), "sumsq": self.sumsq.tolist(), "abs_max": self.abs_max.tolist(),
                        "min": self.min.tolist(), "max": self.max.tolist(), "integer_valued": bool(self.integer),
                        "nonfinite": bool(self.nonfinite)})
        return out


class OptimizerRecord:
    def __init__(self, optimizer, site: tuple[str, int] | None) -> None:
        self.cls = type(optimizer).__name__
        self.site = site
        self.step_sites: Counter = Counter()
        self.steps = 0
        self.norms: list[float | None] = []
        self.pre_clip: list[float | None] = []
        self.loss: list[float | None] = []
        self.layer_norms: list[tuple[int, list[float | None]]] = []
        self.layers: list[str] = []
        self.layer_of: list[int] = []
        self.params: list[torch.Tensor] = []
        self.param_ids: set[int] = set()
        self.index_of: dict[int, int] = {}
        self.lr = None
        self.amp_scale: list[float] = []
        self.amp_skipped: list[int] = []
        self.clip = {"calls": 0, "kinds": set(), "max_norm": None, "sites": Counter(), "on_scaled_gradients": 0,
                     "loss_scale": None}
        self.sharded = False
        self.last_backward = -1

    def refresh_params(self, optimizer, names: dict[int, str]) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if len(params) == len(self.params) and all(a is b for a, b in zip(params, self.params)):
            return
        self.params = params
        self.param_ids = {id(p) for p in params}
        self.index_of = {id(p): i for i, p in enumerate(params)}
        self.layers, self.layer_of = [], []
        for i, param in enumerate(params):
            name = names.get(id(param), f"param{i}")
            layer = name.rsplit(".", 1)[0] if "." in name else name
            if layer not in self.layers:
                self.layers.append(layer)
            self.layer_of.append(self.layers.index(layer))
        self.sharded = any(type(p).__name__ == "DTensor" or getattr(p, "_is_flat_param", False) for p in params)
        try:
            self.lr = float(optimizer.param_groups[0].get("lr"))
        except (TypeError, ValueError):
            self.lr = None

    @property
    def name(self) -> str:
        """`train.py:57 Adam`: where the script built it, and its class."""
        site = f"{os.path.basename(self.site[0])}:{self.site[1]}" if self.site else "?"
        return f"{site} {self.cls}"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "class": self.cls,
            "site": {"file": self.site[0], "line": self.site[1]} if self.site else None,
            "step_sites": [{"file": f, "line": l, "count": n} for (f, l), n in self.step_sites.most_common()],
            "steps": self.steps, "lr": self.lr, "parameters": len(self.params), "sharded": self.sharded,
            "norms": self.norms, "pre_clip": self.pre_clip, "loss": self.loss,
            "layers": self.layers, "layer_norms": [{"step": s, "norms": n} for s, n in self.layer_norms],
            "amp": {"scale": self.amp_scale, "skipped": len(self.amp_skipped), "skipped_at": self.amp_skipped[:50],
                    "min_scale": min(self.amp_scale) if self.amp_scale else None} if self.amp_scale or self.amp_skipped else {},
            "clip": {**{k: v for k, v in self.clip.items() if k not in ("kinds", "sites")},
                     "kinds": sorted(self.clip["kinds"]),
                     "sites": [{"file": f, "line": l, "count": n} for (f, l), n in self.clip["sites"].most_common()]},
        }


class ModelRecord:
    def __init__(self, module: nn.Module, owner: str, path: str) -> None:
        self.ref = weakref.ref(module)
        self.cls = type(module).__name__
        self.owner = owner  # the class of the outermost module it belongs to (Agent for agent.critic)
        self.path = path  # its attribute path in that module ("critic"), "" for the module itself
        self.calls = 0
        self.call_sites: Counter = Counter()
        self.first_layer: str | None = None
        self.first_layer_type: str | None = None
        self.inputs = FeatureStats()
        self.model_input: dict = {}
        self.output_abs_max = None
        self.sampling = False  # this call's input is to be measured at the first layer
        self.sample_output = False
        self.budget = INPUT_FIRST  # calls still to watch in this window
        self.hooks: list = []  # while watched: the model's pre/post hooks and its first layer's
        self.profiles: list[dict] = []
        self.layer_hook = None
        self.armed: dict[int, list] = {}  # step -> activation hook handles
        self.activations: dict[str, torch.Tensor] = {}
        self.order: list[str] = []

    def to_dict(self) -> dict:
        return {
            "class": self.cls, "owner": self.owner, "path": self.path, "calls": self.calls,
            "call_sites": [{"file": f, "line": l, "count": n} for (f, l), n in self.call_sites.most_common(10)],
            "first_layer": self.first_layer, "first_layer_type": self.first_layer_type,
            "inputs": self.inputs.to_dict(), "model_input": self.model_input,
            "output_abs_max": float(self.output_abs_max) if self.output_abs_max is not None else None,
            "profiles": self.profiles,
        }


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item)]
    return []


def unwrap(module: nn.Module) -> nn.Module:
    while type(module).__name__ in WRAPPERS and isinstance(getattr(module, "module", getattr(module, "_orig_mod", None)), nn.Module):
        module = getattr(module, "module", None) or module._orig_mod
    return module


def class_name(module: nn.Module) -> str:
    """The user's class of a module, also under FSDP2's `fully_shard` (which swaps in `FSDP<Class>`)."""
    name = type(module).__name__
    if name.startswith("FSDP"):
        for base in type(module).__mro__[1:]:
            if base.__name__ == name[4:]:
                return base.__name__
    return name
