"""GL201-GL204, GL301, GL302 on what they must flag and close look-alikes; their unsafe fixes."""

from __future__ import annotations

import ast
import textwrap

import pytest

from gradlint.source import SourceFile
from tests.conftest import fix, lint

HEADER = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def found(code: str, select: str) -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in lint(HEADER + textwrap.dedent(code), select=select)]


def marked(code: str) -> list[int]:
    return [i + 1 for i, line in enumerate((HEADER + textwrap.dedent(code)).splitlines()) if "# <-" in line]


DEEP = """
    class Deep(nn.Module):  # <-
        def __init__(self, hidden=256, depth={depth}):
            super().__init__()
            layers = []
            for _ in range(depth):
                layers += [nn.Linear(hidden, hidden), {between}nn.{act}()]
            self.net = nn.Sequential(*layers)
            {init}

        def forward(self, x):
            return self.net(x)
"""


# --- GL201 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["ReLU", "LeakyReLU", "GELU", "SiLU", "ELU", "Softplus"])
def test_gl201_flags_deep_unbounded_stacks(act: str) -> None:
    code = DEEP.format(depth=8, between="", act=act, init="")
    [diagnostic] = lint(HEADER + textwrap.dedent(code), select="GL201")
    assert (diagnostic.code, diagnostic.line) == ("GL201", marked(code)[0])
    assert "Deep: 8 weight layers (net.0 ... net.14)" in diagnostic.message
    # PyTorch's default init: the estimate shows no growth, so the finding is only structural
    assert "gradient variance shrinks with depth" in diagnostic.message and diagnostic.severity.value == "info"


def test_gl201_error_when_the_init_makes_gradients_grow() -> None:
    code = DEEP.format(depth=6, between="", act="ReLU",
                       init="for m in self.modules():\n                if isinstance(m, nn.Linear):\n                    nn.init.normal_(m.weight, std=1.0)")
    [diagnostic] = lint(HEADER + textwrap.dedent(code), select="GL201")
    assert diagnostic.severity.value == "error"
    assert "c = 128 per layer" in diagnostic.message and "grows about" in diagnostic.message


@pytest.mark.parametrize(
    "depth, between, act",
    [
        (5, "", "ReLU"),  # shallower than the default minimum of 6
        (8, "nn.LayerNorm(hidden), ", "ReLU"),  # normalized
        (8, "nn.BatchNorm1d(hidden), ", "ReLU"),
        (8, "", "Tanh"),  # saturating
    ],
)
def test_gl201_look_alikes(depth: int, between: str, act: str) -> None:
    assert found(DEEP.format(depth=depth, between=between, act=act, init=""), "GL201") == []


def test_gl201_residual_blocks_and_unknown_depth_are_not_flagged() -> None:
    assert found("""
        class Block(nn.Module):
            def __init__(self, d=64):
                super().__init__()
                self.a, self.b = nn.Linear(d, d), nn.Linear(d, d)
                self.fc1 = nn.Linear(d, d)
                self.fc2 = nn.Linear(d, d)

            def forward(self, x):
                return x + self.fc2(F.relu(self.fc1(x)))

        class ResNet(nn.Module):
            def __init__(self, n=10):
                super().__init__()
                self.blocks = nn.Sequential(*[Block() for _ in range(n)])

            def forward(self, x):
                return F.relu(self.blocks(x))

        class FromConfig(nn.Module):
            def __init__(self, cfg):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(cfg.n_layers)])

            def forward(self, x):
                for layer in self.layers:
                    x = F.relu(layer(x))
                return x
    """, "GL201") == []


def test_gl201_min_depth_option() -> None:
    code = HEADER + textwrap.dedent(DEEP.format(depth=4, between="", act="ReLU", init=""))
    assert [d.code for d in lint(code, "GL201", **{"GL201": {"min-depth": 4}})] == ["GL201"]


# --- GL202 ---------------------------------------------------------------------------------


def test_gl202_relu_rnn_and_hand_written_relu_recurrence() -> None:
    code = """
        class A(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.RNN(16, 64, nonlinearity="relu")  # <-

        class B(nn.Module):
            def __init__(self, n=32):
                super().__init__()
                self.W = nn.Linear(n, n)
                self.U = nn.Linear(n, n)

            def forward(self, xs, h):
                for x in xs:
                    h = F.relu(self.W(h) + self.U(x))  # <-
                return h
    """
    assert found(code, "GL202") == [("GL202", n) for n in marked(code)]


