"""The static model description: layers, resolved sizes, forward order, init and gain."""

from __future__ import annotations

import textwrap

import pytest

from gradlint.analysis.values import UNKNOWN
from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.source import SourceFile

HEADER = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def describe(code: str) -> dict:
    source = SourceFile("m.py", HEADER + textwrap.dedent(code))
    ctx = FileContext.parse(source, Settings())
    return {m.name if m.kind == "module" else f"seq@{i}": m for i, m in enumerate(ctx.models.models)}


def path_of(model) -> list[str]:
    return [op.describe() for op in model.path]


def test_layers_sizes_and_forward_order() -> None:
    [actor] = describe("""
        HIDDEN = 64

        class Actor(nn.Module):
            def __init__(self, state_dim=17, action_dim=6, max_action=2.0):
                super().__init__()
                self.l1 = nn.Linear(state_dim, HIDDEN * 4)
                self.l2 = nn.Linear(HIDDEN * 4, HIDDEN * 4)
                self.l3 = nn.Linear(HIDDEN * 4, action_dim)
                self.max_action = max_action

            def forward(self, state):
                a = F.relu(self.l1(state))
                a = self.l2(a).relu()
                return self.max_action * torch.tanh(self.l3(a))
    """).values()
    assert [(l.name, l.fan_in, l.fan_out) for l in actor.weight_layers()] == [("l1", 17, 256), ("l2", 256, 256), ("l3", 256, 6)]
    assert path_of(actor) == ["input:state", "l1:Linear", "act:relu", "l2:Linear", "act:relu", "l3:Linear",
                              "act:tanh", "scale:self.max_action"]
    assert actor.bound == "self.max_action"
    assert actor.init_params == {"state_dim": 17, "action_dim": 6, "max_action": 2.0}
    assert actor.inputs == ["state"]


def test_depth_from_loop_count_default_argument_in_order() -> None:
    models = describe("""
        class Deep(nn.Module):
            def __init__(self, hidden=32, depth=5):
                super().__init__()
                layers = []
                for _ in range(depth):
                    layers.append(nn.Linear(hidden, hidden))
                    layers.append(nn.LayerNorm(hidden))
                    layers.append(nn.GELU())
                self.net = nn.Sequential(*layers)

            def forward(self, x):
                return self.net(x)
    """)
    assert path_of(models["Deep"])[1:7] == ["net.0:Linear", "norm:LayerNorm", "act:gelu", "net.3:Linear", "norm:LayerNorm", "act:gelu"]
    assert len(models["Deep"].weight_layers()) == 5


def test_module_list_comprehension_and_residual_blocks() -> None:
    models = describe("""
        class Block(nn.Module):
            def __init__(self, dim=16):
                super().__init__()
                self.fc1 = nn.Linear(dim, dim)
                self.fc2 = nn.Linear(dim, dim)

            def forward(self, x):
                out = self.fc2(F.relu(self.fc1(x)))
                return F.relu(out + x)

        class Net(nn.Module):
            def __init__(self, n_blocks=3):
                super().__init__()
                self.blocks = nn.ModuleList([Block() for _ in range(n_blocks)])
                self.head = nn.Linear(16, 1)

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return self.head(x)
    """)
    assert path_of(models["Block"]) == ["input:x", "residual", "act:relu"]
    assert path_of(models["Net"]) == ["input:x"] + ["residual", "act:relu"] * 3 + ["head:Linear"]


def test_unknown_depth_is_unknown() -> None:
    models = describe("""
        class Net(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(config.depth)])

            def forward(self, x):
                for layer in self.layers:
                    x = F.relu(layer(x))
                return x
    """)
    assert models["Net"].path is None or all(op.kind != "layer" for op in models["Net"].path)


@pytest.mark.parametrize(
    "init, gain",
    [
        ("pass", 1 / 6),  # PyTorch's default nn.Linear init
        ("nn.init.normal_(self.fc.weight, std=1.0)", 128.0),
        ("nn.init.normal_(self.fc.weight, 0.0, 0.02)", 0.5 * 256 * 0.02**2),
        ("self.fc.weight.data.normal_()", 128.0),
        ("nn.init.uniform_(self.fc.weight, -1, 1)", 0.5 * 256 / 3),
        ("nn.init.kaiming_normal_(self.fc.weight, nonlinearity='relu')", 1.0),
        ("nn.init.kaiming_uniform_(self.fc.weight, a=math.sqrt(5))", 1 / 6),
        ("nn.init.orthogonal_(self.fc.weight, math.sqrt(2))", 1.0),
        ("nn.init.orthogonal_(self.fc.weight, gain=4)", 8.0),
        ("nn.init.xavier_uniform_(self.fc.weight)", 0.5),
        ("nn.init.xavier_normal_(self.fc.weight, gain=2.0)", 2.0),
        ("nn.init.normal_(self.fc.weight, std=1.0); self.fc.weight.data.mul_(0.1)", 1.28),
    ],
)
def test_per_layer_gain(init: str, gain: float) -> None:
    models = describe(f"""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(256, 256)
                {init}

            def forward(self, x):
                return self.fc(x)
    """)
    assert models["Net"].layers["fc"].gain() == pytest.approx(gain, rel=1e-6)


