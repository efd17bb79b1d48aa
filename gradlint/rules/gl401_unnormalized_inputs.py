from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.context import FileContext, file_may_feed
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.rules.base import Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


# Observations of a registered env documented as already of order one (CartPole, MountainCar,
# LunarLander, ...) or as a discrete index are not reported: no practitioner normalises them.
QUIET_SCALES = ("unit", "discrete")


def first_per_source(ctx: FileContext, kinds: tuple[str, ...]):
    """(model input, its taints of `kinds`) once per data source (an env, a file): the first
    model call each source reaches."""
    chosen: dict[frozenset, tuple] = {}
    for found in ctx.dataflow.model_inputs:
        taints = {t for t in found.taints if t.kind in kinds and not (t.env and t.env.scale in QUIET_SCALES)}
        if not taints:
            continue
        key = frozenset(t.source.split("(")[0].rsplit(".", 1)[0] for t in taints)
        # where the data first reaches a model after it entered (the rollout's call, not an
        # update method defined earlier in the file that samples it back from a buffer)
        entered = min(t.line for t in taints)
        rank = (found.call.lineno < entered, found.call.lineno)
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, found, taints)
    for _, found, taints in sorted(chosen.values(), key=lambda entry: entry[1].call.lineno):
        yield found, taints


def describe_sources(taints) -> str:
    first = min(taints, key=lambda t: t.line)
    return f"`{first.source}` (line {first.line})"


def describe_route(found) -> str:
    """` (line 45, through this call)` when the data reaches the model inside a function or method
    of the file that this call runs: the finding sits where the script hands the data over."""
    return f" (line {found.via.lineno}, through this call)" if found.via is not None else ""


def describe_env(taints) -> str:
    """` of Pendulum (angular velocity up to 8 ...)` when the data comes from a registered env."""
    registered = next((t.env for t in sorted(taints, key=lambda t: t.line) if t.env is not None), None)
    return f" of {registered.family} ({registered.detail})" if registered is not None else ""


class UnnormalizedInputs(Rule):
    code = "GL401"
    name = "unnormalized-model-inputs"
    summary = "Observations or features reach a model with no normalization on the way"
    finds = (
        "env observations or features read from disk reach a model with no normalization on the way; silent"
        " for registered envs whose observations are already of order one (CartPole, MountainCar, Acrobot,"
        " LunarLander, ...), and the message names the scale of those that are not (Pendulum, MuJoCo)"
    )
    rationale = (
        "Raw observations mix scales: positions in metres, velocities in tens, angles in radians, "
        "counts in hundreds. The first layer's pre-activations, and the gradients of its weights "
        "(which are proportional to the inputs), inherit the largest scale, so a single feature "
        "of magnitude 100 makes its weights' gradients 100x the others'. Standardising inputs "
        "(mean 0, variance 1) keeps the first layer's Jacobian and the early updates in range; "
        "RL code does it with a running mean/std (gymnasium NormalizeObservation, SB3 "
        "VecNormalize, a RunningMeanStd helper) because the statistics change as the policy "
        "improves.\n\n"
        "The rule follows values from `env.reset()`/`env.step()` (also vector and multi-agent "
        "envs, and results used inside an expression: `np.array(env.reset())`, "
        "`env.reset()[0]`) and `pd.read_csv`/`np.load` through conversions, indexing, stacking and replay "
        "buffers (`buffer.add(...)` to `buffer.sample()`) to calls of a model whose class it can "
        "read (in the file or a sibling module). Where the script names a registered env by its "
        "id, its documented observation scale decides: CartPole, MountainCar, Acrobot, LunarLander "
        "and BipedalWalker observations are already of order one and discrete (toy-text) states are "
        "indices, so those are not reported; Pendulum and the MuJoCo envs are. It is satisfied by "
        "`(x - mean) / std`, a "
        "normalizer or scaler call, `/ 255`, a normalizing wrapper on the env (also inside an "
        "env factory, in the file or a sibling module), or a LayerNorm/BatchNorm as the model's "
        "first operation. Envs built by code it cannot read make it stay silent. "
        "`gradlint verify` judges it where the file names a registered env with known observation "
        "bounds (each feature's scale over those bounds; otherwise not verified), `gradlint run` on "
        "what really reaches the model's first layer."
    )
    bad_example = """\
import gymnasium as gym

class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)

env = gym.make("Pendulum-v1")
policy = Policy()
obs, _ = env.reset()
action = policy(torch.as_tensor(obs))
"""
    good_example = """\
import gymnasium as gym

class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)

env = gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1"))
policy = Policy()
obs, _ = env.reset()
action = policy(torch.as_tensor(obs))
"""
    severity = Severity.WARNING
    references = (
        "LeCun, Bottou, Orr, Mueller. Efficient BackProp. 1998 (input normalization).",
        "https://gymnasium.farama.org/api/wrappers/observation_wrappers/#gymnasium.wrappers.NormalizeObservation",
    )

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """Feature scales over the observation bounds of a registered env the file names."""
        from gradlint.verify.verdict import data_probe_verdict

        return data_probe_verdict(cls.code, figures, thresholds)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """Feature scales of what really reached the model's first layer."""
        from gradlint.verify.verdict import data_run_verdict

        return data_run_verdict(cls.code, diagnostic, run, thresholds)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_feed(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        for found, taints in first_per_source(ctx, ("obs", "features")):
            kind = "observations" if any(t.kind == "obs" for t in taints) else "features"
            message = (
                f"raw {kind}{describe_env(taints)} from {describe_sources(taints)} reach `{found.model}`{describe_route(found)} with no "
                "normalization on the way: the largest-scale feature dominates the first layer's gradients; "
                "standardize them (a running mean/std, gymnasium NormalizeObservation) or start "
                "the model with nn.LayerNorm(in_dim)"
            )
            yield ctx.finding(self.code, found.call, message, self.severity, subject=found.cls)
