"""Measurements on a built model (torch is imported here, and only here and in the worker).

Every probe returns plain numbers (Python floats, copied off the device, which synchronises
it); each rule's `probe_verdict`, with the families of `gradlint.verify.verdict`, decides what
they mean. Probes run on the device of the model and its inputs; the random numbers they draw
(inputs, targets, re-initialised weights) are drawn on the CPU and moved there, so a model gets
the same numbers on any device.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from gradlint.verify.verdict import depth_figures

WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
RECURRENT_TYPES = (nn.RNN, nn.LSTM, nn.GRU)
CELL_TYPES = (nn.RNNCell, nn.LSTMCell, nn.GRUCell)


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
    """The tensors a forward pass returns; of a torch.distributions object (an RL policy's
    `Normal(mu, std)`), the parameters the network computed (a sample carries no gradient)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in tensors_of(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in tensors_of(item)]
    if isinstance(output, torch.distributions.Distribution):
        return distribution_parameters(output)
    return []


def distribution_parameters(dist: "torch.distributions.Distribution") -> list[torch.Tensor]:
    """The parameters a distribution was built from (`loc`, `scale`; `logits` or `probs`, as
    given, not the one derived from it), through Independent/TransformedDistribution wrappers."""
    base = getattr(dist, "base_dist", None)
    if isinstance(base, torch.distributions.Distribution):
        return distribution_parameters(base)
    given = vars(dist)
    return [given[name] for name in getattr(dist, "arg_constraints", {})
            if isinstance(given.get(name), torch.Tensor)]


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
    result.update(depth_figures(norms, [l["activation_var"] for l in layers]))
    cs = [l["he_c"] for l in layers if l["he_c"] is not None]
    if cs:
        result["max_he_c"] = max(cs)
    return result


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


def output_abs_max(model: nn.Module, inputs: list[torch.Tensor]) -> float | None:
    """The largest |output| of the model on these inputs (GL204's action bound)."""
    with torch.no_grad():
        tensors = [t for t in tensors_of(model(*inputs)) if t.is_floating_point()]
    return _finite(max(float(t.abs().max()) for t in tensors)) if tensors else None


def bounded_inputs(like: torch.Tensor, low: list[float], high: list[float], integer: bool, seed: int = 0) -> torch.Tensor:
    """Inputs of `like`'s shape spread uniformly over an env's observation bounds [low, high]
    along the last dimension (one bound for all features when a single one is given): the scale
    the env really produces, drawn on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    features = like.shape[-1] if like.dim() else 1
    lo = torch.tensor(low if len(low) == features else [low[0]] * features, dtype=torch.float64)
    hi = torch.tensor(high if len(high) == features else [high[0]] * features, dtype=torch.float64)
    values = lo + (hi - lo) * torch.rand(*like.shape, generator=generator, dtype=torch.float64)
    if integer:
        values = values.round()
    return values.to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float32)


def env_bounds_profile(model: nn.Module, inputs: list[torch.Tensor], low: list[float], high: list[float],
                       integer: bool) -> dict:
    """The model at inputs spread over the env's observation bounds, next to unit-scale inputs:
    first-layer gradient norms, non-finite values, and the largest |output|."""
    out: dict[str, Any] = {}
    at_bounds = [bounded_inputs(inputs[0], low, high, integer)] + list(inputs[1:])
    for label, batch in (("unit", inputs), ("bounds", at_bounds)):
        model.zero_grad(set_to_none=True)
        loss = scalar_loss(model(*batch))
        loss.backward()
        order = call_order(model, batch)
        first = getattr(order[0][1], "weight", None) if order else None
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        total = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
        out[label] = {
            "grad_norm": _finite(total),
            "first_layer_grad_norm": _finite(float(first.grad.norm())) if first is not None and first.grad is not None else None,
            "output_abs_max": output_abs_max(model, batch),
            "nonfinite": not math.isfinite(total) or not math.isfinite(float(loss.detach())),
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
        elif isinstance(module, CELL_TYPES):
            gates = {nn.LSTMCell: 4, nn.GRUCell: 3}.get(type(module), 1)
            chunks = module.weight_hh.detach().float().chunk(gates, 0)
            result["matrices"].append({"name": f"{name}.weight_hh", "sigma_max": max(
                float(torch.linalg.matrix_norm(c, ord=2)) for c in chunks)})
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
    if any(isinstance(m, CELL_TYPES) for m in model.modules()) and len(inputs) >= 2:
        # a cell agent, forward(x, h) -> (y, h) (PyMARL's RNNAgent): unroll the model itself over T
        unrolled = cell_unroll(model, inputs, lengths)
        if unrolled is None:
            result["why_not"] = "the model's forward(x, h) returns no new hidden state of h's shape to feed back"
        else:
            result["grad_first_input"] = unrolled
            result["unrolled"] = "forward(x, h) -> (y, h), fed back T times"
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


def cell_unroll(model: nn.Module, inputs: list[torch.Tensor], lengths=(10, 50, 200)) -> dict | None:
    """For `forward(x, h) -> (y, h')`: feed h' back T times (a fresh x each step, the same
    sequence for every T) and take the gradient of the last y w.r.t. the first x."""
    x0, h0 = inputs[0], inputs[1]
    if not (isinstance(h0, torch.Tensor) and h0.is_floating_point() and x0.is_floating_point()):
        return None
    with torch.no_grad():
        probe = tensors_of(model(x0, h0, *inputs[2:]))
    hidden = next((i for i, t in enumerate(probe) if t.shape == h0.shape), None)
    output = next((i for i, t in enumerate(probe) if i != hidden and t.is_floating_point()), hidden)
    if hidden is None:
        return None
    torch.manual_seed(0)
    sequence = [torch.randn(*x0.shape).to(device=x0.device, dtype=x0.dtype) for _ in range(max(lengths))]
    grads: dict[str, float | None] = {}
    for length in lengths:
        first = sequence[0].clone().requires_grad_()
        h = h0
        model.zero_grad(set_to_none=True)
        for t in range(length):
            parts = tensors_of(model(first if t == 0 else sequence[t], h, *inputs[2:]))
            h, y = parts[hidden], parts[output]
        y.float().pow(2).sum().backward()
        grads[str(length)] = _finite(float(first.grad.norm())) if first.grad is not None else None
    return grads