def test_apply_init_function_reaches_every_linear() -> None:
    models = describe("""
        def weights_init(m):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.5)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(100, 100)
                self.b = nn.Linear(100, 10)
                self.apply(weights_init)
    """)
    net = models["Net"]
    assert [round(net.layers[n].gain(), 6) for n in ("a", "b")] == [12.5, 12.5]


def test_helper_init_function_and_sequential() -> None:
    models = describe("""
        def layer_init(layer, std=math.sqrt(2), bias_const=0.0):
            torch.nn.init.orthogonal_(layer.weight, std)
            torch.nn.init.constant_(layer.bias, bias_const)
            return layer

        class Agent(nn.Module):
            def __init__(self, obs=8, n=4):
                super().__init__()
                self.actor = nn.Sequential(layer_init(nn.Linear(obs, 64)), nn.Tanh(), layer_init(nn.Linear(64, n), std=0.01))

            def forward(self, x):
                return self.actor(x)
    """)
    agent = models["Agent"]
    hidden, head = agent.weight_layers()
    assert hidden.gain() == pytest.approx(1.0) and head.gain() == pytest.approx(0.5 * 0.01**2)
    assert path_of(agent) == ["input:x", "actor.0:Linear", "act:tanh", "actor.2:Linear"]


def test_parameter_weights_and_hand_written_recurrence() -> None:
    models = describe("""
        class RNN(nn.Module):
            def __init__(self, n=64):
                super().__init__()
                self.W = nn.Parameter(torch.randn(n, n) / math.sqrt(n))
                self.U = nn.Parameter(torch.randn(n, n))

            def forward(self, xs):
                h = torch.zeros(xs.shape[1], 64)
                for x in xs:
                    h = torch.relu(h @ self.W + x @ self.U)
                return h
    """)
    rnn = models["RNN"]
    assert rnn.layers["W"].gain() == pytest.approx(0.5)
    assert rnn.layers["U"].gain() == pytest.approx(32.0)
    assert [(r.variable, r.activation) for r in rnn.recurrences] == [("h", "relu")]


def test_loop_over_layers_is_not_a_recurrence() -> None:
    models = describe("""
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])

            def forward(self, h):
                for layer in self.hidden:
                    h = F.relu(layer(h))
                return h
    """)
    assert models["MLP"].recurrences == []
    assert len(models["MLP"].weight_layers()) == 3


def test_conditional_norm_from_default_argument() -> None:
    models = describe("""
        class MLPNetwork(nn.Module):
            def __init__(self, input_dim=24, norm_in=True):
                super().__init__()
                if norm_in:
                    self.in_fn = nn.BatchNorm1d(input_dim)
                else:
                    self.in_fn = lambda x: x
                self.fc1 = nn.Linear(input_dim, 64)

            def forward(self, X):
                return self.fc1(self.in_fn(X))
    """)
    assert path_of(models["MLPNetwork"]) == ["input:X", "norm:BatchNorm1d", "fc1:Linear"]


def test_sequential_outside_classes_and_critic_concat() -> None:
    models = describe("""
        policy = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))

        class Critic(nn.Module):
            def __init__(self, s=3, a=1):
                super().__init__()
                self.fc = nn.Linear(s + a, 1)

            def forward(self, state, action):
                return self.fc(torch.cat([state, action], 1))
    """)
    seq = next(m for m in models.values() if m.kind == "sequential")
    assert path_of(seq) == ["input:x", "seq.0:Linear", "act:relu", "seq.2:Linear"]
    assert models["Critic"].layers["fc"].fan_in == 4
    assert path_of(models["Critic"]) == ["input:state", "concat", "fc:Linear"]


