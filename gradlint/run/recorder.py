"""What `gradlint run` measures in the user's process, through torch's own hooks (imported only
in the child process that runs the script).

- every optimizer (named by its construction site, file:line, and class): before each step, a
  global step pre-hook (`torch.optim.optimizer.register_optimizer_step_pre_hook`) takes the
  gradient norm of each parameter tensor with one fused `torch._foreach_norm` and one host
  synchronisation, and from them the global and per-layer norms; the step's call site; the
  loss of the last `backward()`; the pre-clip norm `clip_grad_norm_` returned (it is wrapped);
  the AMP loss scale and the steps a GradScaler skipped;
- every model called on data (a module called from outside any other module's forward, found by
  a global forward pre-hook until every optimizer has stepped twice): per-feature statistics of
  what reaches its first weight layer, accumulated on the device on sampled calls; per-layer
  activation variances and weight-gradient norms in forward order at a few steps.

After `steps` steps of any one optimizer (or after `time_limit` seconds) the next step raises
`StopRun`, a BaseException, so the script's `except Exception:` does not swallow it and its
`finally:` blocks run.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import weakref
from typing import Callable

import torch
from torch import nn

from gradlint.run.records import (INPUT_EVERY, INPUT_FIRST, INPUT_WINDOW, CallSites, ModelRecord, OptimizerRecord,
                                   class_name, tensors_in, unwrap)

WEIGHT_TYPES = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                nn.ConvTranspose3d, nn.Embedding, nn.EmbeddingBag, nn.RNNBase, nn.RNNCellBase)
# the layers whose weight-gradient ratio and activation growth the depth verdict reads (as verify's probes)
DEPTH_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
PROFILE_STEPS = (10, 100, 1000)  # per-layer activation/gradient profiles (and the first step)
# an optimizer the script clips with clip_grad_norm_ right before the step: the clip's own total
# is the pre-clip norm, so the per-tensor norms (for the per-layer series) are taken every 10th step
LAYER_EVERY_WHEN_CLIPPED = 10
MAX_LAYER_SERIES = 1000  # per-layer norms at every step up to here, then every 10th


class StopRun(BaseException):
    """Raised at an optimizer step once the run has seen enough: unwinds the user's script."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Recorder:
    """Installs the hooks, records, and hands back plain numbers (`measurements()`)."""

    def __init__(self, steps: int = 200, time_limit: float | None = None, progress: bool = False,
                 snapshot: Callable[[dict], None] | None = None, snapshot_every: float = 10.0) -> None:
        self.max_steps = steps
        self.time_limit = time_limit
        self.progress = progress
        self.snapshot = snapshot
        self.snapshot_every = snapshot_every
        self.sites = CallSites()
        self.optimizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.order: list[OptimizerRecord] = []
        self.models: dict[int, ModelRecord] = {}
        self.model_order: list[ModelRecord] = []
        self.parents: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # child -> (parent ref, name)
        self.discovering = True
        self.stack: list[nn.Module] = []
        self.first_layer: dict[int, nn.Module] = {}
        self.activations: dict[int, torch.Tensor] = {}
        self.call_order: list[weakref.ref] = []  # weight layers in the order of their first call
        self.called: set[int] = set()
        self.loss = None
        self.loss_scale = None
        self.backwards = 0
        self.scaled: dict[int, tuple] = {}
        self.scalers: weakref.WeakSet = weakref.WeakSet()
        self.in_scaler_step = None
        self.scaler_fired = False
        self.pending_clips: list[tuple] = []
        self.names: dict[int, str] = {}
        self.started = time.monotonic()
        self.clock = 0  # optimizer steps of all optimizers
        self.done = False
        self.time_up = False
        self.stop_reason: str | None = None
        self.last_snapshot = time.monotonic()
        self.last_progress = 0.0
        self.store = None
        self._undo: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None

    # installation ---------------------------------------------------------------------------

    def install(self) -> "Recorder":
        import torch.nn.modules.module as module_hooks
        import torch.optim.optimizer as optimizer_hooks

        recorder = self
        init = torch.optim.Optimizer.__init__

        def optimizer_init(optimizer, *args, **kwargs):
            init(optimizer, *args, **kwargs)
            recorder._register(optimizer)

        self._patch(torch.optim.Optimizer, "__init__", optimizer_init)
        handle = optimizer_hooks.register_optimizer_step_pre_hook(self._pre_step)
        self._undo.append(handle.remove)
        for register, hook in ((module_hooks.register_module_forward_pre_hook, self._discover_pre),
                               (module_hooks.register_module_forward_hook, self._discover_post)):
            handle = register(hook)
            self._undo.append(handle.remove)
        self._discovery_handles = self._undo[-2:]
        if hasattr(module_hooks, "register_module_module_registration_hook"):
            handle = module_hooks.register_module_module_registration_hook(self._registered)
            self._undo.append(handle.remove)
        backward = torch.Tensor.backward

        def tensor_backward(tensor, *args, **kwargs):
            recorder._on_backward(tensor)
            return backward(tensor, *args, **kwargs)

        self._patch(torch.Tensor, "backward", tensor_backward)
        self._patch_clipping()
        self._patch_scaler()
        if self.time_limit:
            self._timer = threading.Timer(self.time_limit, self._deadline)
            self._timer.daemon = True
            self._timer.start()
        return self

    def uninstall(self) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self._undo.clear()
        for record in self.model_order:
            for handle in record.hooks + [h for hs in record.armed.values() for h in hs]:
                handle.remove()
            record.hooks = []

    def _patch(self, owner, name: str, replacement) -> None:
        original = owner.__dict__.get(name, getattr(owner, name))
        replacement.__wrapped__ = original
        setattr(owner, name, replacement)
        self._undo.append(lambda: setattr(owner, name, original))

    def _patch_clipping(self) -> None:
        import torch.nn.utils as utils
        import torch.nn.utils.clip_grad as clip_grad

        recorder = self
        clip_norm, clip_value = clip_grad.clip_grad_norm_, clip_grad.clip_grad_value_

        def clip_grad_norm_(parameters, max_norm, *args, **kwargs):
            params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
            total = clip_norm(params, max_norm, *args, **kwargs)
            recorder._on_clip(params, total, max_norm, "norm")
            return total

        def clip_grad_value_(parameters, clip_value_, *args, **kwargs):
            params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
            grads = [p.grad for p in params if p.grad is not None]
            total = torch.linalg.vector_norm(torch.stack([g.detach().float().norm() for g in grads])) if grads else None
            result = clip_value(params, clip_value_, *args, **kwargs)
            if total is not None:
                recorder._on_clip(params, total, clip_value_, "value")
            return result

        for module in (clip_grad, utils):
            self._patch(module, "clip_grad_norm_", clip_grad_norm_)
            self._patch(module, "clip_grad_value_", clip_grad_value_)

    def _patch_scaler(self) -> None:
        try:
            from torch.amp.grad_scaler import GradScaler
        except ImportError:  # pragma: no cover - torch < 2.3
            return
        recorder = self
        scale, step = GradScaler.scale, GradScaler.step

        def scaler_scale(scaler, outputs):
            result = scale(scaler, outputs)
            if isinstance(result, torch.Tensor) and scaler.is_enabled() and getattr(scaler, "_scale", None) is not None:
                recorder.scalers.add(scaler)
                if len(recorder.scaled) > 16:
                    recorder.scaled.clear()
                recorder.scaled[id(result)] = (weakref.ref(scaler), scaler._scale.detach().clone())
            return result

        def scaler_step(scaler, optimizer, *args, **kwargs):
            recorder.in_scaler_step, recorder.scaler_fired = (scaler, optimizer), False
            try:
                return step(scaler, optimizer, *args, **kwargs)
            finally:
                skipped = scaler.is_enabled() and not recorder.scaler_fired
                recorder.in_scaler_step = None
                if skipped:  # GradScaler found inf/NaN in the scaled gradients and skipped the step
                    record = recorder._record_of(optimizer)
                    record.amp_skipped.append(record.steps)
                    recorder._consume_clips(record)
                    if getattr(scaler, "_scale", None) is not None:
                        record.amp_scale.append(float(scaler._scale))

        self._patch(GradScaler, "scale", scaler_scale)
        self._patch(GradScaler, "step", scaler_step)

    def _deadline(self) -> None:
        self.time_up = True
        time.sleep(30)  # no optimizer step in 30 s after the time limit: interrupt the script where it is
        if self.stop_reason is None and self.time_up and not self.done:
            self.stop_reason = f"--time-limit {self.time_limit:g} s"
            import _thread

            _thread.interrupt_main()

    # optimizers ------------------------------------------------------------------------------

    def _register(self, optimizer) -> OptimizerRecord:
        record = self.optimizers.get(optimizer)
        if record is None:
            record = OptimizerRecord(optimizer, self.sites.site(skip=lambda f: f.f_locals.get("self") is optimizer))
            self.optimizers[optimizer] = record
            self.order.append(record)
        return record

    def _record_of(self, optimizer) -> OptimizerRecord:
        record = self.optimizers.get(optimizer)
        return record if record is not None else self._register(optimizer)

    def _pre_step(self, optimizer, args, kwargs) -> None:
        record = self._record_of(optimizer)
        if self.in_scaler_step is not None and self.in_scaler_step[1] is optimizer:
            self.scaler_fired = True
        if record.steps >= self.max_steps:
            self.stop_reason = f"--steps {self.max_steps}"
            raise StopRun(self.stop_reason)
        if self.time_up:
            self.stop_reason = f"--time-limit {self.time_limit:g} s"
            raise StopRun(self.stop_reason)
        if not record.params or record.steps < 3:
            self._name_parameters()
        record.refresh_params(optimizer, self.names)
        site = self.sites.site()
        if site is not None:
            record.step_sites[site] += 1
        self._measure(record, optimizer)
        if self.discovering and all(r.steps >= 2 for r in self.order):
            self._end_discovery()
        self.clock += 1
        if not self.discovering and self.clock % INPUT_EVERY == 0:
            for model in self.model_order:
                self._watch(model, INPUT_WINDOW)
        self._arm_profiles(record)
        self._maybe_report(record)
        if self.store is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            try:
                self.store = torch.distributed.distributed_c10d._get_default_store()
            except Exception:  # noqa: BLE001 - no store: each rank reports alone
                self.store = False

    def _measure(self, record: OptimizerRecord, optimizer) -> None:
        step = record.steps
        clips = self._consume_clips(record)
        per_tensor_wanted = (not clips or step % LAYER_EVERY_WHEN_CLIPPED == 0 or step in PROFILE_STEPS
                             or record.sharded or any(c[3] != "norm" or c[5] is not None for c in clips))
        grads, index = [], []
        for i, param in enumerate(record.params if per_tensor_wanted else ()):
            grad = param.grad
            if grad is not None:
                if grad.is_sparse:
                    grad = grad.coalesce()._values()
                elif type(grad).__name__ == "DTensor":
                    grad = grad.to_local()
                grads.append(grad)
                index.append(i)
        extras: list[torch.Tensor] = []
        loss = self.loss if self.backwards != record.last_backward else None
        record.last_backward = self.backwards
        if loss is not None:
            extras.append(loss if self.loss_scale is None else loss / self.loss_scale.to(loss.device))
        extras.extend(c[1] for c in clips)
        scale = None
        if self.in_scaler_step is not None and self.in_scaler_step[1] is optimizer:
            scale = getattr(self.in_scaler_step[0], "_scale", None)
            if scale is not None:
                extras.append(scale)
        values: list[float] = []
        if grads:
            try:
                per_tensor = list(torch._foreach_norm(grads))
            except (RuntimeError, TypeError):  # mixed devices or dtypes: one by one
                per_tensor = [g.norm() for g in grads]
            device = per_tensor[0].device
            stacked = torch.stack([n.detach().to(device=device, dtype=torch.float32) for n in per_tensor])
            if record.sharded and torch.distributed.is_initialized():
                # FSDP: each rank holds a shard of each gradient; the optimizer's norm is over the
                # whole of them. Sum the squares over the ranks, one slot per parameter (a rank
                # whose shard of a parameter is empty still takes part).
                squares = torch.zeros(len(record.params), device=device, dtype=torch.float32)
                squares[torch.tensor(index, device=device)] = stacked.pow(2)
                torch.distributed.all_reduce(squares)
                stacked, index = squares.sqrt(), list(range(len(record.params)))
            extra = [e.detach().reshape(()).to(device=device, dtype=torch.float32) for e in extras]
            values = torch.cat([stacked, torch.stack(extra)]).tolist() if extra else stacked.tolist()  # the one sync
        else:
            values = [float(e) for e in extras]
        tensor_norms, extra_values = values[:len(index)], values[len(index):]
        squares = [v * v for v in tensor_norms]
        total = math.sqrt(sum(squares)) if tensor_norms else 0.0
        if not per_tensor_wanted:  # what clip_grad_norm_ left: total * min(1, max_norm / (total + 1e-6))
            offset = 1 if loss is not None else 0
            pre = math.sqrt(sum(v * v for v in extra_values[offset:offset + len(clips)]))
            max_norm = clips[-1][2]
            total = pre * min(1.0, max_norm / (pre + 1e-6)) if max_norm and math.isfinite(pre) else pre
        record.norms.append(total if math.isfinite(total) else None)
        position = 0
        record.loss.append(None)
        if loss is not None:
            value = extra_values[position]
            record.loss[-1] = value if math.isfinite(value) else None
            position += 1
        record.pre_clip.append(None)
        if clips:  # clip totals taken on AMP-scaled gradients are divided by the scale they carried
            totals = [v / (float(c[5]) if c[5] else 1.0) for v, c in zip(extra_values[position:position + len(clips)], clips)]
            pre = math.sqrt(sum(v * v for v in totals))
            record.pre_clip[-1] = pre if math.isfinite(pre) else None
            position += len(clips)
        if scale is not None:
            record.amp_scale.append(extra_values[position])
        if per_tensor_wanted and (step < MAX_LAYER_SERIES or step % 10 == 0):
            per_layer = [0.0] * len(record.layers)
            for i, square in zip(index, squares):
                per_layer[record.layer_of[i]] += square
            record.layer_norms.append((step, [math.sqrt(v) if math.isfinite(v) else None for v in per_layer]))
        self._profile(record, step, dict(zip(index, tensor_norms)))
        record.steps += 1

    def _consume_clips(self, record: OptimizerRecord) -> list[tuple]:
        """The clips of this optimizer's parameters since its last step, counted."""
        clips = [c for c in self.pending_clips if c[0] in record.param_ids]
        if clips:
            self.pending_clips = [c for c in self.pending_clips if c[0] not in record.param_ids]
        for clip in clips:
            record.clip["calls"] += 1
            record.clip["kinds"].add(clip[3])
            record.clip["max_norm"] = clip[2]
            if clip[4] is not None:
                record.clip["sites"][clip[4]] += 1
            if clip[5] is not None:
                record.clip["on_scaled_gradients"] += 1
                record.clip["loss_scale"] = float(clip[5])
        return clips

    def _on_backward(self, tensor: torch.Tensor) -> None:
        if tensor.numel() == 1 and tensor.is_floating_point():
            self.loss = tensor.detach()
            scaled = self.scaled.pop(id(tensor), None)
            self.loss_scale = scaled[1] if scaled is not None else None
        self.backwards += 1
        self.stack.clear()

    def _on_clip(self, params: list, total: torch.Tensor, max_norm, kind: str) -> None:
        if not params:
            return
        on_scaled = None
        if self.loss_scale is not None:  # the last backward was of a scaled loss: unscaled yet?
            for scaler in list(self.scalers):
                states = getattr(scaler, "_per_optimizer_states", {})
                for optimizer, record in list(self.optimizers.items()):
                    if id(params[0]) in record.param_ids or not record.params:
                        stage = states.get(id(optimizer), {}).get("stage")
                        if stage is None or getattr(stage, "name", "") != "UNSCALED":
                            on_scaled = self.loss_scale
        site = self.sites.site()
        try:
            max_norm = float(max_norm)
        except (TypeError, ValueError):
            max_norm = None
        self.pending_clips.append((id(params[0]), total, max_norm, kind, site, on_scaled))
        if len(self.pending_clips) > 64:  # clips of parameters no optimizer steps
            del self.pending_clips[:32]

    # models ----------------------------------------------------------------------------------

    def _registered(self, parent: nn.Module, name: str, child) -> None:
        if isinstance(child, nn.Module):
            self.parents[child] = (weakref.ref(parent), name)

    def _outermost(self, module: nn.Module) -> tuple[nn.Module, str]:
        path: list[str] = []
        seen = set()
        while module in self.parents and id(module) not in seen:
            seen.add(id(module))
            parent_ref, name = self.parents[module]
            parent = parent_ref()
            if parent is None:
                break
            path.append(name)
            module = parent
        return module, ".".join(reversed(path))

    def _discover_pre(self, module: nn.Module, args) -> None:
        if not self.discovering:
            return
        if not self.stack and id(module) not in self.models:
            self._add_model(module)
        if isinstance(module, WEIGHT_TYPES):
            for active in self.stack:
                if id(active) not in self.first_layer:
                    self.first_layer[id(active)] = module
        self.stack.append(module)

    def _discover_post(self, module: nn.Module, args, output) -> None:
        if not self.discovering:
            return
        while self.stack:
            if self.stack.pop() is module:
                break
        if isinstance(module, DEPTH_TYPES) and torch.is_grad_enabled() and isinstance(output, torch.Tensor):
            if output.is_floating_point() and output.numel() > 1:
                self.activations[id(module)] = output.detach().float().var()
                if id(module) not in self.called:
                    self.called.add(id(module))
                    self.call_order.append(weakref.ref(module))

    def _add_model(self, module: nn.Module) -> None:
        outer, path = self._outermost(module)
        inner = unwrap(module)
        owner = class_name(unwrap(outer)) if path else class_name(inner)
        record = ModelRecord(module, owner, path)
        record.cls = class_name(inner)
        self.models[id(module)] = record
        self.model_order.append(record)
        site = self.sites.site()
        if site is not None:
            record.call_sites[site] += 1
        self._watch(record, INPUT_FIRST)

    def _watch(self, record: ModelRecord, calls: int) -> None:
        module = record.ref()
        record.budget = calls
        if module is None or record.hooks:
            return
        record.hooks.append(module.register_forward_pre_hook(self._model_pre))
        record.hooks.append(module.register_forward_hook(self._model_post))
        layer = self.first_layer.get(id(module)) if record.first_layer is not None else None
        if layer is not None and record.layer_hook is not None:
            record.hooks.append(layer.register_forward_pre_hook(record.layer_hook))

    def _unwatch(self, record: ModelRecord) -> None:
        for handle in record.hooks:
            handle.remove()
        record.hooks = []
        record.sampling = record.sample_output = False

    def _model_pre(self, module: nn.Module, args) -> None:
        record = self.models.get(id(module))
        if record is None or record.budget <= 0:
            return
        record.budget -= 1
        record.calls += 1
        record.sampling = record.sample_output = True
        if record.calls <= 5 and record.calls > 1:
            site = self.sites.site()
            if site is not None:
                record.call_sites[site] += 1
        tensors = tensors_in(args)
        if tensors and not record.model_input:
            first = tensors[0]
            record.model_input = {"dtype": str(first.dtype), "shape": list(first.shape)}
        if record.first_layer is None:
            layer = self.first_layer.get(id(module))
            if layer is not None:
                self._watch_first_layer(record, module, layer)
            elif record.calls > 1 and tensors and isinstance(module, WEIGHT_TYPES):
                self._watch_first_layer(record, module, module)

    def _watch_first_layer(self, record: ModelRecord, module: nn.Module, layer: nn.Module) -> None:
        names = {id(m): n for n, m in module.named_modules()}
        record.first_layer = names.get(id(layer), type(layer).__name__) or type(layer).__name__
        record.first_layer_type = type(layer).__name__
        if isinstance(layer, (nn.Embedding, nn.EmbeddingBag)):
            return  # indices, not features
        axis = 1 if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                       nn.ConvTranspose3d)) else -1
        if isinstance(layer, nn.RNNBase) or isinstance(layer, nn.RNNCellBase):
            axis = -1

        def first_layer_hook(_layer, args):
            if record.sampling and args and isinstance(args[0], torch.Tensor):
                x = args[0]
                if x.dim() >= 2 or axis == -1:
                    record.inputs.add(x, axis if x.dim() > 1 else -1)
                record.sampling = False

        self.first_layer[id(module)] = layer
        record.layer_hook = first_layer_hook
        record.hooks.append(layer.register_forward_pre_hook(first_layer_hook))

    def _model_post(self, module: nn.Module, args, output) -> None:
        record = self.models.get(id(module))
        if record is None or not record.sample_output:
            return
        record.sample_output = False
        floats = [t.detach().abs().amax() for t in tensors_in(output) if t.is_floating_point() and t.numel()]
        if floats:
            top = torch.stack([f.float() for f in floats]).amax()
            record.output_abs_max = top if record.output_abs_max is None else torch.maximum(record.output_abs_max, top)
        record.sampling = False
        if record.budget <= 0 and not self.discovering:
            self._unwatch(record)  # the window is over: no hook until the next one

    def _end_discovery(self) -> None:
        self.discovering = False
        for undo in getattr(self, "_discovery_handles", []):
            undo()
        self.stack.clear()
        self.activations = {}
        for model in self.model_order:
            if model.budget <= 0:
                self._unwatch(model)

    def _name_parameters(self) -> None:
        for record in self.model_order:
            module = record.ref()
            if module is None:
                continue
            outer, _ = self._outermost(module)
            for name, param in unwrap(outer).named_parameters():
                self.names.setdefault(id(param), name)

    # per-layer profiles at a few steps ------------------------------------------------------------

    def _models_of(self, record: OptimizerRecord) -> list[ModelRecord]:
        out = []
        for model in self.model_order:
            module = model.ref()
            if module is not None and any(id(p) in record.param_ids for p in module.parameters()):
                out.append(model)
        return out

    def _optimizers_of(self, model: ModelRecord) -> list[OptimizerRecord]:
        module = model.ref()
        if module is None:
            return []
        ids = {id(p) for p in module.parameters()}
        return [r for r in self.order if r.param_ids & ids]

    def _profile(self, record: OptimizerRecord, step: int, norms: dict[int, float]) -> None:
        """At the first step (from discovery's activations) and at PROFILE_STEPS (armed at the step
        before): per-layer weight-gradient norms and activation variances, in forward order."""
        if step == 0:
            order = [r() for r in self.call_order]
            activations = self.activations
        elif step in PROFILE_STEPS:
            order, activations = None, None
        else:
            return
        for model in self._models_of(record):
            module = model.ref()
            if module is None:
                continue
            if step == 0:
                members = {id(m) for m in module.modules()}
                layers = [m for m in order if m is not None and id(m) in members]
                variances = activations
            else:
                handles = model.armed.pop(step, None)
                if handles is None:
                    continue
                for handle in handles:
                    handle.remove()
                lookup = {id(m): m for m in module.modules()}
                layers = [lookup[i] for i in model.order if i in lookup]
                variances = model.activations
            names = {id(m): n for n, m in module.named_modules()}
            rows = []
            for layer in layers:
                weight = getattr(layer, "weight", None)
                i = record.index_of.get(id(weight)) if weight is not None else None
                if i is None or i not in norms:
                    continue
                var = variances.get(id(layer))
                rows.append({"name": names.get(id(layer), "?"), "grad_norm": norms[i],
                             "activation_var": var})
            if len(rows) >= 2:
                values = [r["activation_var"] for r in rows if isinstance(r["activation_var"], torch.Tensor)]
                if values:
                    flat = torch.stack([v.to(values[0].device) for v in values]).tolist()
                    it = iter(flat)
                    for row in rows:
                        if isinstance(row["activation_var"], torch.Tensor):
                            value = next(it)
                            row["activation_var"] = value if math.isfinite(value) else None
                for row in rows:
                    if not isinstance(row["grad_norm"], float) or not math.isfinite(row["grad_norm"]):
                        row["grad_norm"] = None
                model.profiles.append({"step": step, "optimizer": record.name, "layers": rows})

    def _arm_profiles(self, record: OptimizerRecord) -> None:
        upcoming = record.steps  # the index of the next step of this optimizer
        if upcoming not in PROFILE_STEPS or upcoming >= self.max_steps:
            return
        for model in self._models_of(record):
            module = model.ref()
            if module is None or upcoming in model.armed:
                continue
            model.order, model.activations = [], {}

            def hook(layer, _args, output, model=model):
                if torch.is_grad_enabled() and isinstance(output, torch.Tensor) and output.is_floating_point() \
                        and output.numel() > 1:
                    model.activations[id(layer)] = output.detach().float().var()
                    if id(layer) not in model.order:
                        model.order.append(id(layer))

            model.armed[upcoming] = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, DEPTH_TYPES)]

    # progress and output ----------------------------------------------------------------------

    def _maybe_report(self, record: OptimizerRecord) -> None:
        now = time.monotonic()
        if self.progress and now - self.last_progress > 0.5:
            self.last_progress = now
            steps = max(r.steps for r in self.order)
            sys.stderr.write(f"\r\x1b[2K[gradlint run] step {steps}/{self.max_steps}  {now - self.started:.0f} s")
            sys.stderr.flush()
        if self.snapshot is not None and now - self.last_snapshot > self.snapshot_every:
            self.last_snapshot = now
            self.snapshot(self.measurements())

    def clear_progress(self) -> None:
        if self.progress and self.last_progress:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()

    def measurements(self) -> dict:
        models = []
        for model in self.model_order:
            data = model.to_dict()
            data["optimizers"] = [r.name for r in self.order if r in self._optimizers_of(model)]
            models.append(data)
        return {
            "optimizers": [r.to_dict() for r in self.order],
            "models": models,
            "steps": max((r.steps for r in self.order), default=0),
            "max_steps": self.max_steps,
            "elapsed": time.monotonic() - self.started,
            "stop_reason": self.stop_reason,
        }

