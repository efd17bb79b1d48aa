from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.context import FileContext, file_may_feed
from gradlint.diagnostics import Diagnostic, Severity
from gradlint.rules.base import Rule
from gradlint.rules.gl401_unnormalized_inputs import describe_route, describe_sources, first_per_source

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


class UnscaledImages(Rule):
    code = "GL403"
    name = "uint8-images-without-scaling"
    summary = "uint8 image frames fed to a model without `/ 255`"
    finds = "Atari-style uint8 frames reach a model without `/ 255`"
    rationale = (
        "Atari-style frames are uint8 in [0, 255]. Fed as floats without scaling, the first "
        "convolution sees inputs ~100x larger than unit scale, so its activations and the "
        "gradients of its weights are ~100x too large, and Adam's first steps or SGD's updates "
        "are dominated by the first layer. The DQN and PPO reference implementations divide by "
        "255 (CleanRL in the Q-network's forward: `self.network(x / 255.0)`). The rule follows "
        "frames from envs built with Atari ids or wrappers (ALE/..., NoFrameskip, "
        "AtariPreprocessing, WarpFrame, FrameStack) to a model call, and is satisfied by `/ 255` "
        "on the way or in the model's forward, or a normalizer. `gradlint verify` confirms it where "
        "the file names a registered env whose observations are uint8 frames (and reports the "
        "model's gradients on inputs in [0, 255] against unit-scale ones), `gradlint run` when the "
        "first layer really receives raw frames."
    )
    bad_example = """\
import gymnasium as gym

class QNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 32, 8, stride=4)

    def forward(self, x):
        return self.conv(x)

env = gym.make("ALE/Breakout-v5")
q_net = QNetwork()
obs, _ = env.reset()
q = q_net(torch.as_tensor(obs).float())
"""
    good_example = """\
import gymnasium as gym

class QNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 32, 8, stride=4)

    def forward(self, x):
        return self.conv(x / 255.0)

env = gym.make("ALE/Breakout-v5")
q_net = QNetwork()
obs, _ = env.reset()
q = q_net(torch.as_tensor(obs).float())
"""
    severity = Severity.WARNING
    references = ("Mnih et al. Human-level control through deep reinforcement learning. Nature 2015.",)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """GL401's data rule for raw frames: a registered env whose observations are uint8."""
        from gradlint.verify.verdict import data_probe_verdict

        return data_probe_verdict(cls.code, figures, thresholds, raw_frames=True)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """Raw uint8 frames (integer values in [0, 255] beyond 1) reaching the first layer."""
        from gradlint.verify.verdict import data_run_verdict

        return data_run_verdict(cls.code, diagnostic, run, thresholds, raw_frames=True)

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_feed(text)

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        for found, taints in first_per_source(ctx, ("image",)):
            message = (
                f"uint8 frames from {describe_sources(taints)} reach `{found.model}`{describe_route(found)} without `/ 255`: "
                "inputs ~100x unit scale make the first layer's gradients ~100x too large; divide "
                "by 255.0 (in the loop or first thing in forward)"
            )
            yield ctx.finding(self.code, found.call, message, self.severity, subject=found.cls)
