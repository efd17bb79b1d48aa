"""The observation scale of well-known registered environments (Gymnasium / Gym ids).

A finding about raw observations means little on an env whose observations are already of order
one (CartPole, MountainCar, LunarLander), and a lot on one whose features span orders of
magnitude (Pendulum's angular velocity up to 8 next to a cosine; MuJoCo's unbounded joint
velocities). Where a script names its env by a literal registered id, GL401 uses this table;
an id that is not here, or not a literal, keeps the rule's general behaviour. The bounds are
Gymnasium's documented observation spaces (the `source` of each entry); `None` marks an unbounded
feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOCS = "https://gymnasium.farama.org/environments"


@dataclass(frozen=True)
class EnvScale:
    family: str
    scale: str  # "unit": every feature of order one | "large": some feature far from unit scale or unbounded |
    #             "discrete": an index (embedded or one-hot encoded before a network) | "image": uint8 frames
    detail: str  # why, in a few words, for messages
    source: str
    bounds: tuple[tuple[float | None, float | None], ...] = ()  # per feature (low, high), where documented


_INF = None
REGISTERED: dict[str, EnvScale] = {
    "CartPole": EnvScale(
        "CartPole", "unit", "cart position within 4.8, pole angle within 0.42 rad; the episode ends at |x| > 2.4 or "
        "|angle| > 0.21, so the two velocities stay within a few units",
        f"{_DOCS}/classic_control/cart_pole/", ((-4.8, 4.8), (_INF, _INF), (-0.418, 0.418), (_INF, _INF))),
    "MountainCar": EnvScale(
        "MountainCar", "unit", "position in [-1.2, 0.6], velocity in [-0.07, 0.07]",
        f"{_DOCS}/classic_control/mountain_car/", ((-1.2, 0.6), (-0.07, 0.07))),
    "MountainCarContinuous": EnvScale(
        "MountainCarContinuous", "unit", "position in [-1.2, 0.6], velocity in [-0.07, 0.07]",
        f"{_DOCS}/classic_control/mountain_car_continuous/", ((-1.2, 0.6), (-0.07, 0.07))),
    "Acrobot": EnvScale(
        "Acrobot", "unit", "cosines and sines of the two joint angles, and their velocities (bounded by 4*pi and 9*pi, "
        "a few units in practice)",
        f"{_DOCS}/classic_control/acrobot/",
        ((-1, 1), (-1, 1), (-1, 1), (-1, 1), (-12.567, 12.567), (-28.274, 28.274))),
    "LunarLander": EnvScale(
        "LunarLander", "unit", "positions and velocities normalised by the env to order one, and two leg-contact flags",
        f"{_DOCS}/box2d/lunar_lander/",
        ((-2.5, 2.5), (-2.5, 2.5), (-10, 10), (-10, 10), (-6.2832, 6.2832), (-10, 10), (0, 1), (0, 1))),
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
        f"{_DOCS}/classic_control/pendulum/", ((-1, 1), (-1, 1), (-8, 8))),
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


__all__ = ["EnvScale", "REGISTERED", "registered_scale"]
