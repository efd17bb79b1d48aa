"""Gradient monitoring for training loops: record the global and per-layer gradient norm at
each update, detect blow-ups, and log them for `gradlint plot`.

    from gradlint.monitor import GradMonitor

    monitor = GradMonitor(model, log_path="grads.jsonl")
    for batch in loader:
        loss.backward()
        total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        monitor.record(step, pre_clip_norm=total, loss=loss.item())
        optimizer.step()

or, one line at set-up: `GradMonitor(model).attach(optimizer)` records before every step.

Norms are computed with fused per-tensor norms (`torch._foreach_norm` where it exists) and one
host synchronisation per record, not one per parameter. torch is imported when a monitor is
created, never by `import gradlint`.

Detection (`SpikeDetector`, shared with `gradlint run`): a non-finite norm or a norm above the
absolute `ceiling` is an event from the first record on; a norm above `spike_factor` times the
running median needs `warmup` records first. One event per excursion: the steps that follow
while the norm stays out of bounds raise none, unless it escalates to non-finite.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable


class GradientExplosion(RuntimeError):
    """Raised by a monitor with `on_event="raise"`."""


# An absolute bound on the gradient norm that needs no warm-up: six orders of magnitude above the
# unit-scale gradients of a normalised network (gradlint's choice; `ceiling=None` turns it off).
DEFAULT_CEILING = 1e6


class SpikeDetector:
    """The blow-up rule of the monitor and of `gradlint run`, in one place.

    `observe(norm)` returns the kind of a new event ("nonfinite", "ceiling", "spike") or None.
    A spike is a norm above `spike_factor` x the median of the last `window` finite norms (Pascanu
    et al. 2013's heuristic: ~10x the average), once `warmup` norms have been seen; non-finite and
    ceiling need no warm-up, so a blow-up at the very first step is an event. One event per
    excursion: while the norm stays out of bounds no new event is raised, except an escalation
    from a finite excursion to non-finite values.
    """

    def __init__(self, window: int = 50, spike_factor: float = 10.0, warmup: int = 10,
                 ceiling: float | None = DEFAULT_CEILING) -> None:
        self.window: deque[float] = deque(maxlen=window)
        self.spike_factor = spike_factor
        self.warmup = warmup
        self.ceiling = ceiling
        self.excursion: str | None = None
        self.median: float | None = None  # the running median the last norm was compared with

    def observe(self, norm: float) -> str | None:
        self.median = sorted(self.window)[len(self.window) // 2] if self.window else None
        if not math.isfinite(norm):
            kind = "nonfinite"
        else:
            kind = None
            if self.ceiling is not None and norm > self.ceiling:
                kind = "ceiling"
            elif self.median and len(self.window) >= self.warmup and norm > self.spike_factor * self.median:
                kind = "spike"
            self.window.append(norm)
        previous, self.excursion = self.excursion, kind
        if kind is None or (previous is not None and not (kind == "nonfinite" and previous != "nonfinite")):
            return None
        return kind


@dataclass
class Event:
    kind: str  # nonfinite | spike | ceiling
    step: int
    name: str
    global_norm: float
    median: float | None
    top_layers: list[tuple[str, float]] = field(default_factory=list)
    ceiling: float | None = None

    def message(self) -> str:
        layers = ", ".join(f"{n} ({v:.3g})" for n, v in self.top_layers)
        if self.kind == "nonfinite":
            what = f"non-finite gradient norm ({self.global_norm})"
        elif self.kind == "ceiling":
            what = f"gradient norm {self.global_norm:.3g} above the ceiling {self.ceiling:.3g}"
        else:
            what = f"gradient norm {self.global_norm:.3g} is {self.global_norm / self.median:.3g}x its running median {self.median:.3g}"
        return f"[{self.name}] step {self.step}: {what}; largest layers: {layers}"


class GradMonitor:
    """Records gradient norms of one model (or an iterable of named parameters).

    Parameters: `every` records one update in `every`; `window` and `spike_factor` define a spike
    (norm above `spike_factor` x the running median of the last `window` records, after
    `warmup` records); `ceiling` is an absolute bound (default 1e6, None for none; no warm-up);
    `on_event` is "warn", "raise" or a callable taking an `Event`; `scaler` is an AMP GradScaler
    whose scale is divided out (pass `unscaled=True` to `record` after `scaler.unscale_`);
    `log_path` writes JSON Lines (".jsonl") or CSV (".csv"), a new file unless `append=True`;
    `writer` is a TensorBoard SummaryWriter.
    """

    def __init__(self, model_or_named_parameters, *, name: str = "model", every: int = 1, window: int = 50,
                 spike_factor: float = 10.0, warmup: int = 10, ceiling: float | None = DEFAULT_CEILING,
                 on_event: str | Callable[[Event], Any] = "warn", scaler=None, log_path: str | None = None,
                 append: bool = False, writer=None, per_layer: bool = True) -> None:
        import torch

        self._torch = torch
        if hasattr(model_or_named_parameters, "named_parameters"):
            named = list(model_or_named_parameters.named_parameters())
        else:
            named = list(model_or_named_parameters)
        self.parameters = [(n, p) for n, p in named if p.requires_grad]
        self.layers: list[str] = []
        self._layer_index: list[int] = []
        for param_name, _ in self.parameters:
            layer = param_name.rsplit(".", 1)[0] if "." in param_name else param_name
            if layer not in self.layers:
                self.layers.append(layer)
            self._layer_index.append(self.layers.index(layer))
        self.name = name
        self.every = max(1, every)
        self.detector = SpikeDetector(window, spike_factor, warmup, ceiling)
        self.on_event = on_event
        self.scaler = scaler
        self.writer = writer
        self.per_layer = per_layer
        self.records: list[dict] = []
        self.events: list[Event] = []
        self._calls = 0
        self._handle = None
        self._index = None
        self._scale = 1.0
        self._log = None
        self._csv = None
        if log_path:  # a new log per run: appending to last run's records would mix two runs in one plot
            key = os.path.realpath(log_path)
            fresh = not append and key not in _OPENED  # monitors of one run (actor, critic) share the file
            _OPENED.add(key)
            self._log = open(log_path, "w" if fresh else "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            if log_path.endswith(".csv"):
                self._csv = csv.writer(self._log)
                if self._log.tell() == 0:
                    self._csv.writerow(CSV_COLUMNS)
                    self._log.flush()  # another monitor of this run may open the file next

    # recording ----------------------------------------------------------------------------

    def norms(self) -> tuple[float, dict[str, float]]:
        """(global L2 norm, per-layer L2 norms) of the current gradients, one host sync."""
        torch = self._torch
        grads = [p.grad for _, p in self.parameters if p.grad is not None]
        index = [self._layer_index[i] for i, (_, p) in enumerate(self.parameters) if p.grad is not None]
        if not grads:
            return 0.0, {}
        if hasattr(torch, "_foreach_norm"):
            norms = torch._foreach_norm(grads)
        else:  # pragma: no cover - old torch
            norms = [g.norm() for g in grads]
        device = norms[0].device  # a model split over devices: gather the per-tensor norms on one
        per_tensor = torch.stack([n.to(device=device, dtype=torch.float32) for n in norms])
        squares = per_tensor.pow(2)
        key = (tuple(index), squares.device)
        if self._index is None or self._index[0] != key:  # a host-to-device copy once, not at every record
            self._index = (key, torch.tensor(index, device=squares.device))
        per_layer = torch.zeros(len(self.layers), device=squares.device).index_add_(0, self._index[1], squares)
        values = torch.cat([squares.sum().sqrt().view(1), per_layer.sqrt()]).tolist()  # the one sync
        scale = 1.0
        if self.scaler is not None and not getattr(self, "_unscaled", False):
            scale = float(self.scaler.get_scale()) or 1.0
        self._scale = scale
        total = values[0] / scale
        layers = {name: value / scale for name, value in zip(self.layers, values[1:])} if self.per_layer else {}
        return total, layers

    def record(self, step: int | None = None, *, pre_clip_norm=None, unscaled: bool = False, clipped_norm=None,
               **scalars) -> dict | None:
        """Record the current gradients (call after backward, before or after clipping).

        `pre_clip_norm` is what `clip_grad_norm_` returned (the total norm before clipping); extra
        keyword arguments (loss, reward, action_mean, ...) are logged next to the norms. The
        record holds `grad_norm` (the gradients' norm), or, when `pre_clip_norm` is given,
        `pre_clip_norm` and `post_clip_norm` (the gradients' norm as they are now).
        """
        if clipped_norm is not None:  # the old, misleading name of the same value
            warnings.warn("GradMonitor.record(clipped_norm=) is now pre_clip_norm=", DeprecationWarning,
                          stacklevel=_user_stacklevel())
            pre_clip_norm = clipped_norm if pre_clip_norm is None else pre_clip_norm
        self._calls += 1
        if step is None:
            step = self._calls - 1
        if (self._calls - 1) % self.every:
            return None
        self._unscaled = unscaled
        total, layers = self.norms()
        record: dict[str, Any] = {"name": self.name, "step": step}
        # detection looks at the pre-clip norm where it is given: recorded after clip_grad_norm_, the
        # gradients themselves never exceed the clip threshold, and no blow-up would ever show
        watched = total
        if pre_clip_norm is not None:
            pre_clip = _number(pre_clip_norm) / self._scale
            record["pre_clip_norm"] = pre_clip
            record["post_clip_norm"] = total
            watched = pre_clip
        else:
            record["grad_norm"] = total
        if layers:
            record["layers"] = layers
        for key, value in scalars.items():  # a tensor on any device (loss=loss): copied to the host
            record[key] = _number(value) if hasattr(value, "__float__") else value
        event = self._detect(step, watched, layers)
        if event is not None:
            record["event"] = event.kind
        self.records.append(record)
        self._write(record)
        if event is not None:
            self._handle_event(event)
        return record

    def attach(self, optimizer) -> "GradMonitor":
        """Record automatically before every `optimizer.step()` (a step pre-hook)."""
        def hook(_optimizer, _args, _kwargs):
            self.record()

        self._handle = optimizer.register_step_pre_hook(hook)
        return self

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def close(self) -> None:
        self.detach()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "GradMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # detection ------------------------------------------------------------------------------

    @property
    def ceiling(self) -> float | None:
        return self.detector.ceiling

    def _detect(self, step: int, total: float, layers: dict[str, float]) -> Event | None:
        kind = self.detector.observe(total)
        if kind is None:
            return None
        top = sorted(layers.items(), key=lambda kv: -kv[1] if math.isfinite(kv[1]) else -math.inf)[:3]
        if kind == "nonfinite":
            top = [(n, v) for n, v in layers.items() if not math.isfinite(v)][:3] or top
        return Event(kind, step, self.name, total, self.detector.median if kind == "spike" else None, top,
                     self.detector.ceiling)

    def _handle_event(self, event: Event) -> None:
        self.events.append(event)
        if callable(self.on_event):
            self.on_event(event)
        elif self.on_event == "raise":
            raise GradientExplosion(event.message())
        elif self.on_event == "warn":  # pointing at the user's line, not at gradlint or torch
            warnings.warn(event.message(), RuntimeWarning, stacklevel=_user_stacklevel())

    # output -----------------------------------------------------------------------------------

    def _write(self, record: dict) -> None:
        if self._log is not None:
            if self._csv is not None:
                scalars = {k: v for k, v in record.items() if k not in CSV_COLUMNS}
                self._csv.writerow([record["name"], record["step"], record.get("grad_norm", ""),
                                    record.get("pre_clip_norm", ""), record.get("post_clip_norm", ""),
                                    record.get("event", ""), json.dumps(record.get("layers", {})), json.dumps(scalars)])
            else:
                self._log.write(json.dumps(record) + "\n")
            self._log.flush()
        if self.writer is not None:
            norm = record.get("pre_clip_norm", record.get("grad_norm"))
            self.writer.add_scalar(f"{self.name}/grad_norm", norm, record["step"])
            for layer, value in record.get("layers", {}).items():
                self.writer.add_scalar(f"{self.name}/grad_norm/{layer}", value, record["step"])


_OPENED: set[str] = set()  # logs this process has started: a second monitor appends to them
CSV_COLUMNS = ["name", "step", "grad_norm", "pre_clip_norm", "post_clip_norm", "event", "layers", "scalars"]
_INTERNAL = tuple(os.path.dirname(os.path.abspath(p)) + os.sep for p in (__file__,))


def _internal_file(filename: str) -> bool:
    if filename.startswith(_INTERNAL) or filename.startswith("<"):
        return True
    torch = sys.modules.get("torch")
    root = os.path.dirname(getattr(torch, "__file__", "") or "") + os.sep
    return root != os.sep and filename.startswith(root)


def _user_stacklevel() -> int:
    """The `stacklevel` that makes a warning issued by our caller point at the first frame outside
    gradlint and torch: the user's `monitor.record(...)` or `optimizer.step()` line."""
    frame = sys._getframe(2)  # the caller of the function that warns
    level = 2
    while frame is not None and _internal_file(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def norm_of(record: dict) -> float:
    """The norm detection watched in a record: pre-clip when known."""
    return record["pre_clip_norm"] if "pre_clip_norm" in record else record["grad_norm"]


def _number(value) -> float:
    return float(value.detach()) if hasattr(value, "detach") else float(value)


def read_log(path: str) -> list[dict]:
    """Records from a JSON Lines or CSV log written by GradMonitor (also logs of gradlint 0.1,
    whose `global_norm`/`clipped_norm` fields become `grad_norm`/`post_clip_norm`/`pre_clip_norm`)."""
    records: list[dict] = []
    with open(path, encoding="utf-8", newline="") as handle:
        if path.endswith(".csv"):
            for row in csv.DictReader(handle):
                record: dict[str, Any] = {"name": row["name"], "step": int(row["step"])}
                for key in ("grad_norm", "pre_clip_norm", "post_clip_norm", "global_norm", "clipped_norm"):
                    if row.get(key):
                        record[key] = float(row[key])
                if row.get("event"):
                    record["event"] = row["event"]
                record["layers"] = json.loads(row.get("layers") or "{}")
                record.update(json.loads(row.get("scalars") or "{}"))
                records.append(_upgrade(record))
        else:
            for line in handle:
                if line.strip():
                    records.append(_upgrade(json.loads(line)))
    return records


def _upgrade(record: dict) -> dict:
    if "global_norm" in record:
        norm = record.pop("global_norm")
        if "clipped_norm" in record:
            record["pre_clip_norm"] = record.pop("clipped_norm")
            record["post_clip_norm"] = norm
        else:
            record["grad_norm"] = norm
    return record
