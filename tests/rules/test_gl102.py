"""GL102: clipping AMP-scaled gradients without `scaler.unscale_` first."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import fix, lint

HEADER = "import torch\nscaler = torch.amp.GradScaler('cuda')\n"

FLAGGED = {
    "no_unscale_at_all": """
        scaler.scale(loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # <-
        scaler.step(optimizer)
        scaler.update()
    """,
    "unscale_after_clip": """
        for x in loader:
            scaler.scale(model(x).mean()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # <-
            scaler.unscale_(optimizer)
            scaler.step(optimizer)
            scaler.update()
    """,
    "clip_value_in_method": """
        class Trainer:
            def step(self, loss):
                self.scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_value_(self.model.parameters(), 5)  # <-
                self.scaler.step(self.optimizer)
                self.scaler.update()
    """,
}

CLEAN = {
    "unscale_first": """
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    """,
    "guarded_unscale_and_clip": """
        scaler.scale(loss).backward()
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    """,
    "no_amp": """
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    """,
    "scale_of_something_else": """
        image.scale(2).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    """,
    "unscale_in_previous_iteration_does_not_count_but_new_backward_resets": """
        for x in loader:
            scaler.scale(model(x).mean()).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    """,
}


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_flags(name: str) -> None:
    code = HEADER + textwrap.dedent(FLAGGED[name])
    expected = [i + 1 for i, line in enumerate(code.splitlines()) if "# <-" in line]
    assert [(d.code, d.line) for d in lint(code, select="GL1")] == [("GL102", line) for line in expected]


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_does_not_flag(name: str) -> None:
    assert lint(HEADER + textwrap.dedent(CLEAN[name]), select="GL1") == []


def test_fix_inserts_unscale_before_clip() -> None:
    fixed, result = fix(HEADER + textwrap.dedent(FLAGGED["no_unscale_at_all"]))
    assert fixed == HEADER + textwrap.dedent("""
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # <-
        scaler.step(optimizer)
        scaler.update()
    """)
    assert result.diagnostics == []


def test_fix_moves_a_late_unscale() -> None:
    fixed, result = fix(HEADER + textwrap.dedent(FLAGGED["unscale_after_clip"]))
    assert fixed == HEADER + textwrap.dedent("""
        for x in loader:
            scaler.scale(model(x).mean()).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # <-
            scaler.step(optimizer)
            scaler.update()
    """)
    assert fixed.count("unscale_") == 1  # calling it twice raises at run time
    assert result.diagnostics == []


def test_fix_uses_the_method_scaler() -> None:
    fixed, _ = fix(HEADER + textwrap.dedent(FLAGGED["clip_value_in_method"]))
    assert "        self.scaler.unscale_(self.optimizer)\n        torch.nn.utils.clip_grad_value_" in fixed
