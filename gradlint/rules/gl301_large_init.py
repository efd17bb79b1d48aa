from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.models import Init, Layer, ModelDescription
from gradlint.analysis.models.constructor import first_argument, init_from_call, is_init_function
from gradlint.analysis.models.weights import probed_gain
from gradlint.analysis.syntax import FUNCTIONS, bodies, headers, is_compound, receiver_text, statements
from gradlint.analysis.values import UNKNOWN, known
from gradlint.context import FileContext, file_may_model
from gradlint.diagnostics import Applicability, Diagnostic, Fix, Severity
from gradlint.edits import replace
from gradlint.rules._models import spelled
from gradlint.rules.base import Option, Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict

STD_CEILING = 0.5  # where fan-in is unknown: c > 2 for any layer with more than 16 inputs
EXEMPT_KINDS = {"Embedding", "EmbeddingBag"}


Users = list[tuple[ModelDescription, Layer, Layer]]  # (model, the layer rated, the layer on its forward path)


def layer_inits(models: list[ModelDescription], applied=()) -> dict[int, tuple[Init, Users]]:
    """Each weight-init call, with the layers it sets last (an init applied by `self.apply` can
    set many), and the inits applied from outside a model (`model.apply(fn)`). Only layers
    whose weight is a layer's weight are read: Parameters the model never uses as a matrix
    operand (positional embeddings, tokens) are not."""
    found: dict[int, tuple[Init, Users]] = {}

    def add(model: ModelDescription, layer: Layer, on_path: Layer) -> None:
        if not on_path.judged or layer.kind in EXEMPT_KINDS:
            return
        init = layer.last_weight_init()
        if init is None or init.call is None:
            return
        entry = found.setdefault(id(init.call), (init, []))
        if all(existing is not layer for _, existing, _ in entry[1]):
            entry[1].append((model, layer, on_path))

    for model in models:
        for layer in model.all_layers():
            add(model, layer, layer)
    for model, original, copy in applied:
        add(model, copy, original)
    return found


def rated_gain(ctx: FileContext, model: ModelDescription, layer: Layer, on_path: Layer) -> object:
    """He's c of a layer's weight as the model uses it: with the factors that scale its output
    right after it, and sizes that cancel out (`randn(k, dim)` then `* dim ** -0.5`)."""
    gain = layer.gain()
    for factor in on_path.scales:
        gain = gain * factor**2 if known(gain) and known(factor) else UNKNOWN
    if not known(gain) and layer is on_path:
        gain = probed_gain(ctx.models, model, layer)
    return gain


def normalised(layer: Layer) -> bool:
    """Every op right after the weight on the forward paths is a normalisation (LayerNorm
    after the matrix): the next layer sees unit-scale activations whatever the init."""
    return bool(layer.after) and layer.after <= {"norm"}


def beside_softmax(layer: Layer) -> bool:
    """A matrix that mixes attention maps (talking heads): a softmax right before or after it."""
    return "act:softmax" in layer.after or "act:softmax" in layer.before


def too_large_without_fan(init: Init) -> str | None:
    """Why an init is large whatever the layer's width, or None."""
    p = init.params
    if init.method in ("normal", "trunc_normal", "randn"):
        std = p.get("std", 1.0)
        if known(std) and abs(std) >= STD_CEILING:
            return f"weight std {std:.3g}"
    if init.method == "uniform":
        low, high = p.get("a", 0.0), p.get("b", 1.0)
        if known(low) and known(high) and (high - low) / 12**0.5 >= STD_CEILING:
            return f"uniform({low:.3g}, {high:.3g}) has std {(high - low) / 12 ** 0.5:.3g}"
    if init.method in ("orthogonal", "xavier_normal", "xavier_uniform"):
        gain = p.get("gain", 1.0)
        if known(gain) and abs(gain) > 2:
            return f"gain {gain:.3g}"
    return None


