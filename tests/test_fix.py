"""The clipping fix: what it inserts, and that it changes nothing else."""

from __future__ import annotations

import ast
import textwrap

from tests.conftest import fix, lint


def test_inserts_clip_with_the_optimizers_params() -> None:
    fixed, result = fix("""
        import torch

        class Agent:
            def __init__(self, actor):
                self.actor = actor
                self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=1e-4)

            def update(self, loss):
                self.actor_optimizer.zero_grad()
                loss.backward()
                self.actor_optimizer.step()
    """)
    assert ("        loss.backward()\n        torch.nn.utils.clip_grad_norm_(self.actor.parameters(), max_norm=1.0)\n"
            "        self.actor_optimizer.step()\n") in fixed
    assert result.diagnostics == []
    assert result.fixed == 1


def test_uses_the_files_own_spelling_of_clip_grad_norm() -> None:
    fixed, _ = fix("""
        import torch.nn as nn
        from torch.optim import Adam
        opt = Adam(net.parameters())
        loss.backward()
        opt.step()
    """)
    assert "nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0)\nopt.step()" in fixed
    fixed, _ = fix("""
        from torch.nn.utils import clip_grad_norm_
        loss.backward()
        optimizer.step()
    """)
    assert "\nclip_grad_norm_(" in fixed and "import torch\n" not in fixed


def test_adds_import_torch_after_docstring_and_future_imports() -> None:
    fixed, result = fix('''\
        """Train."""
        from __future__ import annotations
        from torch.optim import SGD
        opt = SGD(model.parameters(), lr=0.1)
        loss.backward()
        opt.step()
    ''')
    assert fixed.startswith('"""Train."""\nfrom __future__ import annotations\nimport torch\nfrom torch.optim import SGD\n')
    assert "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\nopt.step()" in fixed
    assert result.diagnostics == []


def test_falls_back_to_param_groups_when_params_are_not_in_scope() -> None:
    fixed, _ = fix("""
        import torch

        def make(model):
            params = list(model.parameters())
            return torch.optim.Adam(params)

        def train(optimizer, loss):
            loss.backward()
            optimizer.step()
    """)
    assert ('    torch.nn.utils.clip_grad_norm_((p for group in optimizer.param_groups for p in '
            'group["params"]), max_norm=1.0)\n    optimizer.step()') in fixed


def test_local_params_in_another_function_use_param_groups() -> None:
    fixed, _ = fix("""
        import torch

        def main():
            model = Net()
            optimizer = torch.optim.Adam(model.parameters())
            train(optimizer)

        def train(optimizer):
            loss.backward()
            optimizer.step()
    """)
    assert "clip_grad_norm_((p for group in optimizer.param_groups" in fixed
    assert "model.parameters(), max_norm" not in fixed


def test_amp_step_gets_unscale_then_clip() -> None:
    fixed, result = fix("""
        import torch
        opt = torch.optim.AdamW(model.parameters())
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    """)
    assert "backward()\nscaler.unscale_(opt)\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\nscaler.step(opt)\n" in fixed
    assert result.diagnostics == []


def test_amp_step_already_unscaled_gets_clip_only() -> None:
    fixed, _ = fix("""
        import torch
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
    """)
    assert fixed.count("unscale_") == 1


def test_inline_insertion_for_one_line_bodies() -> None:
    fixed, result = fix("""
        import torch
        loss.backward()
        if ready: optimizer.step()
    """)
    assert "if ready: torch.nn.utils.clip_grad_norm_((p for group in optimizer.param_groups for p in group[\"params\"]), max_norm=1.0); optimizer.step()" in fixed
    assert result.diagnostics == []


def test_max_norm_option() -> None:
    from gradlint.config import Settings
    from gradlint.engine import FileResult, FixMode, fix_file, rules_for
    from gradlint.source import decode_source

    settings = Settings(rule_options={"GL101": {"max-norm": 0.5}})
    source = decode_source("x.py", b"import torch\nloss.backward()\nopt.step()\n")
    text = fix_file(source, settings, rules_for(settings, "x.py"), FixMode(diff=True), FileResult("x.py"))
    assert "max_norm=0.5)" in text


def test_no_fix_inside_a_comprehension_but_still_reported() -> None:
    code = """
        import torch
        loss.backward()
        [opt.step() for opt in optimizers]
    """
    [diagnostic] = lint(code)
    assert diagnostic.fix is None
    fixed, result = fix(code)
    assert fixed == textwrap.dedent(code)
    assert len(result.diagnostics) == 1


# --- nothing but the edit changes ----------------------------------------------------------


def test_crlf_line_endings_are_kept() -> None:
    raw = b"import torch\r\nfor x in data:\r\n    loss.backward()\r\n    optimizer.step()\r\n"
    fixed, _ = fix(raw)
    assert fixed.encode() == (
        b"import torch\r\nfor x in data:\r\n    loss.backward()\r\n"
        b'    torch.nn.utils.clip_grad_norm_((p for group in optimizer.param_groups for p in group["params"]), max_norm=1.0)\r\n'
        b"    optimizer.step()\r\n"
    )


def test_tabs_indentation_is_reused() -> None:
    fixed, _ = fix(b"import torch\nfor x in data:\n\tloss.backward()\n\toptimizer.step()\n")
    assert "\n\ttorch.nn.utils.clip_grad_norm_(" in fixed
    ast.parse(fixed)


def test_encoding_bom_and_trailing_whitespace_lines_are_kept() -> None:
    from gradlint.engine import FileResult, FixMode, fix_file, rules_for
    from gradlint.config import Settings
    from gradlint.source import decode_source

    raw = "import torch\n# café\nloss.backward()\noptimizer.step()\n\t\n\t\n".encode("utf-8-sig")
    source = decode_source("x.py", raw)
    settings = Settings()
    text = fix_file(source, settings, rules_for(settings, "x.py"), FixMode(diff=True), FileResult("x.py"))
    out = source.encode(text)
    assert out.startswith(b"\xef\xbb\xbfimport torch\n# caf\xc3\xa9\n")
    assert out.endswith(b"optimizer.step()\n\t\n\t\n")  # libcst's round trip would drop one line

    latin = "# -*- coding: latin-1 -*-\nimport torch\n# café\nloss.backward()\noptimizer.step()".encode("latin-1")
    source = decode_source("y.py", latin)
    text = fix_file(source, settings, rules_for(settings, "y.py"), FixMode(diff=True), FileResult("y.py"))
    out = source.encode(text)
    assert b"# caf\xe9\n" in out and out.endswith(b"optimizer.step()")  # no newline added at EOF


def test_fix_is_idempotent_and_leaves_no_fixable_finding() -> None:
    code = """
        import torch
        for epoch in range(3):
            for x in loader:
                loss = model(x).sum()
                loss.backward(); optimizer.step()
                critic_loss.backward()
                critic_optimizer.step()
    """
    once, first = fix(code)
    twice, second = fix(once)
    assert once != textwrap.dedent(code)
    assert twice == once
    assert second.fixed == 0
    assert [d for d in first.diagnostics if d.fix] == []
    ast.parse(once)


def test_accelerate_loops_get_accelerators_own_clip() -> None:
    fixed, result = fix("""
        model, optimizer = accelerator.prepare(model, optimizer)
        for batch in loader:
            accelerator.backward(model(**batch).loss)
            optimizer.step()
    """)
    assert "    accelerator.clip_grad_norm_(" in fixed and "import torch" not in fixed
    assert result.diagnostics == []