def test_gl202_look_alikes() -> None:
    assert found("""
        class A(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.RNN(16, 64)
                self.gru = nn.GRU(16, 64)
                self.cell = nn.RNNCell(16, 64, nonlinearity="tanh")

        class B(nn.Module):
            def __init__(self, n=32):
                super().__init__()
                self.W = nn.Linear(n, n)
                self.layers = nn.ModuleList([nn.Linear(n, n) for _ in range(4)])

            def forward(self, xs, h):
                for x in xs:
                    h = torch.tanh(self.W(h) + x)
                for layer in self.layers:
                    h = F.relu(layer(h))
                return h
    """, "GL202") == []


# --- GL203 ---------------------------------------------------------------------------------


def test_gl203_flags_softsign_and_its_unsafe_fix() -> None:
    code = HEADER + textwrap.dedent("""
        net = nn.Sequential(nn.Linear(4, 8), nn.Softsign(), nn.Linear(8, 8), nn.Softsign())
        def act(x):
            return F.softsign(x)
    """)
    diagnostics = lint(code, "GL203")
    assert [(d.line, d.column) for d in diagnostics] == [(6, 38), (6, 70), (8, 12)]
    assert all(d.fix.applicability.value == "unsafe" for d in diagnostics)
    safe_only, result = fix(code)
    assert safe_only == code and len(result.diagnostics) == 3  # --fix alone leaves unsafe fixes
    fixed, result = fix(code, unsafe=True)
    assert "nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())" in fixed
    assert "return torch.tanh(x)" in fixed
    assert result.diagnostics == []


def test_gl203_look_alikes() -> None:
    assert found("""
        net = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        softsign = "not a layer"
        def softsign_like(x):
            return x / (1 + x.abs())
    """, "GL203") == []


# --- GL204 ---------------------------------------------------------------------------------

ACTOR = """
    class Actor(nn.Module):
        def __init__(self, state_dim=3, action_dim=1, max_action=2.0):
            super().__init__()
            self.fc1 = nn.Linear(state_dim, 64)
            self.fc2 = nn.Linear(64, action_dim)
            self.max_action = max_action

        def forward(self, state):
            x = F.relu(self.fc1(state))
            return {ret}
"""


def test_gl204_flags_unbounded_actor_and_fixes_it() -> None:
    code = HEADER + textwrap.dedent(ACTOR.format(ret="self.fc2(x)"))
    [diagnostic] = lint(code, "GL204")
    assert diagnostic.line == 15 and "self.max_action" in diagnostic.message
    fixed, result = fix(code, unsafe=True)
    assert "return torch.tanh(self.fc2(x)) * self.max_action" in fixed
    assert result.diagnostics == []


@pytest.mark.parametrize("ret", [
    "self.max_action * torch.tanh(self.fc2(x))",
    "torch.tanh(self.fc2(x)) * self.max_action",
    "self.fc2(x).clamp(-self.max_action, self.max_action)",
    "self.max_action * self.fc2(x).tanh()",
])
def test_gl204_squashed_outputs_are_fine(ret: str) -> None:
    assert found(ACTOR.format(ret=ret), "GL204") == []


def test_gl204_sac_style_actor_and_critic_are_fine() -> None:
    assert found("""
        class SACActor(nn.Module):
            def __init__(self, s=3, a=1, max_action=1.0):
                super().__init__()
                self.fc = nn.Linear(s, 64)
                self.mu = nn.Linear(64, a)
                self.log_std = nn.Linear(64, a)
                self.max_action = max_action

            def forward(self, state):
                h = F.relu(self.fc(state))
                return self.mu(h), self.log_std(h)

            def sample(self, state):
                mu, log_std = self(state)
                return torch.tanh(mu) * self.max_action

        class Critic(nn.Module):
            def __init__(self, s=3, a=1):
                super().__init__()
                self.fc = nn.Linear(s + a, 1)

            def forward(self, state, action):
                return self.fc(torch.cat([state, action], 1))
    """, "GL204") == []


