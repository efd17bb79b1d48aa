"""Measurements on a built model (torch is imported here, and only here and in the worker).

Every probe returns plain numbers (Python floats, copied off the device, which synchronises
it); `gradlint.verify.verdict` decides what they mean. Probes run on the device of the model
and its inputs; the random numbers they draw (inputs, targets, re-initialised weights) are
drawn on the CPU and moved there, so a model gets the same numbers on any device.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
RECURRENT_TYPES = (nn.RNN, nn.LSTM, nn.GRU)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def device_of(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def randn(*shape, device=None, seed: int | None = None) -> torch.Tensor:
    """Standard normal numbers drawn on the CPU (device-independent), then moved to `device`."""
    if seed is not None:
        torch.manual_seed(seed)
    return torch.randn(*shape).to(device) if device is not None else torch.randn(*shape)


def _initialise(param: torch.Tensor, init) -> None:
    """Apply an nn.init function through a CPU copy: the same values on every device."""
    with torch.no_grad():
        values = torch.empty(param.shape, dtype=torch.float32)
        init(values)
        param.copy_(values.to(device=param.device, dtype=param.dtype))


def tensors_of(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in tensors_of(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in tensors_of(item)]
    return []


def scalar_loss(output: Any) -> torch.Tensor:
    tensors = [t for t in tensors_of(output) if t.is_floating_point() and t.requires_grad]
    if not tensors:
        raise ValueError("the model's output has no differentiable tensor")
    return sum(t.float().pow(2).mean() for t in tensors)  # type: ignore[return-value]


def call_order(model: nn.Module, inputs: list[torch.Tensor]) -> list[tuple[str, nn.Module]]:
    """Weight layers in the order the forward pass calls them."""
    names = {id(m): n for n, m in model.named_modules()}
    order: list[tuple[str, nn.Module]] = []
    hooks = []

    def hook(module, _inputs, _output):
        if all(m is not module for _, m in order):
            order.append((names.get(id(module), "?"), module))

    for module in model.modules():
        if isinstance(module, WEIGHT_TYPES):
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in hooks:
            handle.remove()
    return order


def gradient_profile(model: nn.Module, inputs: list[torch.Tensor]) -> dict:
    """One backward pass: per-layer weight-gradient norms (forward order), their growth from
    the output back to the input, activation variances, and He's c measured on the weights."""
    order = call_order(model, inputs)
    variances: dict[int, float] = {}
    hooks = []

    def hook(module, _inputs, output):
        if isinstance(output, torch.Tensor):
            variances[id(module)] = float(output.detach().float().var())

    for _, module in order:
        hooks.append(module.register_forward_hook(hook))
    model.zero_grad(set_to_none=True)
    try:
        output = model(*inputs)
        loss = scalar_loss(output)
        loss.backward()
    finally:
        for handle in hooks:
            handle.remove()
    layers = []
    nonfinite = not bool(torch.isfinite(loss.detach()))
    for name, module in order:
        weight = getattr(module, "weight", None)
        if weight is None or weight.grad is None:
            continue
        grad = weight.grad
        nonfinite |= not bool(torch.isfinite(grad).all())
        fan_in = weight[0].numel() if weight.dim() > 1 else weight.numel()
        layers.append({
            "name": name,
            "grad_norm": _finite(float(grad.norm())),
            "activation_var": _finite(variances.get(id(module), float("nan"))),
            "he_c": _finite(0.5 * fan_in * float(weight.detach().float().var())),
        })
    for name, param in model.named_parameters():  # weights used directly: nn.Parameter(torch.randn(...))
        if param.dim() == 2 and param.grad is not None and all(not name.startswith(l["name"] + ".") for l in layers):
            if any(param is getattr(m, "weight", None) for _, m in order):
                continue
            nonfinite |= not bool(torch.isfinite(param.grad).all())
    norms = [l["grad_norm"] for l in layers]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))) if grads else 0.0
    nonfinite |= not math.isfinite(total)
    result: dict[str, Any] = {"layers": layers, "nonfinite": nonfinite, "loss": _finite(float(loss.detach())),
                              "grad_norm_total": _finite(total)}
    if len(norms) >= 2 and all(n is not None and n > 0 for n in norms):
        result["first_last_ratio"] = norms[0] / norms[-1]
        logs = [math.log(n) for n in reversed(norms)]  # from the output back to the input
        result["grad_growth_per_layer"] = math.exp(_slope(logs))
    variances_list = [l["activation_var"] for l in layers[:-1]]
    if len(variances_list) >= 2 and all(v is not None and v > 0 for v in variances_list):
        result["activation_growth_per_layer"] = math.exp(_slope([math.log(v) for v in variances_list]))
        result["activation_variance_ratio"] = max(variances_list) / min(variances_list)
    cs = [l["he_c"] for l in layers if l["he_c"] is not None]
    if cs:
        result["max_he_c"] = max(cs)
    return result