def inits_in_functions(ctx: FileContext) -> list[tuple[Init, str]]:
    """Init calls in the file's functions (`def weights_init(m): m.weight.data.normal_(0, 1)`),
    with the function's name; the tensors a function rescales afterwards are left out (their
    final scale is not the init's), and so are the rescalings themselves. Model classes
    defined inside a function are models of their own, not code of the function."""
    models = ctx.models
    found: list[tuple[Init, str]] = []
    for function in _module_functions(ctx.tree):
        inits = []
        for statement in _statements_outside_models(models, function.body):
            for call, _ in ctx.symbols.calls(statement) if not is_compound(statement) else _header_calls(ctx, statement):
                init = init_from_call(models, call, {}, statement)
                if init is not None and init[1].method != "scale":
                    inits.append(init)
        if inits:
            rescaled = _rescaled_targets(ctx, function)
            found.extend((init, function.name) for target, init in inits if target not in rescaled)
    return found


def _statements_outside_models(models, body: list[ast.stmt]) -> Iterator[ast.stmt]:
    stack = list(reversed(body))
    while stack:
        statement = stack.pop()
        if type(statement) is ast.ClassDef and models.class_nodes.get(statement.name) is statement \
                and statement.name in models.module_classes:
            continue
        yield statement
        for block in reversed(bodies(statement)):
            stack.extend(reversed(block))


def _header_calls(ctx: FileContext, statement: ast.stmt):
    for part in headers(statement):
        yield from ctx.symbols.calls(part)


def _module_functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function defined at module level (under `if`/`try`/`with` blocks too), in source
    order, each definition of a name (marimo notebooks define every cell as `def _`)."""
    stack = list(reversed(tree.body))
    while stack:
        statement = stack.pop()
        if type(statement) in FUNCTIONS:
            yield statement  # type: ignore[misc]
        elif type(statement) is not ast.ClassDef:
            for block in reversed(bodies(statement)):
                stack.extend(reversed(block))


def _rescaled_targets(ctx: FileContext, function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Tensors a function rescales after initialising them (`w.data *= 1 / norm`, `w.mul_(k)`)."""
    found: set[str] = set()
    for statement in function.body:
        for call, _ in ctx.symbols.calls(statement):
            if type(call.func) is ast.Attribute and call.func.attr in ("mul_", "div_"):
                found.add((receiver_text(call.func.value) or "").removesuffix(".data"))
    for statement in statements(function.body, into_definitions=True):
        if type(statement) is ast.AugAssign and type(statement.op) in (ast.Mult, ast.Div):
            found.add((receiver_text(statement.target) or "").removesuffix(".data"))
    return found


def large_layers(model: ModelDescription, max_gain: float) -> list[Layer]:
    return [
        layer for layer in model.all_layers()
        if layer.judged and layer.kind not in EXEMPT_KINDS
        and known(layer.gain()) and layer.gain() > max_gain and not normalised(layer)
    ]