# --- GL301 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("init, reason", [
    ("nn.init.normal_(self.fc.weight, std=1.0)", "c = 1/2 * fan_in * E[w^2] = 128"),
    ("self.fc.weight.data.normal_()", "c = 1/2 * fan_in * E[w^2] = 128"),
    ("nn.init.uniform_(self.fc.weight, -1, 1)", "c = 1/2 * fan_in * E[w^2] = 42.7"),
    ("nn.init.orthogonal_(self.fc.weight, gain=4)", "= 8"),
    ("nn.init.xavier_uniform_(self.fc.weight, gain=5.0)", "= 12.5"),
    ("nn.init.constant_(self.fc.weight, 0.5)", "constant weights make every unit identical"),
])
def test_gl301_flags_large_inits(init: str, reason: str) -> None:
    code = HEADER + textwrap.dedent(f"""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(256, 256)
                {init}

            def forward(self, x):
                return F.relu(self.fc(x))
    """)
    [diagnostic] = lint(code, "GL301")
    assert diagnostic.line == 10 and reason in diagnostic.message
    fixed, result = fix(code, select="GL301", unsafe=True)
    ast.parse(fixed)
    assert result.diagnostics == [], fixed


@pytest.mark.parametrize("init", [
    "nn.init.normal_(self.fc.weight, 0.0, 0.02)",
    "nn.init.uniform_(self.fc.weight, -3e-3, 3e-3)",
    "nn.init.orthogonal_(self.fc.weight, math.sqrt(2))",
    "nn.init.xavier_uniform_(self.fc.weight)",
    "nn.init.kaiming_uniform_(self.fc.weight, a=math.sqrt(5))",
    "nn.init.kaiming_normal_(self.fc.weight, nonlinearity='relu')",
    "nn.init.constant_(self.fc.bias, 0.1)",
    "nn.init.normal_(self.emb.weight, std=1.0)",
    "self.W = nn.Parameter(torch.randn(256, 256) / math.sqrt(256))",
])
def test_gl301_look_alikes(init: str) -> None:
    assert found(f"""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(256, 256)
                self.emb = nn.Embedding(1000, 256)
                {init}

            def forward(self, x):
                return F.relu(self.fc(x))
    """, "GL301") == []


def test_gl301_randn_parameter_fix_scales_by_fan_in() -> None:
    code = HEADER + textwrap.dedent("""
        class RNN(nn.Module):
            def __init__(self, n=64):
                super().__init__()
                self.W = nn.Parameter(torch.randn(n, n))

            def forward(self, h):
                return torch.tanh(h @ self.W)
    """)
    assert [d.line for d in lint(code, "GL301")] == [9]
    fixed, result = fix(code, select="GL301", unsafe=True)
    assert "nn.Parameter(torch.randn(n, n) / n ** 0.5)" in fixed and result.diagnostics == []


def test_gl301_free_init_function_without_known_width() -> None:
    code = """
        def weights_init(m):
            if isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 1)  # <-
            elif isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0.0, 0.02)
    """
    assert found(code, "GL301") == [("GL301", n) for n in marked(code)]


def test_gl301_fix_picks_xavier_before_tanh() -> None:
    code = HEADER + textwrap.dedent("""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(256, 256)
                nn.init.normal_(self.fc.weight, std=1.0)

            def forward(self, x):
                return torch.tanh(self.fc(x))
    """)
    fixed, _ = fix(code, select="GL301", unsafe=True)
    assert "nn.init.xavier_normal_(self.fc.weight)" in fixed


# --- GL302 ---------------------------------------------------------------------------------

CRITIC = """
    class Critic(nn.Module):  # <-
        def __init__(self, s=8, hidden=256):
            super().__init__()
            self.fc = nn.Linear(s, hidden)
            self.out = nn.Linear(hidden, 1)
            {init}

        def forward(self, state):
            return self.out(F.relu(self.fc(state)))

    critic = Critic()
    opt = torch.optim.Adam(critic.parameters())
    loss.backward()
    {clip}
    opt.step()
"""


def test_gl302_flags_unclipped_critic_head_and_fixes_it() -> None:
    code = CRITIC.format(init="", clip="")
    assert found(code, "GL302") == [("GL302", marked(code)[0])]
    fixed, result = fix(HEADER + textwrap.dedent(code), select="GL302", unsafe=True)
    assert "        self.out = nn.Linear(hidden, 1)\n        nn.init.uniform_(self.out.weight, -0.003, 0.003)\n" in fixed
    assert result.diagnostics == []


