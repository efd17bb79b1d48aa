"""The rule registry: every rule class, in code order. Adding a rule = one module + one line here."""

from __future__ import annotations

from gradlint.rules.base import Rule
from gradlint.rules.gl101_missing_clip import MissingGradientClipping
from gradlint.rules.gl102_clip_before_unscale import ClipBeforeUnscale
from gradlint.rules.gl103_recurrent_without_clip import RecurrentWithoutClipping
from gradlint.rules.gl201_deep_unbounded_stack import DeepUnboundedStack
from gradlint.rules.gl202_unbounded_recurrence import UnboundedRecurrence
from gradlint.rules.gl203_softsign import SoftsignActivation
from gradlint.rules.gl204_unbounded_action import UnboundedActorOutput
from gradlint.rules.gl301_large_init import LargeInitialization
from gradlint.rules.gl302_output_layer_init import OutputLayerInit
from gradlint.rules.gl401_unnormalized_inputs import UnnormalizedInputs
from gradlint.rules.gl402_unscaled_rewards import UnscaledRewards
from gradlint.rules.gl403_unscaled_images import UnscaledImages

ALL_RULES: tuple[type[Rule], ...] = (
    MissingGradientClipping,
    ClipBeforeUnscale,
    RecurrentWithoutClipping,
    DeepUnboundedStack,
    UnboundedRecurrence,
    SoftsignActivation,
    UnboundedActorOutput,
    LargeInitialization,
    OutputLayerInit,
    UnnormalizedInputs,
    UnscaledRewards,
    UnscaledImages,
)

RULES_BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in ALL_RULES}

__all__ = ["ALL_RULES", "RULES_BY_CODE", "Rule"]
