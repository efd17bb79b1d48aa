from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.context import FileContext, file_may_feed
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.rules.base import Rule
from gradlint.rules.gl401_unnormalized_inputs import describe_sources

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


class UnscaledRewards(Rule):
    code = "GL402"
    name = "unscaled-rewards-in-targets"
    summary = "Raw environment rewards enter returns or TD targets with no scaling, clipping or normalization"
    finds = "raw env rewards enter a discounted return / TD target with no scaling, clipping or normalization"
    rationale = (
        "Value targets are sums of rewards: r + gamma * V(s'), or discounted returns, whose "
        "scale is about r_max / (1 - gamma), 100x the per-step reward at gamma = 0.99. The "
        "critic's loss, and the gradients it sends into shared layers and into the actor, scale "
        "with that; rewards that differ wildly between samples (the background document's "
        "'badly designed reward scale') give occasional huge gradients. Common remedies: a "
        "reward scale (SAC, DDPG), clipping (DQN's sign(r), np.clip), gymnasium NormalizeReward / "
        "SB3 VecNormalize, or normalizing advantages (PPO). The rule follows rewards from "
        "`env.step()` into an addition with a discount (`gamma`, `discount`, `lam`) and stays "
        "silent when any of those remedies is visible. Neither `gradlint verify` nor `gradlint "
        "run` measures rewards yet: its findings are reported as not verified.\n\n"
        "Lower confidence than the other rules (many envs already have unit-scale rewards, e.g. "
        "CartPole's 1 per step), so it is off by default: enable it with "
        "`extend-select = [\"GL402\"]`."
    )
    bad_example = """\
import gymnasium as gym
env = gym.make("Pendulum-v1")
obs, reward, terminated, truncated, info = env.step(action)
target = reward + gamma * next_value * (1 - terminated)
"""
    good_example = """\
import gymnasium as gym
env = gym.make("Pendulum-v1")
obs, reward, terminated, truncated, info = env.step(action)
target = reward * reward_scale + gamma * next_value * (1 - terminated)
"""
    severity = Severity.INFO
    default_enabled = False
    references = (
        "Henderson et al. Deep Reinforcement Learning that Matters. AAAI 2018 (reward scale).",
        "van Hasselt et al. Learning values across many orders of magnitude (PopArt). NeurIPS 2016.",
    )

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NO_PROBE, NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, f"{NO_PROBE} yet", {})

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, "the run does not see rewards (only what reaches models and "
                       "optimizers)", {})

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_feed(text) and ".step(" in text

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        flow = ctx.dataflow
        if flow.normalizes_advantages:
            return
        reported: set[frozenset] = set()
        for target in flow.reward_targets:
            if target.standardized:
                continue
            key = frozenset(t.line for t in target.taints)
            if key in reported:
                continue  # one finding per reward source: the first target it enters
            reported.add(key)
            message = (
                f"raw rewards from {describe_sources(target.taints)} enter a discounted target with no "
                "scaling, clipping or normalization: the target's scale is ~r/(1-gamma) and large or "
                "uneven rewards give large critic gradients; scale (reward * reward_scale), clip, or "
                "use NormalizeReward"
            )
            yield ctx.finding(self.code, target.node, message, self.severity)