@pytest.mark.parametrize("init, clip", [
    ("nn.init.uniform_(self.out.weight, -3e-3, 3e-3)", ""),  # small head
    ("", "nn.utils.clip_grad_norm_(critic.parameters(), 1.0)"),  # clipped: not at risk
])
def test_gl302_look_alikes(init: str, clip: str) -> None:
    assert found(CRITIC.format(init=init, clip=clip), "GL302") == []


def test_gl302_only_for_actor_critic_value_networks() -> None:
    code = CRITIC.format(init="", clip="").replace("Critic", "Encoder")
    assert found(code, "GL302") == []


@pytest.mark.parametrize(("text", "models"), [
    ("import torch.nn as nn\nclass Net(nn.Module): ...\n", True),
    ("from torch import nn\n", True),
    ("import torch\nlayer = torch.nn.Linear(3, 4)\n", True),
    # a torch data file: "nn" only inside words such as channels or running
    ("import torch\nclass Frames(torch.utils.data.Dataset):\n    channels = 3\n    running = True\n", False),
    ("channels = 3\n", False),
])
def test_the_model_rules_skip_criterion(text: str, models: bool) -> None:
    from gradlint.context import file_may_model

    assert file_may_model(text) is models


# --- the model rules on the ast core (issue 15): blind spots, selection, positions ----------


def test_gl203_sees_function_local_imports_whatever_rules_run() -> None:
    code = HEADER + textwrap.dedent("""
        def act(x):
            from torch.nn.functional import softsign as squash
            return squash(x)

        def train(model, opt, x):
            loss = model(x).sum()
            loss.backward()
            opt.step()
    """)
    alone = [(d.code, d.line, d.column) for d in lint(code, "GL203")]
    assert alone == [("GL203", 8, 12)]
    assert [(d.code, d.line, d.column) for d in lint(code, "GL101,GL203") if d.code == "GL203"] == alone
    fixed, _ = fix(code, select="GL203", unsafe=True)
    assert "return torch.tanh(x)" in fixed


def test_gl203_look_alike_softsign_of_another_library() -> None:
    assert found("""
        def act(x):
            from mylib.activations import softsign as squash
            return squash(x)
    """, "GL203") == []


def test_gl203_in_default_arguments_and_decorators() -> None:
    code = """
        class Head(nn.Module):
            def __init__(self, act=nn.Softsign()):  # <-
                super().__init__()
                self.act = act
    """
    assert found(code, "GL203") == [("GL203", n) for n in marked(code)]


def test_gl301_free_init_function_whatever_its_text() -> None:
    # no word of the old statement trigger in the function: it was never analysed
    code = """
        from torch.nn.init import orthogonal_

        def reset(m):
            orthogonal_(m.weight, 3.0)  # <-

        def fine(m):
            orthogonal_(m.weight, 1.0)
    """
    assert found(code, "GL301") == [("GL301", n) for n in marked(code)]


def test_gl201_on_a_model_defined_under_try() -> None:
    code = "try:\n" + textwrap.indent(textwrap.dedent(DEEP.format(depth=8, between="", act="ReLU", init="")), "    ") + \
        "except ImportError:\n    pass\n"
    [diagnostic] = lint(HEADER + code, select="GL201")
    assert (diagnostic.line, diagnostic.column, diagnostic.end_column) == (marked(code)[0], 11, 15)


@pytest.mark.parametrize("ret, fixed_ret", [
    ("(self.fc2(x))", "torch.tanh((self.fc2(x))) * self.max_action"),
    ("self.fc2(x)  # the action", "torch.tanh(self.fc2(x)) * self.max_action  # the action"),
])
def test_gl204_fix_wraps_the_returned_expression_as_written(ret: str, fixed_ret: str) -> None:
    code = HEADER + textwrap.dedent(ACTOR.format(ret=ret))
    fixed, result = fix(code, select="GL204", unsafe=True)
    assert f"return {fixed_ret}\n" in fixed and result.diagnostics == []


