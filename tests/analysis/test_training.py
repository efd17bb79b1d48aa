"""The training skeleton on `ast`: every statement is seen whatever its text, names are read
through the scoped symbol layer, findings sit on the exact call, and nothing the analysis
learns leaks into what other rules see."""

from __future__ import annotations

import textwrap

from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.rules._clipping import events_in_order
from gradlint.source import SourceFile, decode_source
from tests.conftest import fix, lint


def _context(text: str) -> FileContext:
    source = SourceFile("t.py", text)
    return FileContext.parse(source, Settings())


def _segment(text: str, line: int, column: int, end_line: int, end_column: int) -> str:
    """The text between two 1-based (line, column) positions, read straight off the lines."""
    lines = text.splitlines(keepends=True)
    if line == end_line:
        return lines[line - 1][column - 1 : end_column - 1]
    return "".join([lines[line - 1][column - 1 :], *lines[line : end_line - 1], lines[end_line - 1][: end_column - 1]])


# --- positions -----------------------------------------------------------------------------

TRICKY = textwrap.dedent('''\
    """Docstring with é and 漢字."""
    import torch
    x = "héllo"; loss.backward(); opt.step()

    @decorator("ü")
    class Agent:
        def learn(self, é=1):
            if a: loss.backward(); b()
            elif c:
                d = "ü"; optimizer.step()
            for i in range(3):
                try:
                    loss.backward()
                except (ValueError, KeyError) as exc:
                    raise
            with ctx() as f, other("€"):
                optimizer.step()
            match cmd:
                case "go":
                    loss.backward(); self.optimizer.step()
    async def run():
        async for x in stream:
            loss.backward()
        async with lock:
            optimizer.step()
''')


def test_every_finding_is_the_exact_text_of_its_step() -> None:
    for text in (TRICKY, TRICKY.replace("\n", "\r\n")):
        found = lint(decode_source("t.py", text.encode()).text, select="GL1")
        spans = [(d.line, d.column, d.end_line, d.end_column) for d in found]
        # line 10 is on the `elif` path, where no backward ran
        assert [d.line for d in found] == [3, 17, 20, 25]
        assert [_segment(text, *span) for span in spans] == [
            "opt.step()", "optimizer.step()", "self.optimizer.step()", "optimizer.step()"]


def test_each_event_is_placed_on_its_own_call_in_its_statement() -> None:
    ctx = _context(TRICKY)
    analysis = ctx.training
    events = [e for f in (analysis.module, *analysis.functions) for e in events_in_order(f.body)]
    assert len(events) >= 10
    for event in events:
        line, col, end_line, end_col = ctx.span_of(event.call)
        assert _segment(TRICKY, line, col + 1, end_line, end_col + 1) == ctx.text_of(event.call)
        anchor = ctx.span_of(event.anchor)
        assert anchor[:2] <= (line, col) and (end_line, end_col) <= anchor[2:]


MULTILINE = textwrap.dedent('''\
    import torch

    class Trainer:
        def update(self, batch):
            for i in range(2):
                self.scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(
                    self.nets[i].parameters(),  # a comment inside
                    1.0)
                self.scaler.step(self.optimizers[i])
                self.scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(
                    self.nets[i].parameters(),  # a comment inside
                    1.0)
                self.scaler.step(self.optimizers[i])
''')


def test_calls_across_lines_are_placed_exactly() -> None:
    found = lint(MULTILINE, select="GL102")
    assert [(d.line, d.column, d.end_line, d.end_column) for d in found] == [(7, 13, 9, 21), (12, 13, 14, 21)]
    assert all(_segment(MULTILINE, d.line, d.column, d.end_line, d.end_column).endswith("1.0)") for d in found)
    # the message quotes the call on one line
    assert found[0].message.startswith("`torch.nn.utils.clip_grad_norm_( self.nets[i].parameters()...` clips")


def test_a_step_in_a_conditional_expression_is_placed_on_the_one_that_runs_unclipped() -> None:
    # the test of `a if test else b` runs first: its step is the unclipped one, though the same
    # text comes earlier on the line (libcst's field order put the finding there)
    code = ("import torch\nloss.backward()\n"
            "x = (torch.nn.utils.clip_grad_norm_(params, 1.0), opt.step())[1] if opt.step() else None\n")
    [finding] = lint(code, select="GL1")
    assert (finding.line, finding.column) == (3, code.splitlines()[2].rindex("opt.step()") + 1)


def test_the_backward_line_in_the_message_is_the_calls_line() -> None:
    code = "import torch\nx = (\n    1,\n    loss.backward(),\n)\noptimizer.step()\n"
    [finding] = lint(code, select="GL1")
    assert "`loss.backward()` (line 4)" in finding.message


# --- every statement, whatever its text -----------------------------------------------------

SPLIT_STEP = textwrap.dedent('''\
    import torch


    def backprop(loss):
        loss.backward()


    def apply_update():
        optimizer.step()


    def train_one(batch):
        loss = compute(batch)
        backprop(loss)
        apply_update()
''')