class LargeInitialization(Rule):
    code = "GL301"
    name = "large-weight-initialization"
    summary = "Weight initialisation larger than He's: activations and gradients grow by c per layer"
    finds = (
        "an init of a layer's weight whose per-layer gain c = 1/2 * fan_in * E[w^2] exceeds 2 (or, width "
        "unknown, a weight std >= 0.5, a gain > 2, constant weights); info next to a softmax"
    )
    severities = (Severity.WARNING, Severity.INFO)
    rationale = (
        "For a layer y = W x followed by ReLU, the variance of activations (forward) and gradients "
        "(backward) is multiplied by c = 1/2 * fan_in * E[w^2] (He et al. 2015; E[w^2] is Var[w] for "
        "zero-mean weights, and a non-zero mean only adds to the growth). He init makes c = 1; "
        "PyTorch's default nn.Linear init gives 1/6. `normal_(w, std=1)` on a 256-input layer gives "
        "c = 128: a few such layers turn unit inputs into overflow. The rule computes c for every "
        "init call whose layer width resolves (normal_(mean, std): mean^2 + std^2, uniform_(a, b): "
        "(a^2 + ab + b^2)/3, orthogonal_(gain): c = gain^2/2, xavier_*(gain): gain^2 * 2/(fan_in+fan_out), "
        "kaiming_*: from its mode and nonlinearity, `.data.normal_()`: std 1, "
        "`nn.Parameter(torch.randn(n, m))`: std 1), with a constant factor that scales the layer's "
        "output right after it (`(q @ k) * dim ** -0.5`), and reports c > 2 (more than twice He's "
        "variance; option max-gain). Where the width is unknown it reports a weight std of 0.5 "
        "or more (c > 2 for any layer with more than 16 inputs), orthogonal/xavier gains above 2, "
        "and non-zero constant_ weights, whose units start identical; a value it cannot resolve "
        "keeps it silent (a constructor argument is read from the file's call sites).\n\n"
        "Only a layer's weight is judged: Linear/Conv weights, and a Parameter the model uses as "
        "the matrix operand of `x @ W`, `matmul`, `F.linear` or `einsum` against activations (its "
        "fan-in is read from that use, never from its shape). Positional embeddings and cls, "
        "register, memory or query tokens added or concatenated to activations are not weights, "
        "nor are Embedding weights (std 1 is their standard init). NoisyNet's weight is rated as "
        "mu + sigma * eps (the noise at unit variance): its noise scale `weight_sigma.fill_(...)` "
        "and its per-step noise draw are never reported, and a fix never touches them. A matrix "
        "followed by a normalisation (LayerNorm over its output) is normalised and not reported; "
        "one that mixes attention maps next to a softmax (talking heads) is info. Scaled forms "
        "such as `randn(n, n) / sqrt(n)`, `orthogonal_(w, sqrt(2))` and `uniform_(w, -3e-3, 3e-3)` "
        "are fine. Init functions applied from outside a model (`model = Net(); "
        "model.apply(weights_init)`) are judged on that model's layers.\n\n"
        "The fix changes what the model computes, so it is unsafe and needs --unsafe-fixes."
    )
    bad_example = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 256)
        nn.init.normal_(self.fc.weight, std=1.0)