def test_gl204_fix_of_a_return_without_space() -> None:
    code = HEADER + textwrap.dedent(ACTOR.format(ret="self.fc2(x)")).replace("return self.fc2(x)", "return(self.fc2(x))")
    fixed, _ = fix(code, select="GL204", unsafe=True)
    ast.parse(fixed)
    assert "return torch.tanh((self.fc2(x))) * self.max_action" in fixed


TRICKY_MODELS = '''\
import torch
import torch.nn as nn
import torch.nn.functional as F

# é: non-ASCII text before the findings
class Crític(nn.Module):
    def __init__(self, hidden=256):
        super().__init__()
        self.a, self.b = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.rnn = nn.RNN(
            16, 64, nonlinearity="relu")
        nn.init.normal_(self.a.weight, std=1.0); nn.init.normal_(self.b.weight, std=1.0)

    def forward(self, x, é=None):
        y = F.softsign(x) if F.softsign(x).mean() > 0 else é
        return self.b(F.relu(self.a(y)))


net = nn.Sequential(nn.Softsign(), nn.Softsign())
'''


def test_model_findings_sit_exactly_on_their_nodes() -> None:
    # the same call text twice on a line, non-ASCII text before it, a call over two lines
    source = SourceFile("m.py", TRICKY_MODELS)
    spans = {(d.code, d.line, d.column, source.text[source.offset(d.line, d.column - 1) : source.offset(d.end_line, d.end_column - 1)])
             for d in lint(TRICKY_MODELS, select="GL2,GL3")}
    assert spans == {
        ("GL202", 10, 20, 'nn.RNN(\n            16, 64, nonlinearity="relu")'),
        ("GL301", 12, 9, "nn.init.normal_(self.a.weight, std=1.0)"),
        ("GL301", 12, 50, "nn.init.normal_(self.b.weight, std=1.0)"),
        ("GL203", 15, 13, "F.softsign(x)"),
        ("GL203", 15, 30, "F.softsign(x)"),
        ("GL203", 19, 21, "nn.Softsign()"),
        ("GL203", 19, 36, "nn.Softsign()"),
    }


def test_the_model_rules_do_not_load_libcst() -> None:
    # the description runs on the ast tree; GL302 is left out (it asks the training analysis)
    import subprocess
    import sys

    from tests.conftest import FIXTURES, ROOT

    script = (
        "import sys, glob\n"
        "from gradlint.config import Settings\n"
        "from gradlint.engine import lint_paths\n"
        f"files = sorted(glob.glob({str(FIXTURES / 'models')!r} + '/**/*.py', recursive=True))\n"
        "results = lint_paths(files, Settings(select=('GL201', 'GL202', 'GL203', 'GL204', 'GL301')), jobs=1)\n"
        "assert sum(len(r.diagnostics) for r in results) > 10 and not any(r.error for r in results)\n"
        "module = sys.modules.get('libcst')\n"
        "print(type(module).__name__ if module is not None else 'absent')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("absent", "_LazyModule")  # never imported for real


@pytest.mark.parametrize("rescale", ["m.weight.data *= 0.01 / m.weight.norm()", "m.weight.data.mul_(0.01)",
                                     "m.weight.div_(m.weight.norm())"])
def test_gl301_free_init_rescaled_afterwards_is_not_flagged(rescale: str) -> None:
    code = f"""
        def init_weights(m):
            m.weight.data.normal_(0, 1)
            {rescale}

        def plain(m):
            m.weight.data.normal_(0, 1)  # <-
    """
    assert found(code, "GL301") == [("GL301", n) for n in marked(code)]


def test_gl301_every_definition_of_a_function_name_is_read() -> None:
    # marimo notebooks define each cell as `def _(...)`; a model class defined in one is a
    # model of its own (named as itself, not after the function)
    code = """
        def _(nn):
            class Noisy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Linear(256, 256)
                    self.w.weight.data.normal_(0, 1)  # <-

                def forward(self, x):
                    return self.w(x)
            return Noisy

        if True:
            def _(nn):
                def init(m):
                    nn.init.orthogonal_(m.weight, 4.0)  # <-
                return init
    """
    assert found(code, "GL301") == [("GL301", n) for n in marked(code)]
    [first, _] = lint(HEADER + textwrap.dedent(code), select="GL301")
    assert "on Noisy.w: c = 1/2 * fan_in * E[w^2] = 128" in first.message and first.subject == "Noisy"
