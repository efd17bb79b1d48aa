"""Registered environments' observations: what gradlint knows of well-known Gymnasium / Gym ids.

Two views of one table, for two jobs:
- `registered_scale(env_id)`: the linter's judgement of an env's observation scale. A finding about
  raw observations means little on an env whose observations are already of order one
  (CartPole, MountainCar, LunarLander), and a lot on one whose features span orders of magnitude
  (Pendulum's angular velocity up to 8 next to a cosine; MuJoCo's unbounded joint velocities).
  Where a script names its env by a registered id, GL401 uses it; an id that is not here keeps the
  rule's general behaviour.
- `env_spec(env_id)`: exact observation bounds, dtype and action space, copied from each env's own
  source (gymnasium 1.x, the `observation_space` built in its `__init__`; ALE's documented
  observation space), for the verifier's verdicts on data findings without a real run and for
  sizes read off an env (`env.observation_space.shape[0]`). An infinite bound stays infinite: such a
  feature has no known scale, and the verdict says so.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

INF = math.inf
PI = math.pi


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    low: tuple[float, ...]
    high: tuple[float, ...]
    dtype: str  # "float32" | "uint8"
    actions: int | None  # Discrete(n), else None
    action_dim: int | None  # Box(k,), else None
    source: str
    image_shape: tuple[int, ...] | None = None  # uint8 frames: (H, W, C) as the env returns them
    action_high: float | None = None  # Box actions: the symmetric bound, from the same source

    @property
    def observation_dim(self) -> int:
        return len(self.low)


_CLASSIC = "gymnasium/envs/classic_control/{}.py (observation_space in __init__)"
_BOX2D = "gymnasium/envs/box2d/{}.py (observation_space in __init__)"
_LUNAR_LOW = (-2.5, -2.5, -10.0, -10.0, -2 * PI, -10.0, -0.0, -0.0)
_LUNAR_HIGH = (2.5, 2.5, 10.0, 10.0, 2 * PI, 10.0, 1.0, 1.0)
_CARTPOLE_HIGH = (4.8, INF, 24 * PI / 180, INF)  # 2 x the termination thresholds; velocities unbounded

KNOWN_ENVS: dict[str, EnvSpec] = {spec.env_id: spec for spec in (
    EnvSpec("CartPole-v1", tuple(-h for h in _CARTPOLE_HIGH), _CARTPOLE_HIGH, "float32", 2, None, _CLASSIC.format("cartpole")),
    EnvSpec("CartPole-v0", tuple(-h for h in _CARTPOLE_HIGH), _CARTPOLE_HIGH, "float32", 2, None, _CLASSIC.format("cartpole")),
    EnvSpec("MountainCar-v0", (-1.2, -0.07), (0.6, 0.07), "float32", 3, None, _CLASSIC.format("mountain_car")),
    EnvSpec("MountainCarContinuous-v0", (-1.2, -0.07), (0.6, 0.07), "float32", None, 1,
            _CLASSIC.format("continuous_mountain_car"), action_high=1.0),
    EnvSpec("Acrobot-v1", (-1.0, -1.0, -1.0, -1.0, -4 * PI, -9 * PI), (1.0, 1.0, 1.0, 1.0, 4 * PI, 9 * PI), "float32", 3,
            None, _CLASSIC.format("acrobot")),
    EnvSpec("Pendulum-v1", (-1.0, -1.0, -8.0), (1.0, 1.0, 8.0), "float32", None, 1, _CLASSIC.format("pendulum"),
            action_high=2.0),
    # gym < 0.22 (the id of many RL tutorials): the same observation_space, max_speed = 8
    EnvSpec("Pendulum-v0", (-1.0, -1.0, -8.0), (1.0, 1.0, 8.0), "float32", None, 1,
            "gym 0.21 gym/envs/classic_control/pendulum.py (observation_space in __init__)", action_high=2.0),
    EnvSpec("LunarLander-v3", _LUNAR_LOW, _LUNAR_HIGH, "float32", 4, None, _BOX2D.format("lunar_lander")),
    EnvSpec("LunarLander-v2", _LUNAR_LOW, _LUNAR_HIGH, "float32", 4, None, _BOX2D.format("lunar_lander")),
    EnvSpec("LunarLanderContinuous-v3", _LUNAR_LOW, _LUNAR_HIGH, "float32", None, 2, _BOX2D.format("lunar_lander"),
            action_high=1.0),
    EnvSpec("LunarLanderContinuous-v2", _LUNAR_LOW, _LUNAR_HIGH, "float32", None, 2, _BOX2D.format("lunar_lander"),
            action_high=1.0),
)}

# Atari (ALE): RGB frames Box(0, 255, (210, 160, 3), uint8) (ale-py's documented observation space;
# the usual wrappers resize and stack them but keep uint8 values in [0, 255]).
_ATARI = re.compile(r"^(ALE/[A-Za-z]+-v5|[A-Z][A-Za-z]+(NoFrameskip|Deterministic)-v4)$")
ATARI_SOURCE = "ale-py: Atari observations are Box(0, 255, (210, 160, 3), uint8)"


def env_spec(env_id: str) -> EnvSpec | None:
    spec = KNOWN_ENVS.get(env_id)
    if spec is not None:
        return spec
    if _ATARI.match(env_id):
        return EnvSpec(env_id, (0.0,), (255.0,), "uint8", None, None, ATARI_SOURCE, (210, 160, 3))
    return None


def env_ids_in(tree: ast.AST) -> list[str]:
    """The known env ids a file names as string constants (`gym.make("CartPole-v1")`, an
    argparse default, CleanRL's `env_id: str = "CartPole-v1"`), in order of appearance."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
            if env_spec(node.value) is not None and node.value not in found:
                found.append(node.value)
    return found


def uniform_scale(low: float, high: float) -> float:
    """The RMS of a feature spread uniformly over [low, high]: its typical magnitude."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INF
    return math.sqrt((low * low + low * high + high * high) / 3)


# The linter's view: each family's observation scale ------------------------------------------

_DOCS = "https://gymnasium.farama.org/environments"


@dataclass(frozen=True)
class EnvScale:
    family: str
    scale: str  # "unit": every feature of order one | "large": some feature far from unit scale or unbounded |
    #             "discrete": an index (embedded or one-hot encoded before a network) | "image": uint8 frames
    detail: str  # why, in a few words, for messages
    source: str


REGISTERED: dict[str, EnvScale] = {
    "CartPole": EnvScale(
        "CartPole", "unit", "cart position within 4.8, pole angle within 0.42 rad; the episode ends at |x| > 2.4 or "
        "|angle| > 0.21, so the two velocities stay within a few units",
        f"{_DOCS}/classic_control/cart_pole/"),
    "MountainCar": EnvScale(
        "MountainCar", "unit", "position in [-1.2, 0.6], velocity in [-0.07, 0.07]",
        f"{_DOCS}/classic_control/mountain_car/"),
    "MountainCarContinuous": EnvScale(
        "MountainCarContinuous", "unit", "position in [-1.2, 0.6], velocity in [-0.07, 0.07]",
        f"{_DOCS}/classic_control/mountain_car_continuous/"),
    "Acrobot": EnvScale(
        "Acrobot", "unit", "cosines and sines of the two joint angles, and their velocities (bounded by 4*pi and 9*pi, "
        "a few units in practice)",
        f"{_DOCS}/classic_control/acrobot/"),
    "LunarLander": EnvScale(
        "LunarLander", "unit", "positions and velocities normalised by the env to order one, and two leg-contact flags",
        f"{_DOCS}/box2d/lunar_lander/"),
    "LunarLanderContinuous": EnvScale(
        "LunarLanderContinuous", "unit", "positions and velocities normalised by the env to order one",
        f"{_DOCS}/box2d/lunar_lander/"),
    "BipedalWalker": EnvScale(
        "BipedalWalker", "unit", "hull and joint speeds scaled by the env, lidar readings in [0, 1]",
        f"{_DOCS}/box2d/bipedal_walker/"),
    "BipedalWalkerHardcore": EnvScale(
        "BipedalWalkerHardcore", "unit", "hull and joint speeds scaled by the env, lidar readings in [0, 1]",
        f"{_DOCS}/box2d/bipedal_walker/"),
    "Pendulum": EnvScale(
        "Pendulum", "large", "angular velocity up to 8 next to a cosine and a sine in [-1, 1]",
        f"{_DOCS}/classic_control/pendulum/"),
    "CarRacing": EnvScale("CarRacing", "image", "96x96 RGB frames in [0, 255]", f"{_DOCS}/box2d/car_racing/"),
    "Taxi": EnvScale("Taxi", "discrete", "a state index", f"{_DOCS}/toy_text/taxi/"),
    "FrozenLake": EnvScale("FrozenLake", "discrete", "a state index", f"{_DOCS}/toy_text/frozen_lake/"),
    "FrozenLake8x8": EnvScale("FrozenLake8x8", "discrete", "a state index", f"{_DOCS}/toy_text/frozen_lake/"),
    "CliffWalking": EnvScale("CliffWalking", "discrete", "a state index", f"{_DOCS}/toy_text/cliff_walking/"),
    "Blackjack": EnvScale("Blackjack", "discrete", "a tuple of small integers", f"{_DOCS}/toy_text/blackjack/"),
}
_MUJOCO = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "HumanoidStandup", "Swimmer", "Reacher",
           "Pusher", "InvertedPendulum", "InvertedDoublePendulum")
for _name in _MUJOCO:
    REGISTERED[_name] = EnvScale(_name, "large", "unbounded joint positions and velocities",
                                 f"{_DOCS}/mujoco/{re.sub(r'(?<!^)(?=[A-Z])', '_', _name).lower()}/")

_ID = re.compile(r"^(?:[\w.-]+/)?(?P<name>[A-Za-z][\w]*?)(?:-v\d+)?$")


def registered_scale(env_id: str) -> EnvScale | None:
    """The entry of a registered env id (`CartPole-v1`, `Pendulum-v1`, `HalfCheetah-v4`), or None.
    Atari ids are images (`ALE/Breakout-v5`, `BreakoutNoFrameskip-v4`)."""
    if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
        return EnvScale("Atari", "image", "uint8 frames", "https://ale.farama.org/environments/")
    match = _ID.match(env_id.strip())
    return REGISTERED.get(match.group("name")) if match else None


__all__ = ["EnvScale", "EnvSpec", "KNOWN_ENVS", "REGISTERED", "env_ids_in", "env_spec", "registered_scale", "uniform_scale"]
