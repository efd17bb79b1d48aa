"""Shared pieces of the model rules: which models look like actors/critics, small inits,
and the edits their unsafe fixes make."""

from __future__ import annotations

from gradlint.analysis.models import Layer, ModelDescription
from gradlint.analysis.training import name_tokens
from gradlint.analysis.values import known
from gradlint.context import FileContext
from gradlint.diagnostics import Edit
from gradlint.edits import import_edit

ACTOR_TOKENS = {"actor", "policy", "pi", "mu", "pol"}
VALUE_TOKENS = {"critic", "q", "qnet", "value", "v", "dqn", "qf", "soft", "twin", "duel", "dueling", "vf"}


def is_actor(model: ModelDescription) -> bool:
    return bool(ACTOR_TOKENS & set(name_tokens(model.name)))


ACTION_INPUTS = {"action", "actions", "act", "acts", "a", "u", "action_batch", "actions_batch", "joint_action"}


def is_critic(model: ModelDescription) -> bool:
    """A critic / Q network: the action is among its forward inputs and a value comes out (a
    scalar last layer, or a value-like class name that is not an actor's). It may scale the
    action it is given by `max_action`; it does not emit one."""
    takes_action = any(name in ACTION_INPUTS or name.startswith("action") for name in model.inputs[1:])
    if not takes_action:
        return False
    layers = model.weight_layers()
    if layers and layers[-1].fan_out == 1:
        return True
    tokens = set(name_tokens(model.name))
    return bool(VALUE_TOKENS & tokens) and not ACTOR_TOKENS & tokens


def is_rl_head_model(model: ModelDescription) -> bool:
    """An actor, critic, Q or value network, by its class name."""
    return bool((ACTOR_TOKENS | VALUE_TOKENS) & set(name_tokens(model.name)))


def small_init(layer: Layer) -> bool:
    """The output-layer init of DDPG-style code: weights within about +-0.01."""
    init = layer.last_weight_init()
    if init is None:
        return False
    if init.method in ("orthogonal", "eye"):
        gain = init.params.get("gain", 1.0)
        return known(gain) and abs(gain) <= 0.1
    variance = layer.weight_variance()
    return known(variance) and variance ** 0.5 <= 0.01


def spelled(ctx: FileContext, qualified: str) -> tuple[str, list[Edit]]:
    """The file's spelling of a torch name, adding `import torch` if nothing reaches it."""
    alias = ctx.symbols.alias_for(qualified)
    if alias:
        return alias, []
    return qualified, [import_edit(ctx, "import torch")]

