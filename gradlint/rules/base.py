"""What a rule is: a small class with its code, its documentation, its examples, `check`, and
its verdicts on measured figures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gradlint.context import FileContext
from gradlint.diagnostics import Applicability, Diagnostic, Severity

if TYPE_CHECKING:  # `gradlint check` never imports the verifier or the run: only their verdicts do
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


@dataclass(frozen=True)
class Option:
    """A per-rule setting, read from `[tool.gradlint.options.<CODE>]`."""

    name: str
    type: type
    default: Any
    help: str


class Rule:
    """Base class of every rule.

    Subclasses set the class attributes below and implement `check`, which reads the shared
    analyses from the `FileContext` (never walks the tree itself) and yields Diagnostics.
    `bad_example` must be flagged and `good_example` must not: the test suite checks both, and
    `gradlint rule CODE` prints them. `probe_verdict` and `run_verdict` say what measured figures
    mean for the rule's findings (with the families of `gradlint.verify.verdict`); by default a
    finding is not verified.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    rationale: ClassVar[str]
    bad_example: ClassVar[str]
    good_example: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    # every severity the rule can report, highest first (empty: only `severity`); the README's
    # rule table and docs/rules.md print them, and a test checks that nothing else is reported
    severities: ClassVar[tuple[Severity, ...]] = ()
    finds: ClassVar[str] = ""  # the README's "what it finds" cell: the definition and what sets the severity
    fix_applicability: ClassVar[Applicability | None] = None
    fix_description: ClassVar[str] = ""
    default_enabled: ClassVar[bool] = True
    references: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = {option.name: option.default for option in self.options}
        self.settings.update(settings or {})

    @classmethod
    def reported_severities(cls) -> tuple[Severity, ...]:
        return cls.severities or (cls.severity,)

    @classmethod
    def wants(cls, text: str) -> bool:
        """Cheap test on the whole file text: False means the rule cannot fire on this file."""
        return True

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        """The verdict of `gradlint verify`'s synthetic probes of the model (`figures` from
        `gradlint.verify.probes`, `thresholds` complete)."""
        from gradlint.verify.verdict import NO_PROBE, NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, NO_PROBE, {})

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """The verdict of `gradlint run`: what the user's own training run measured for this
        finding (`run` matches it to the optimizers and models that ran)."""
        from gradlint.verify.verdict import NO_RUN_MEASUREMENT, NOT_VERIFIED, Verdict

        return Verdict(cls.code, NOT_VERIFIED, NO_RUN_MEASUREMENT, {})
