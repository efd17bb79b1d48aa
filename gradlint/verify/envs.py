"""Observation bounds of well-known registered environments, for verdicts on data findings
(GL401/GL403) without a real run, and for sizes read off an env (`env.observation_space.shape[0]`).

A small table, each entry copied from the environment's own source (gymnasium 1.x, the
`observation_space` built in the env's `__init__`; ALE's documented observation space). An
infinite bound stays infinite: such a feature has no known scale, and the verdict says so.
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
            _CLASSIC.format("continuous_mountain_car")),
    EnvSpec("Acrobot-v1", (-1.0, -1.0, -1.0, -1.0, -4 * PI, -9 * PI), (1.0, 1.0, 1.0, 1.0, 4 * PI, 9 * PI), "float32", 3,
            None, _CLASSIC.format("acrobot")),
    EnvSpec("Pendulum-v1", (-1.0, -1.0, -8.0), (1.0, 1.0, 8.0), "float32", None, 1, _CLASSIC.format("pendulum")),
    EnvSpec("LunarLander-v3", _LUNAR_LOW, _LUNAR_HIGH, "float32", 4, None, _BOX2D.format("lunar_lander")),
    EnvSpec("LunarLander-v2", _LUNAR_LOW, _LUNAR_HIGH, "float32", 4, None, _BOX2D.format("lunar_lander")),
    EnvSpec("LunarLanderContinuous-v3", _LUNAR_LOW, _LUNAR_HIGH, "float32", None, 2, _BOX2D.format("lunar_lander")),
    EnvSpec("LunarLanderContinuous-v2", _LUNAR_LOW, _LUNAR_HIGH, "float32", None, 2, _BOX2D.format("lunar_lander")),
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


def env_ids_in(text: str) -> list[str]:
    """The known env ids a file names as string constants (`gym.make("CartPole-v1")`, an
    argparse default, CleanRL's `env_id: str = "CartPole-v1"`), in order of appearance."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
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