def _slope(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def summarize(profile: dict) -> dict:
    keys = ("first_last_ratio", "grad_growth_per_layer", "activation_growth_per_layer",
            "activation_variance_ratio", "max_he_c", "nonfinite", "loss", "grad_norm_total")
    return {k: profile[k] for k in keys if k in profile}


def with_he_init(model: nn.Module) -> nn.Module:
    copy_ = copy.deepcopy(model)
    for module in copy_.modules():
        if isinstance(module, WEIGHT_TYPES):
            _initialise(module.weight, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for name, param in copy_.named_parameters():
        if param.dim() == 2 and not any(param is getattr(m, "weight", None) for m in copy_.modules()):
            _initialise(param, lambda w: w.normal_(0, 1 / math.sqrt(w.shape[0])))
    return copy_


def with_layernorm(model: nn.Module, inputs: list[torch.Tensor]) -> nn.Module | None:
    """A copy with LayerNorm after every Linear layer but the last one called."""
    copy_ = copy.deepcopy(model)
    order = [(n, m) for n, m in call_order(copy_, inputs) if isinstance(m, nn.Linear)]
    if len(order) < 2:
        return None
    for name, module in order[:-1]:
        parent_name, _, attr = name.rpartition(".")
        parent = copy_.get_submodule(parent_name) if parent_name else copy_
        norm = nn.LayerNorm(module.out_features).to(device=module.weight.device, dtype=module.weight.dtype)
        replacement = nn.Sequential(module, norm)
        if isinstance(parent, (nn.Sequential, nn.ModuleList)) and attr.isdigit():
            parent[int(attr)] = replacement
        else:
            setattr(parent, attr, replacement)
    return copy_


def with_small_output(model: nn.Module, inputs: list[torch.Tensor]) -> nn.Module | None:
    copy_ = copy.deepcopy(model)
    order = call_order(copy_, inputs)
    if not order:
        return None
    last = order[-1][1]
    _initialise(last.weight, lambda w: nn.init.uniform_(w, -3e-3, 3e-3))
    return copy_


def input_scale_profile(model: nn.Module, inputs: list[torch.Tensor], scales: tuple[float, ...]) -> dict:
    """Global and first-layer gradient norms with every input multiplied by each scale."""
    out: dict[str, Any] = {}
    for scale in scales:
        scaled = [x * scale if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
        model.zero_grad(set_to_none=True)
        loss = scalar_loss(model(*scaled))
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        total = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
        order = call_order(model, scaled)
        first = getattr(order[0][1], "weight", None) if order else None
        out[str(scale)] = {
            "grad_norm": _finite(total),
            "first_layer_grad_norm": _finite(float(first.grad.norm())) if first is not None and first.grad is not None else None,
            "output_abs_max": _finite(max(float(t.detach().abs().max()) for t in tensors_of(model(*scaled)))),
        }
    return out


def recurrent_profile(model: nn.Module, inputs: list[torch.Tensor], time_axis: int | None, lengths=(10, 50, 200)) -> dict:
    """Largest singular value of each recurrent matrix, and the gradient of the last output with
    respect to the first input as the unrolled length grows."""
    result: dict[str, Any] = {"matrices": [], "grad_first_input": {}}
    for name, module in model.named_modules():
        if isinstance(module, RECURRENT_TYPES):
            weight = module.weight_hh_l0.detach().float()
            gates = {nn.LSTM: 4, nn.GRU: 3}.get(type(module), 1)
            chunks = weight.chunk(gates, 0)
            sigma = max(float(torch.linalg.matrix_norm(c, ord=2)) for c in chunks)
            result["matrices"].append({"name": f"{name}.weight_hh_l0", "sigma_max": sigma,
                                       "nonlinearity": getattr(module, "nonlinearity", None)})
    for name, param in model.named_parameters():
        if "weight_hh" in name:  # already reported through its nn.RNN/LSTM/GRU module
            continue
        if param.dim() == 2 and param.shape[0] == param.shape[1] and "hh" in name.lower() or (
                param.dim() == 2 and param.shape[0] == param.shape[1] and name.lower() in ("w", "w_rec", "w_hh", "u")):
            result["matrices"].append({"name": name, "sigma_max": float(torch.linalg.matrix_norm(param.detach().float(), ord=2))})
    modules = [m for m in model.modules() if isinstance(m, RECURRENT_TYPES)]
    if modules:  # unroll the recurrent layer itself: works whatever the model's own inputs are
        module = modules[0]
        axis = 1 if module.batch_first else 0
        for length in lengths:
            shape = [1, 1, module.input_size]
            shape[axis] = length
            x = randn(*shape, device=device_of(module), seed=0).requires_grad_()
            module.zero_grad(set_to_none=True)
            out = module(x)[0]
            out.select(axis, length - 1).float().pow(2).sum().backward()
            result["grad_first_input"][str(length)] = _finite(float(x.grad.select(axis, 0).norm()))
        return result
    if time_axis is None or not inputs or not inputs[0].is_floating_point():
        return result
    base = inputs[0]
    for length in lengths:
        shape = list(base.shape)
        shape[time_axis] = length
        x = randn(*shape, device=base.device, seed=0).to(base.dtype).requires_grad_()
        model.zero_grad(set_to_none=True)
        output = model(x, *inputs[1:])
        tensors = [t for t in tensors_of(output) if t.is_floating_point()]
        if not tensors:
            break
        last = tensors[0]
        if last.dim() == 3 and last.shape[time_axis] == length:  # a sequence out: take its last step
            last = last.select(time_axis, length - 1)
        last.float().pow(2).sum().backward()
        grad = x.grad.select(time_axis, 0) if x.grad is not None else None
        result["grad_first_input"][str(length)] = _finite(float(grad.norm())) if grad is not None else None
    return result


def training_run(model: nn.Module, inputs: list[torch.Tensor], optimizer: str, lr: float, steps: int,
                 clip: float | None, target_scale: float) -> dict:
    """A short synthetic regression towards widely varying targets (rewards at a realistic,
    uneven scale): gradient-norm trajectory, loss, non-finite values."""
    copy_ = copy.deepcopy(model)
    opt_class = getattr(torch.optim, optimizer, torch.optim.Adam)
    opt = opt_class(copy_.parameters(), lr=lr)
    torch.manual_seed(1)
    with torch.no_grad():
        produced = [t for t in tensors_of(copy_(*inputs)) if t.is_floating_point()]
    if not produced:
        return {"error": "no float output"}
    targets = [randn(*t.shape) * target_scale for t in produced]
    for target in targets:  # a few rare, much larger targets, as sparse large rewards give
        flat = target.view(-1)
        flat[:: max(1, flat.numel() // 8)] *= 10
    targets = [target.to(t.device) for target, t in zip(targets, produced)]
    norms, losses = [], []
    nonfinite = False
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        outputs = [t for t in tensors_of(copy_(*inputs)) if t.is_floating_point()]
        loss = sum(((o.float() - t) ** 2).mean() for o, t in zip(outputs, targets))
        loss.backward()
        total = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in copy_.parameters() if p.grad is not None])))
        norms.append(_finite(total))
        losses.append(_finite(float(loss.detach())))
        if not math.isfinite(total) or not math.isfinite(float(loss.detach())):
            nonfinite = True
            break
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(copy_.parameters(), clip)
        opt.step()
    finite = sorted(n for n in norms if n is not None)
    # a spike: a norm far above the median of the norms before it (after a warm-up, since the
    # first steps of any fit have the largest gradients), as GradMonitor detects it in training
    spike = None
    for index in range(10, len(norms)):
        history = sorted(n for n in norms[:index] if n is not None)
        if norms[index] is not None and history and history[len(history) // 2] > 0:
            ratio = norms[index] / history[len(history) // 2]
            spike = ratio if spike is None else max(spike, ratio)
    return {
        "grad_norms": norms,
        "losses": losses,
        "nonfinite": nonfinite,
        "spike_ratio": spike,
        "max_grad_norm": max(finite) if finite else None,
        "diverged": nonfinite or (losses[0] is not None and losses[-1] is not None and losses[-1] > 10 * losses[0]),
    }