def test_explain_model_command(tmp_path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    path = tmp_path / "m.py"
    path.write_text(HEADER + "net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\n")
    result = CliRunner().invoke(main, ["explain-model", str(path)])
    assert result.exit_code == 0
    assert "forward: input:x -> seq.0:Linear -> act:relu -> seq.2:Linear" in result.output
    assert "fan_in=4  gain c=0.167" in result.output
    import json

    data = json.loads(CliRunner().invoke(main, ["explain-model", "--format", "json", str(path)]).output)
    assert data[0]["path"] == ["input:x", "seq.0:Linear", "act:relu", "seq.2:Linear"]
    assert data[0]["layers"][0]["fan_in"] == 4


def test_module_list_from_concatenated_lists_and_enumerate_index() -> None:
    # NeRF's shape: a ModuleList built by list concatenation with a conditional element,
    # walked with `for i, l in enumerate(...)` and indexed with `self.layers[i]`
    models = describe("""
        class NeRFLike(nn.Module):
            def __init__(self, D=8, W=64, input_ch=3, skips=[4]):
                super().__init__()
                self.skips = skips
                self.pts_linears = nn.ModuleList(
                    [nn.Linear(input_ch, W)] + [nn.Linear(W, W) if i not in self.skips else nn.Linear(W + input_ch, W) for i in range(D - 1)])

            def forward(self, x):
                input_pts, views = torch.split(x, [3, 3], dim=-1)
                h = input_pts
                for i, l in enumerate(self.pts_linears):
                    h = self.pts_linears[i](h)
                    h = F.relu(h)
                    if i in self.skips:
                        h = torch.cat([input_pts, h], -1)
                return h
    """)
    assert len(models["NeRFLike"].weight_layers()) == 8


# --- the description on the ast core (issue 15) ---------------------------------------------


def test_tuples_resolve_kernel_sizes_loop_counts_and_parameter_shapes() -> None:
    # the one constant evaluator reads tuples: a Conv2d's (3, 3) kernel gives its fan-in, a
    # loop over a tuple of sizes has a known count, `torch.randn((n, m))` a known shape
    models = describe("""
        class CNN(nn.Module):
            def __init__(self, sizes=(32, 32, 32)):
                super().__init__()
                self.conv = nn.Conv2d(3, 16, kernel_size=(3, 3))
                self.W = nn.Parameter(torch.randn((16, 16)))
                layers = []
                for size in sizes:
                    layers += [nn.Linear(size, size), nn.ReLU()]
                self.mlp = nn.Sequential(*layers)

            def forward(self, x):
                return self.mlp(self.conv(x))
    """)
    cnn = models["CNN"]
    assert (cnn.layers["conv"].fan_in, cnn.layers["conv"].fan_out) == (27, 144)
    assert cnn.layers["conv"].args["kernel_size"] == (3, 3)
    # W is never used as a weight: its shape alone gives no fan-in
    assert cnn.layers["W"].args["shape"] == (16, 16) and cnn.layers["W"].gain() is UNKNOWN
    assert cnn.layers["W"].role is None
    assert [layer.kind for layer in cnn.layers["mlp"].children] == ["Linear", "ReLU"] * 3
    assert path_of(cnn)[-1] == "act:relu" and len(cnn.weight_layers()) == 4


def test_an_unknown_kernel_size_leaves_the_fan_in_unknown() -> None:
    models = describe("""
        class CNN(nn.Module):
            def __init__(self, kernel):
                super().__init__()
                self.conv = nn.Conv2d(3, 16, kernel_size=(kernel, 3))
    """)
    assert models["CNN"].layers["conv"].fan_in is UNKNOWN


def test_model_classes_under_try_and_if_blocks_are_described() -> None:
    # every class of the module, not only those at its top level
    models = describe("""
        try:
            class Policy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 2)

                def forward(self, x):
                    return self.fc(x)
        except ImportError:
            Policy = None

        if torch.cuda.is_available():
            class Value(Policy):
                pass
    """)
    assert set(models) == {"Policy", "Value"}
    assert path_of(models["Policy"]) == ["input:x", "fc:Linear"]


def test_classes_that_are_not_modules_are_not_models() -> None:
    assert describe("""
        try:
            class Config:
                def __init__(self):
                    self.fc = nn.Linear(4, 2)
        except ImportError:
            pass

        class Agent:
            def __init__(self):
                self.net = nn.Sequential(nn.Linear(4, 2))
    """) == {}


def test_function_local_imports_are_read_in_their_own_scope() -> None:
    models = describe("""
        def build():
            from torch.nn import Linear as L, ReLU as R, Sequential as S
            return S(L(4, 8), R(), L(8, 2))

        def other():
            L = lambda *a: None  # not torch's Linear here
            return nn.Sequential(L(4, 8))
    """)
    first, second = models.values()
    assert path_of(first) == ["input:x", "seq.0:Linear", "act:relu", "seq.2:Linear"]
    assert [layer.kind for layer in second.layers["seq"].children] == ["L"]


def test_sequentials_in_functions_and_module_code_in_source_order() -> None:
    models = describe("""
        def make(n=4):
            if n:
                return nn.Sequential(nn.Linear(n, n))
            return nn.Sequential(nn.Linear(2, 2), nn.Tanh())

        net = nn.Sequential(nn.Linear(8, 1)) if True else None
    """)
    assert [path_of(m)[1:] for m in models.values()] == [
        ["seq.0:Linear"], ["seq.0:Linear", "act:tanh"], ["seq.0:Linear"]]
    assert [m.line for m in models.values()] == [8, 9, 11]


def test_description_nodes_are_the_ast_nodes_of_the_file() -> None:
    import ast

    source = SourceFile("m.py", HEADER + textwrap.dedent("""
        class Actor(nn.Module):
            def __init__(self, max_action=2.0):
                super().__init__()
                self.fc = nn.Linear(4, 1)
                nn.init.orthogonal_(self.fc.weight, 0.01)
                self.max_action = max_action

            def forward(self, state):
                return self.fc(state)
    """))
    ctx = FileContext.parse(source, Settings())
    [actor] = ctx.models.models
    assert actor.node is ctx.symbols.classes["Actor"].node and actor.line == 6
    layer = actor.layers["fc"]
    assert isinstance(layer.call, ast.Call) and ctx.text_of(layer.call) == "nn.Linear(4, 1)"
    assert ctx.text_of(layer.anchor) == "self.fc = nn.Linear(4, 1)"
    [init] = layer.inits
    assert ctx.text_of(init.call) == "nn.init.orthogonal_(self.fc.weight, 0.01)"
    [(statement, path)] = actor.returns
    assert ctx.text_of(statement) == "return self.fc(state)" and [op.describe() for op in path] == ["input:state", "fc:Linear"]
    assert actor.to_dict()["layers"][0]["inits"] == ["weight: orthogonal(gain=0.01)"]


def test_scale_ops_read_as_written_with_their_parentheses() -> None:
    models = describe("""
        class Actor(nn.Module):
            def __init__(self, n=4):
                super().__init__()
                self.fc = nn.Linear(n, 1)
                self.n = n

            def forward(self, x):
                return self.fc(x) * (1 / self.n)
    """)
    assert path_of(models["Actor"])[-1] == "scale:(1 / self.n)"


def test_cyclic_parameter_defaults_are_followed_once() -> None:
    models = describe("""
        class Net(nn.Module):
            def __init__(self, a=b, b=a):
                super().__init__()
                self.fc = a
                self.out = nn.Linear(4, 2)
    """)
    assert list(models["Net"].layers) == ["out"]


def test_model_normalizes_input_reads_any_method_of_the_class() -> None:
    from gradlint.analysis.project import describe_models

    source = SourceFile("m.py", HEADER + textwrap.dedent("""
        class Agent(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(4, 32, 8, stride=4)

            @torch.no_grad()
            def get_value(self, x):
                return self.conv(x / 255.0)

        class Raw(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(4, 32, 8, stride=4)  # x / 255 in a comment of __init__ is not scaling

            def forward(self, x):
                return self.conv(x)

        class Normed(nn.Module):
            def __init__(self):
                super().__init__()
                self.norm = nn.LayerNorm(8)
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                return self.fc(self.norm(x))
    """))
    ctx = FileContext.parse(source, Settings())
    summaries = describe_models(ctx)
    assert {name: s.normalizes_input for name, s in summaries.items()} == {"Agent": True, "Raw": False, "Normed": True}
    assert summaries["Normed"].path == ["input:x", "norm:LayerNorm", "fc:Linear"]


def test_explain_model_json_with_an_unknown_parameter_shape(tmp_path) -> None:
    # a shape with an unknown dimension used to stop `--format json` with a traceback
    import json

    from click.testing import CliRunner

    from gradlint.cli import main

    path = tmp_path / "m.py"
    path.write_text(HEADER + textwrap.dedent("""
        class Cell(nn.Module):
            def __init__(self, n, m=8):
                super().__init__()
                self.W = nn.Parameter(torch.randn(n, m))

            def forward(self, h):
                return torch.tanh(h @ self.W)
    """))
    result = CliRunner().invoke(main, ["explain-model", "--format", "json", str(path)])
    assert result.exit_code == 0, result.output
    [model] = json.loads(result.output)
    assert model["layers"][0]["args"] == {"shape": [None, 8]} and model["path"][-1] == "act:tanh"
