from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gradlint.analysis.training import Event, Finding, TrainingAnalysis, has_arguments
from gradlint.context import FileContext, file_may_train
from gradlint.diagnostics import Applicability, Diagnostic, Fix, Severity
from gradlint.edits import delete, insert_before
from gradlint.rules._clipping import describe_call, events_in_order
from gradlint.rules.base import Rule

if TYPE_CHECKING:
    from gradlint.run.matching import RunMeasurements
    from gradlint.verify.verdict import Verdict


class ClipBeforeUnscale(Rule):
    code = "GL102"
    name = "clip-before-unscale"
    summary = "Gradients clipped while still multiplied by the AMP loss scale (no `scaler.unscale_` first)"
    finds = (
        "clipping between `scaler.scale(loss).backward()` and `scaler.step(opt)` with no "
        "`scaler.unscale_(opt)` first"
    )
    rationale = (
        "With `torch.amp.GradScaler`, `scaler.scale(loss).backward()` leaves every gradient "
        "multiplied by the loss scale (65536 at the start, changing during training). A clip "
        "threshold applied to those gradients is divided by that scale in effect: clipping "
        "either does nothing or flattens every update, and changes meaning whenever the scale "
        "changes. PyTorch's AMP recipe calls `scaler.unscale_(optimizer)` before "
        "`clip_grad_norm_`, then `scaler.step(optimizer)` (which then skips its own unscale)."
    )
    bad_example = """\
scaler.scale(loss).backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
scaler.step(optimizer)
scaler.update()
"""
    good_example = """\
scaler.scale(loss).backward()
scaler.unscale_(optimizer)
torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
scaler.step(optimizer)
scaler.update()
"""
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE
    fix_description = (
        "Inserts `scaler.unscale_(optimizer)` before the clip, taking the scaler and optimizer "
        "from the `scaler.step(optimizer)` that follows; a later `unscale_` of the same "
        "optimizer before that step is removed (calling it twice raises)."
    )
    references = ("https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping",)

    @classmethod
    def probe_verdict(cls, figures: dict, thresholds: dict[str, float]) -> Verdict:
        from gradlint.verify.verdict import loop_probe_verdict

        return loop_probe_verdict(cls.code)

    @classmethod
    def run_verdict(cls, diagnostic: Diagnostic, run: RunMeasurements, thresholds: dict[str, float]) -> Verdict:
        """The optimizer whose clip ran at the finding's line: confirmed when it clipped
        gradients still multiplied by the AMP loss scale."""
        from gradlint.verify.verdict import NOT_VERIFIED, Verdict, clip_verdict

        clipped = run.clipped_at(diagnostic)
        if not clipped:
            return Verdict(cls.code, NOT_VERIFIED, f"this clip never ran in the {run.steps} steps of the run",
                           {"steps_seen": 0})
        return clip_verdict(cls.code, clipped[0])

    @classmethod
    def wants(cls, text: str) -> bool:
        return file_may_train(text) and "scale" in text

    def check(self, ctx: FileContext) -> Iterator[Diagnostic]:
        analysis = ctx.training
        for finding in analysis.clip_before_unscale:
            clip = finding.event
            message = (
                f"`{describe_call(ctx, clip)}` clips gradients that are still multiplied by the "
                "AMP loss scale: call `scaler.unscale_(optimizer)` before clipping"
            )
            yield ctx.finding(self.code, clip.call, message, self.severity, self._fix(ctx, analysis, finding))

    def _fix(self, ctx: FileContext, analysis: TrainingAnalysis, finding: Finding) -> Fix | None:
        clip = finding.event
        if clip.stmt is None or clip.in_closure:
            return None
        events = list(events_in_order(clip.function.body))
        after = events[events.index(clip) + 1 :] if clip in events else []
        step = next((e for e in after if e.kind == "step" and has_arguments(e.call)), None)
        if step is None or step.optimizer is None:
            return None
        optimizer = ctx.text_of(step.optimizer)
        if "\n" in optimizer:
            return None
        later: list[Event] = [
            e for e in after[: after.index(step)]
            if e.kind == "unscale" and e.receiver == step.receiver and e.optimizer is not None
            and ctx.text_of(e.optimizer) == optimizer
        ]
        edits = [insert_before(ctx, clip.stmt, f"{step.receiver}.unscale_({optimizer})")]
        for event in later:
            if event.stmt is None:
                return None
            removal = delete(ctx, event.stmt)
            if removal is None:
                return None
            edits.append(removal)
        verb = "Move" if later else "Insert"
        return Fix(f"{verb} `{step.receiver}.unscale_({optimizer})` before the clip", tuple(edits),
                   Applicability.SAFE)