"""
    good_example = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 256)
        nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")
"""
    severity = Severity.WARNING
    fix_applicability = Applicability.UNSAFE
    fix_description = (
        "Replaces the init with He's (`kaiming_normal_(w, nonlinearity=\"relu\")`, or `xavier_normal_` "
        "before tanh/sigmoid), drops an oversized gain (orthogonal_ gets `2 ** 0.5`), and divides an "
        "unscaled square `torch.randn(n, n)` Parameter by `n ** 0.5`."
    )
    references = ("He, Zhang, Ren, Sun. Delving Deep into Rectifiers. ICCV 2015 (arXiv 1502.01852).",
                  "Glorot, Bengio. Understanding the difficulty of training deep feedforward neural networks. AISTATS 2010.")
    options = (Option("max-gain", float, 2.0, "report a layer whose c = 1/2 * fan_in * E[w^2] is above this"),)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """GL201's depth rule, and the gradients against those of the same model with He init."""
        from gradlint.verify.verdict import model_verdict

        return model_verdict(cls.code, figures, thresholds, against_he_init=True)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """GL201's depth rule on the real run's per-layer profile (a run measures no He-init copy
        to compare with)."""
        from gradlint.verify.verdict import model_run_verdict

        return model_run_verdict(cls.code, diagnostic, run, thresholds, against_he_init=True)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_model(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        max_gain = self.settings["max-gain"]
        models = ctx.models
        seen: set[int] = set()
        for key, (init, users) in layer_inits(models.models, models.applied).items():
            seen.add(key)
            found = self._message(ctx, init, users, max_gain)
            if found:
                message, severity = found
                owners = [m.name for m, _, _ in users if m.kind == "module"]
                yield ctx.finding(self.code, init.call, message, severity, self._fix(ctx, init, users),
                                  subject=owners[0] if owners else None)
        for model in models.models:
            for layer in model.derived:
                found_composite = self._composite(ctx, model, layer, max_gain, seen)
                if found_composite is not None:
                    yield found_composite
        for init, where in [*models.unattached_inits, *inits_in_functions(ctx)]:
            if init.call is None or id(init.call) in seen or init.target != "weight":
                continue
            seen.add(id(init.call))
            reason = too_large_without_fan(init) or self._constant(init)
            if reason:
                message = (f"{init.describe()} in {where}: {reason}, more than twice He's variance 2/fan_in "
                           "for any layer wider than 16 inputs; activations and gradients grow per layer")
                yield ctx.finding(self.code, init.call, message, self.severity, self._fix(ctx, init, []))

    def _constant(self, init: Init) -> str | None:
        """Non-zero constant weights: a known value, or one the constructor takes from its call
        sites (unknown values keep the rule silent)."""
        if init.method != "constant" or init.target != "weight":
            return None
        value = init.params.get("val")
        if known(value):
            return f"constant {value}"
        source = init.sources.get("val")
        if source and any(known(v) and v != 0 for v in source[1]):
            values = [str(v) for v in source[1] if known(v)]  # None: the argument is not given there
            more = " (and values it cannot resolve)" if any(v is UNKNOWN for v in source[1]) else ""
            return f"`{source[0]}` is {' and '.join(values)}{more} where the model is built in this file"
        return None

    def _message(self, ctx: FileContext, init: Init, users: Users, max_gain: float) -> tuple[str, Severity] | None:
        names = ", ".join(f"{m.name}.{layer.name}" for m, layer, _ in users[:3]) + (
            f" and {len(users) - 3} more" if len(users) > 3 else "")
        if init.method == "constant":
            reason = self._constant(init)
            if reason is None:
                return None
            value = init.params.get("val")
            scale = f"fan_in*{value}" if known(value) else "fan_in times that constant"
            where = "" if known(value) else f" ({reason})"
            return (f"{init.describe()} on {names}{where}: constant weights make every unit identical (the "
                    f"symmetry is never broken) and scale outputs by {scale}; use kaiming/xavier init"), self.severity
        rated = [(m, layer, on_path) for m, layer, on_path in users if not normalised(on_path)]
        if not rated:
            return None  # every layer it sets is followed by a normalisation
        gains = [rated_gain(ctx, m, layer, on_path) for m, layer, on_path in rated]
        known_gains = [g for g in gains if known(g)]
        severity = self.severity
        note = ""
        if all(beside_softmax(on_path) for _, _, on_path in rated):
            severity = Severity.INFO
            note = ("; it mixes attention maps next to a softmax, which bounds what it feeds forward, so the "
                    "growth does not compound layer after layer")
        if known_gains:
            worst = max(known_gains)  # type: ignore[type-var]
            if worst <= max_gain:
                return None
            layer = rated[gains.index(worst)][1]
            return (f"{init.describe()} on {names}: c = 1/2 * fan_in * E[w^2] = {worst:.3g} "
                    f"(fan_in {layer.fan_in}), {worst:.3g}x He's variance: activations and gradients "
                    f"grow about {worst:.3g}x per layer{note}"), severity
        reason = too_large_without_fan(init)
        if reason:
            return (f"{init.describe()} on {names}: {reason}, more than twice He's variance for any "
                    f"layer wider than 16 inputs{note}"), severity
        return None

    def _composite(self, ctx: FileContext, model: ModelDescription, layer: Layer, max_gain: float,
                   seen: set[int]) -> Diagnostic | None:
        """A weight computed in forward from several tensors (NoisyNet's mu + sigma * eps), rated
        as the sum it is; its noise is never reported, and no fix is offered (a changed noise
        draw would change the exploration)."""
        for factors in layer.terms or []:
            for factor in factors:
                for init in factor.inits:
                    if init.call is not None:
                        seen.add(id(init.call))
        if not layer.judged or normalised(layer):
            return None
        gain = rated_gain(ctx, model, layer, layer)
        if not known(gain) or gain <= max_gain:  # type: ignore[operator]
            return None
        weighted = [(f.weight_variance(), f) for factors in layer.terms or [] for f in factors if not f.noise]
        weighted = [(v, f) for v, f in weighted if known(v) and f.last_weight_init() is not None]
        if not weighted:
            return None
        _, largest = max(weighted, key=lambda pair: pair[0])
        init = largest.last_weight_init()
        message = (f"{model.name}: the weight {layer.name} has c = 1/2 * fan_in * E[w^2] = {gain:.3g} "
                   f"(fan_in {layer.fan_in}, noise at unit variance), {gain:.3g}x He's variance; its largest "
                   f"part is {largest.name} ({init.describe()})")  # type: ignore[union-attr]
        return ctx.finding(self.code, init.call, message, self.severity, subject=model.name)  # type: ignore[union-attr]

    def _fix(self, ctx: FileContext, init: Init, users) -> Fix | None:
        call = init.call
        if call is None:
            return None
        func = ctx.text_of(call.func)
        if init.method == "randn":
            return self._fix_randn(ctx, init, users)
        first = first_argument(call)
        if init.method in ("orthogonal", "xavier_normal", "xavier_uniform"):
            if first is None:
                return None
            target = ctx.text_of(first)
            replacement = f"{func}({target}, 2 ** 0.5)" if init.method == "orthogonal" else f"{func}({target})"
            return Fix(f"Use `{replacement}`", (replace(ctx, call, replacement),), Applicability.UNSAFE)
        if init.target != "weight" or init.method == "constant" and not known(init.params.get("val")):
            return None
        squashing = any(self._followed_by_squash(model, on_path) for model, _, on_path in users)
        method = "xavier_normal_" if squashing else "kaiming_normal_"
        extra: list = []
        if is_init_function(ctx.models, call.func):  # nn.init.normal_(w, ...), any spelling
            if first is None:
                return None
            target = ctx.text_of(first)
            if "." in func:
                name = func.rsplit(".", 1)[0] + "." + method
            else:
                name, extra = spelled(ctx, f"torch.nn.init.{method}")
        elif type(call.func) is ast.Attribute:  # w.data.normal_() and other tensor methods
            target = ctx.text_of(call.func.value)
            name, extra = spelled(ctx, f"torch.nn.init.{method}")
        else:
            return None
        replacement = f"{name}({target})" if squashing else f'{name}({target}, nonlinearity="relu")'
        return Fix(f"Use He/Xavier scale: `{replacement}`", (*extra, replace(ctx, call, replacement)),
                   Applicability.UNSAFE)

    def _fix_randn(self, ctx: FileContext, init: Init, users) -> Fix | None:
        call = init.call
        if call is None or len(call.args) != 2 or any(type(a) is ast.Starred for a in call.args):
            return None  # which side is fan-in depends on how the weight is used
        first, second = (ctx.text_of(a) for a in call.args)
        if first != second:
            return None
        if not users or not all(known(layer.gain()) for _, layer, _ in users):
            return None
        if abs(init.params.get("std", 0) - 1.0) > 1e-9:
            return None
        at = ctx.offsets_of(call)[1]
        dimension = first
        if not all(ch.isalnum() or ch in "._" for ch in dimension):
            dimension = f"({dimension})"
        edit = ctx.edit(at, at, f" / {dimension} ** 0.5")
        return Fix(f"Scale the weight: `/ {dimension} ** 0.5`", (edit,), Applicability.UNSAFE)

    @staticmethod
    def _followed_by_squash(model: ModelDescription, layer: Layer) -> bool:
        path = model.path or []
        for index, op in enumerate(path):
            if op.kind == "layer" and op.layer is layer:
                for later in path[index + 1 :]:
                    if later.kind == "act":
                        return later.name in ("tanh", "sigmoid", "softsign", "hardtanh")
                    if later.kind == "layer":
                        return False
        return False
