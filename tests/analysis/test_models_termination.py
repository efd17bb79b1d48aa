"""The model description terminates by construction on adversarial files: deep chains of model
classes, long `elif` ladders, loops over layers inside loops over layers, methods that call one
another. What is too much for the analysis budget is one clear error line for that file."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import pytest

from gradlint.analysis.values import UNKNOWN
from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.engine import lint_file
from gradlint.source import SourceFile

HEADER = "import torch\nimport torch.nn as nn\n"


@contextmanager
def hang_guard(seconds: int = 120):
    """Fail instead of hanging the suite (a guard only: nothing here depends on speed)."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def describe(text: str):
    source = SourceFile("m.py", text)
    ctx = FileContext.parse(source, Settings())
    return ctx, ctx.models.models


def test_a_deep_chain_of_model_classes_defined_in_reverse() -> None:
    parts = [HEADER]
    for i in reversed(range(300)):  # each class uses the next one down, defined after it
        inner = f"C{i - 1}()" if i else "nn.Linear(4, 4)"
        parts.append(f"class C{i}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                     f"        self.inner = {inner}\n    def forward(self, x):\n        return torch.relu(self.inner(x))\n\n")
    with hang_guard():
        ctx, models = describe("".join(parts))
    assert len(models) == 300
    bottom = next(m for m in models if m.name == "C0")
    assert [op.describe() for op in bottom.path] == ["input:x", "inner:Linear", "act:relu"]
    assert ctx.budget.spent < ctx.budget.limit


def test_long_elif_ladders_in_init_and_forward() -> None:
    count = 1500
    init = "".join(f"        {'if' if i == 0 else 'elif'} kind == {i}:\n            self.fc{i} = nn.Linear({i + 1}, 4)\n"
                   for i in range(count))
    forward = "".join(f"        {'if' if i == 0 else 'elif'} kind == {i}:\n            x = self.fc{i}(x)\n"
                      for i in range(count))
    text = (HEADER + f"class Net(nn.Module):\n    def __init__(self, kind):\n        super().__init__()\n{init}\n"
            f"    def forward(self, x, kind):\n{forward}        return x\n")
    with hang_guard():
        _, [net] = describe(text)
    assert len(net.layers) == count  # `kind` is unknown: every branch may build its layer
    assert [op.describe() for op in net.path] == ["input:x", "fc0:Linear"]


def test_a_known_condition_takes_one_branch_of_the_ladder() -> None:
    _, [net] = describe(HEADER + """
class Net(nn.Module):
    def __init__(self, small=False, tiny=True):
        super().__init__()
        if small:
            self.fc = nn.Linear(1, 1)
        elif tiny:
            self.fc = nn.Linear(2, 2)
        else:
            self.fc = nn.Linear(3, 3)
""")
    assert net.layers["fc"].fan_in == 2


@pytest.mark.parametrize("name, body", [
    ("nested-layer-loops", """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(256)])
    def forward(self, x):
        for a in self.layers:
            for b in self.layers:
                for c in self.layers:
                    x = c(b(a(x)))
        return x
"""),
    ("mutually-calling-methods", "class Net(nn.Module):\n    def forward(self, x):\n"
     + "".join(f"        x = self.m{j}(x)\n" for j in range(40)) + "        return x\n"
     + "".join(f"    def m{i}(self, x):\n" + "".join(f"        x = self.m{j}(x)\n" for j in range(40)) + "        return x\n"
               for i in range(40))),
])
def test_what_exceeds_the_budget_is_one_error_line_and_the_next_file_is_linted(tmp_path, name: str, body: str) -> None:
    bad = tmp_path / f"{name}.py"
    bad.write_text(HEADER + body)
    good = tmp_path / "good.py"
    good.write_text(HEADER + "net = nn.Sequential(nn.Linear(4, 8), nn.Softsign())\n")
    settings = Settings(select=("GL2", "GL3"))
    with hang_guard():
        result = lint_file(str(bad), settings)
        other = lint_file(str(good), settings)
    assert result.error is not None and result.error.message == "analysis budget exceeded"
    assert [d.code for d in other.diagnostics] == ["GL203"]


def test_explain_model_says_in_one_line_when_a_file_exceeds_the_budget(tmp_path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    bad = tmp_path / "bad.py"
    bad.write_text(HEADER + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(256)])
    def forward(self, x):
        for a in self.layers:
            for b in self.layers:
                for c in self.layers:
                    x = c(b(a(x)))
        return x
""")
    good = tmp_path / "good.py"
    good.write_text(HEADER + "net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())\n")
    with hang_guard():
        result = CliRunner().invoke(main, ["explain-model", str(bad), str(good)])
    assert result.exit_code == 2
    assert f"gradlint: error: {bad}: analysis budget exceeded" in result.output
    assert "forward: input:x -> seq.0:Linear -> act:relu" in result.output


def test_nested_layer_loops_in_init_are_read_twice_only_near_the_top() -> None:
    # a loop that builds layers is read twice (first iteration, steady state); nested ones
    # below a small depth once: 12 nested loops stay far below the budget
    depth = 12
    body = "".join("    " * (2 + i) + f"for i{i} in range(2):\n" for i in range(depth))
    body += "    " * (2 + depth) + "layers.append(nn.Linear(4, 4))\n"
    text = (HEADER + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        layers = []\n" + body + "        self.net = nn.Sequential(*layers)\n"
            "    def forward(self, x):\n        return self.net(x)\n")
    with hang_guard():
        ctx, [net] = describe(text)
    assert net.layers["net"].children and ctx.budget.spent < ctx.budget.limit // 10


def test_self_referencing_helpers_and_aliases_terminate() -> None:
    text = HEADER + """
def hidden_init(layer):
    return hidden_init(layer)

def spread(layer):
    a = b
    b = a
    return (-a, b)

class Net(nn.Module):
    W = None
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.P = nn.Parameter(torch.randn(8, 8))
        self.fc.weight.data.uniform_(*hidden_init(self.fc))
        self.fc.weight.data.uniform_(*spread(self.fc))

    def forward(self, x):
        w = v
        v = w
        return x @ w + x @ self.P
"""
    with hang_guard():
        ctx, [net] = describe(text)
    assert net.layers["fc"].inits[-1].params == {"a": UNKNOWN, "b": UNKNOWN}
    assert net.layers["P"].role == "weight"