def test_a_step_split_into_helpers_is_seen_without_any_training_word_in_the_caller() -> None:
    # `train_one` mentions no backward, step, clip or optimizer: the old text selection never
    # analysed it, so the backward-then-step across its helpers went unseen
    assert [(d.code, d.line) for d in lint(SPLIT_STEP, select="GL1")] == [("GL101", 9)]
    clipped = SPLIT_STEP.replace("    optimizer.step()\n", "    torch.nn.utils.clip_grad_norm_(params, 1.0)\n    optimizer.step()\n")
    assert clipped != SPLIT_STEP
    assert lint(clipped, select="GL1") == []


def test_a_comment_mentioning_sgd_changes_nothing() -> None:
    commented = SPLIT_STEP.replace("    loss = compute(batch)", "    # plain SGD, no clipping\n    loss = compute(batch)")
    before = [(d.code, d.line, d.message) for d in lint(SPLIT_STEP)]
    after = [(d.code, d.line, d.message) for d in lint(commented)]
    assert before == after and before


def test_a_chain_of_helpers_without_training_words_is_followed() -> None:
    code = textwrap.dedent('''\
        import torch

        def first(model, opt, x):
            model(x).sum().backward()
            second(model, opt, x)

        def second(model, opt, x):
            third(model, opt, x)

        def third(model, opt, x):
            opt.step()
    ''')
    assert [(d.code, d.line) for d in lint(code, select="GL1")] == [("GL101", 11)]


# --- names through the scoped symbol layer --------------------------------------------------

LOCAL_IMPORTS = textwrap.dedent('''\
    import torch
    from physics import Stepper as S


    def build(p):
        from torch.optim import SGD as S
        return S(p, lr=10)


    def fit(model, data):
        from torch.optim import SGD as S
        engine = S(model.parameters(), lr=10)
        model(data).sum().backward()
        engine.step()


    def simulate(model, data):
        engine = S(model.parameters(), dt=0.1)
        model(data).sum().backward()
        engine.step()
''')


def test_a_function_local_import_counts_in_its_function_only() -> None:
    # `engine` is an optimizer where `S` is torch's SGD (imported inside `fit`), and a
    # simulator where `S` is the module's Stepper; the local import of `build` and `fit` used
    # to leak into the whole file
    assert [(d.code, d.line) for d in lint(LOCAL_IMPORTS, select="GL1")] == [("GL101", 14)]


def test_the_clip_fix_spells_torch_through_a_module_import_only() -> None:
    code = textwrap.dedent('''\
        def setup():
            import torch
            return torch


        def train(model, loss, optimizer):
            loss.backward()
            optimizer.step()
    ''')
    fixed, result = fix(code, select="GL101")
    assert fixed.startswith("import torch\ndef setup():")
    assert "    torch.nn.utils.clip_grad_norm_(" in fixed and result.diagnostics == []


SOFTSIGN_BEHIND_A_LOCAL_IMPORT = textwrap.dedent('''\
    import torch
    import torch.nn as nn


    def train(loss, optimizer):
        from torch.nn import Softsign as Squash
        loss.backward()
        optimizer.step()


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), Squash(), nn.Linear(4, 2))

        def forward(self, x):
            return self.body(x)
''')


def test_selecting_gl101_does_not_change_what_gl203_reports() -> None:
    def gl203(code: str, select: str) -> list[tuple[int, int, str]]:
        return [(d.line, d.column, d.message) for d in lint(code, select=select) if d.code == "GL203"]

    # `Squash` is imported inside `train` only: in `Net` it is not torch's Softsign, with or
    # without the training analysis running first (it used to add the import file-wide)
    assert gl203(SOFTSIGN_BEHIND_A_LOCAL_IMPORT, "GL203") == gl203(SOFTSIGN_BEHIND_A_LOCAL_IMPORT, "GL101,GL203") == []
    # imported at module level it is torch's, whatever is selected
    module_level = SOFTSIGN_BEHIND_A_LOCAL_IMPORT.replace(
        "    from torch.nn import Softsign as Squash\n", "").replace(
        "import torch.nn as nn\n", "import torch.nn as nn\nfrom torch.nn import Softsign as Squash\n")
    flagged = gl203(module_level, "GL203")
    assert flagged == gl203(module_level, "GL101,GL203") and len(flagged) == 1


# --- the skeleton -----------------------------------------------------------------------------


def test_an_elif_ladder_is_one_branch_with_its_tests_in_order() -> None:
    arms = "".join(f"    elif check(cmd, {k}):\n        run{k}()\n" for k in range(300))
    code = ("def check(cmd, k):\n    return cmd == k\n\n" + "".join(f"def run{k}():\n    pass\n" for k in range(300))
            + "\ndef dispatch(cmd):\n    if check(cmd, -1):\n        pass\n" + arms + "    else:\n        run0()\n")
    analysis = _context(code).training
    dispatch = next(f for f in analysis.functions if f.name == "dispatch")
    [branch] = dispatch.body
    assert len(branch.tests) == 301 and len(branch.arms) == 302
    lines = [e.call.lineno for e in events_in_order(dispatch.body)]
    assert lines == sorted(lines) and len(lines) == 301 + 301
