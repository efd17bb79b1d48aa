"""The model rules on the shapes the truth benchmark exposed (issue 16): tensors that are no
layer's weight (class 1), critics (class 2), GL201's severity against its own estimate (class 3),
deep stacks built the common ways (class 8), and inits applied from outside a model. Each has
code that must be flagged and close look-alikes that must not."""

from __future__ import annotations

import textwrap

import pytest

from gradlint.analysis.values import UNKNOWN
from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.source import SourceFile
from tests.conftest import fix, lint

HEADER = ("import math\nimport numpy as np\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
          "from torch import einsum\n")


def run(code: str, select: str = "GL201,GL202,GL203,GL204,GL301,GL302"):
    return lint(HEADER + textwrap.dedent(code), select=select)


def found(code: str, select: str = "GL201,GL202,GL203,GL204,GL301") -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in run(code, select)]


def marked(code: str) -> list[int]:
    return [i + 1 for i, line in enumerate((HEADER + textwrap.dedent(code)).splitlines()) if "# <-" in line]


def describe(code: str) -> dict:
    source = SourceFile("m.py", HEADER + textwrap.dedent(code))
    ctx = FileContext.parse(source, Settings())
    return {m.name: m for m in ctx.models.models if m.kind == "module"}


# --- class 1: only a layer's weight is judged --------------------------------------------------

VIT = """
    class ViT(nn.Module):
        def __init__(self, num_patches=256, dim=512, classes=10, registers=4, memories=8):
            super().__init__()
            self.to_patch = nn.Linear(48, dim)
            self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
            self.pos_2d = nn.Parameter(torch.randn(num_patches, dim))
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
            self.register_tokens = nn.Parameter(torch.randn(registers, dim))
            self.memory = nn.Parameter(torch.randn(memories, dim))
            self.mask_token = nn.Parameter(torch.randn(dim))
            self.head = nn.Linear(dim, classes)

        def forward(self, patches, mask):
            x = self.to_patch(patches)
            x[mask] = self.mask_token
            b = x.shape[0]
            x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
            x += self.pos_embedding
            x = x + self.pos_2d
            x = torch.cat((self.register_tokens.expand(b, -1, -1), self.memory.expand(b, -1, -1), x), dim=1)
            return self.head(x[:, 0])
"""


def test_tokens_and_positional_embeddings_are_not_weights() -> None:
    assert found(VIT) == []
    vit = describe(VIT)["ViT"]
    # a (num_patches, dim) embedding has no fan-in: the sequence length is never one
    assert vit.layers["pos_2d"].fan_in is UNKNOWN and vit.layers["pos_2d"].role is None


@pytest.mark.parametrize("use, fan_in", [
    ("x @ self.W", 256),
    ("torch.matmul(x, self.W)", 256),
    ("x.mm(self.W)", 256),
    ("F.linear(x, self.W.t())", 256),
    ("einsum('b n, n m -> b m', x, self.W)", 256),
])
def test_a_parameter_used_as_a_weight_is_judged_with_the_fan_in_of_its_use(use: str, fan_in: int) -> None:
    code = f"""
        class Raw(nn.Module):
            def __init__(self, n=256, m=64):
                super().__init__()
                self.W = nn.Parameter(torch.randn(n, m))  # <-

            def forward(self, x):
                return torch.relu({use})
    """
    [diagnostic] = run(code, "GL301")
    assert diagnostic.line == marked(code)[0]
    assert f"(fan_in {fan_in})" in diagnostic.message and diagnostic.severity.value == "warning"


def test_a_recurrent_matrix_against_a_hidden_state_is_a_weight() -> None:
    code = """
        class Elman(nn.Module):
            def __init__(self, n=64):
                super().__init__()
                self.W_hh = nn.Parameter(torch.randn(n, n))  # <-

            def forward(self, xs):
                h = torch.zeros(xs.shape[1], 64)
                for x in xs:
                    h = torch.tanh(h @ self.W_hh + x)
                return h
    """
    assert found(code) == [("GL301", n) for n in marked(code)]


def test_a_matrix_followed_by_layernorm_is_normalised() -> None:
    code = """
        from einops.layers.torch import Rearrange

        class ReAttention(nn.Module):
            def __init__(self, heads=8):
                super().__init__()
                self.reattn_weights = nn.Parameter(torch.randn(heads, heads))
                self.reattn_norm = nn.Sequential(Rearrange('b h i j -> b i j h'), nn.LayerNorm(heads),
                                                 Rearrange('b i j h -> b h i j'))
                self.fc = nn.Linear(256, 256)
                nn.init.normal_(self.fc.weight, std=1.0)
                self.norm = nn.LayerNorm(256)

            def forward(self, attn, x):
                attn = einsum('b h i j, h g -> b g i j', attn, self.reattn_weights)
                attn = self.reattn_norm(attn)
                return attn, self.norm(self.fc(x))
    """
    assert found(code) == []


def test_talking_heads_next_to_a_softmax_are_info() -> None:
    code = """
        class TalkingHeads(nn.Module):
            def __init__(self, heads=8):
                super().__init__()
                self.pre = nn.Parameter(torch.randn(heads, heads))  # <-
                self.post = nn.Parameter(torch.randn(heads, heads))  # <-
                self.attend = nn.Softmax(dim=-1)

            def forward(self, dots, v):
                dots = einsum('b h i j, h g -> b g i j', dots, self.pre)
                attn = self.attend(dots)
                attn = einsum('b h i j, h g -> b g i j', attn, self.post)
                return einsum('b h i j, b h j d -> b h i d', attn, v)
    """
    findings = run(code, "GL301")
    assert [d.line for d in findings] == marked(code)
    assert all(d.severity.value == "info" and "(fan_in 8)" in d.message and "softmax" in d.message for d in findings)


def test_learned_queries_scaled_by_their_fan_in_are_fine_whatever_the_width() -> None:
    code = """
        class PatchMerger(nn.Module):
            def __init__(self, dim, num_tokens_out):
                super().__init__()
                self.scale = dim ** -0.5
                self.norm = nn.LayerNorm(dim)
                self.queries = nn.Parameter(torch.randn(num_tokens_out, dim))

            def forward(self, x):
                x = self.norm(x)
                sim = torch.matmul(self.queries, x.transpose(-1, -2)) * self.scale
                return torch.matmul(sim.softmax(dim=-1), x)
    """
    assert found(code) == []
    # without the scale, the same queries are large for any width
    assert [c for c, _ in found(code.replace(" * self.scale", ""))] == ["GL301"]


NOISY = """
    class NoisyLinear(nn.Module):
        def __init__(self, in_features=256, out_features=256, std_init={std_init}):
            super().__init__()
            self.in_features = in_features
            self.std_init = std_init
            self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
            self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
            self.register_buffer("weight_epsilon", torch.empty(out_features, in_features))
            self.bias_mu = nn.Parameter(torch.empty(out_features))
            self.reset_parameters()
            self.reset_noise()

        def reset_parameters(self):
            mu_range = 1 / math.sqrt(self.in_features)
            self.weight_mu.data.uniform_(-mu_range, mu_range)
            self.weight_sigma.data.fill_(self.std_init / math.sqrt(self.in_features))  # <-

        def reset_noise(self):
            self.weight_epsilon.normal_()

        def forward(self, x):
            if self.training:
                return F.linear(x, self.weight_mu + self.weight_sigma * self.weight_epsilon, self.bias_mu)
            return F.linear(x, self.weight_mu, self.bias_mu)
"""


def test_noisynet_is_rated_as_mu_plus_sigma_eps_and_its_noise_is_never_a_weight() -> None:
    assert found(NOISY.format(std_init=0.5)) == []
    noisy = describe(NOISY.format(std_init=0.5))["NoisyLinear"]
    [weight] = noisy.derived
    # c = 1/2 * 256 * (1/(3*256) + (0.5/16)^2 * 1) = 0.29: mu's uniform range plus unit-variance noise
    assert weight.name == "weight_mu + weight_sigma * weight_epsilon"
    assert weight.gain() == pytest.approx(0.5 * (1 / 3 + 0.25))
    assert noisy.buffers["weight_epsilon"].noise


def test_noisynet_with_a_huge_noise_scale_is_reported_without_a_fix() -> None:
    code = NOISY.format(std_init=16.0)  # sigma = 1 over 256 inputs
    [diagnostic] = run(code, "GL301")
    assert diagnostic.line == marked(code)[0] and "weight_mu + weight_sigma * weight_epsilon" in diagnostic.message
    assert diagnostic.fix is None  # changing the noise would change the exploration
    fixed, _ = fix(HEADER + textwrap.dedent(code), select="GL301", unsafe=True)
    assert "normal_()" in fixed and "kaiming" not in fixed


def test_a_noise_draw_in_a_free_function_is_never_a_weight_init() -> None:
    assert found("""
        def reset_noise(layer):
            layer.weight_epsilon.normal_()
            layer.eps_out.normal_(0, 1)
            nn.init.normal_(layer.noise, std=1.0)
    """) == []


def test_an_unresolved_value_keeps_the_rule_silent() -> None:
    assert found("""
        class Net(nn.Module):
            def __init__(self, n, value):
                super().__init__()
                self.fc = nn.Linear(n, n)
                nn.init.constant_(self.fc.weight, value)
                self.fc.weight.data.fill_(value)

            def forward(self, x):
                return self.fc(x)
    """) == []


HIDDEN_INIT = """
    def hidden_init(layer):
        fan_in = layer.weight.data.size()[0]
        lim = 1. / np.sqrt(fan_in)
        return (-lim, lim)

    class Critic(nn.Module):
        def __init__(self, state_size, action_size, hidden_size=256):
            super().__init__()
            self.fc1 = nn.Linear(state_size + action_size, hidden_size)
            self.fc2 = nn.Linear(hidden_size, hidden_size)
            self.fc3 = nn.Linear(hidden_size, 1)
            self.fc2.weight.data.uniform_(*hidden_init(self.fc2))
            self.fc3.weight.data.uniform_(*unknown_helper(self.fc3))

        def forward(self, state, action):
            x = F.relu(self.fc1(torch.cat((state, action), dim=1)))
            return self.fc3(F.relu(self.fc2(x)))
"""


def test_hidden_init_helpers_are_resolved_or_left_unknown_never_uniform_0_1() -> None:
    assert found(HIDDEN_INIT) == []
    critic = describe(HIDDEN_INIT)["Critic"]
    fc2, fc3 = critic.layers["fc2"], critic.layers["fc3"]
    assert fc2.inits[-1].params == {"a": pytest.approx(-1 / 16), "b": pytest.approx(1 / 16)}
    assert fc2.gain() == pytest.approx(1 / 6)
    assert fc3.inits[-1].params == {"a": UNKNOWN, "b": UNKNOWN} and fc3.gain() is UNKNOWN


def test_init_call_in_a_class_defined_in_a_function_names_the_class_and_fixes_the_tensor() -> None:
    code = """
        def build():
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(256, 256)
                    nn.init.normal_(self.fc.weight, std=1.0)  # <-

                def forward(self, x):
                    return F.relu(self.fc(x))
            return Net()
    """
    [diagnostic] = run(code, "GL301")
    assert diagnostic.line == marked(code)[0] and "on Net.fc:" in diagnostic.message and " in build" not in diagnostic.message
    fixed, _ = fix(HEADER + textwrap.dedent(code), select="GL301", unsafe=True)
    assert 'nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")' in fixed


def test_the_fix_of_an_init_function_whose_module_is_a_parameter_targets_the_tensor() -> None:
    code = """
        import torch

        def _(nn):
            def weights_init(m):
                nn.init.normal_(m.weight, 0.0, 1.0)
            return weights_init
    """
    fixed, _ = fix(textwrap.dedent(code), select="GL301", unsafe=True)
    assert "kaiming_normal_(m.weight" in fixed and "(nn.init" not in fixed


# --- class 2: critics are not actors --------------------------------------------------------------

def test_gl204_never_fires_on_a_critic_that_scales_its_action_input() -> None:
    code = """
        class Critic(nn.Module):
            def __init__(self, state_dim=17, action_dim=6, max_action=1.0):
                super().__init__()
                self.max_action = max_action
                self.l1 = nn.Linear(state_dim + action_dim, 256)
                self.l2 = nn.Linear(256, 1)

            def forward(self, state, action):
                sa = torch.cat([state, action / self.max_action], 1)
                return self.l2(F.relu(self.l1(sa)))

        class QNetwork(nn.Module):
            def __init__(self, obs=8, act=2, max_action=2.0):
                super().__init__()
                self.max_action = max_action
                self.fc = nn.Linear(obs + act, 64)
                self.q = nn.Linear(64, 1)

            def forward(self, obs, act):
                return self.q(F.relu(self.fc(torch.cat([obs, act * self.max_action], -1))))

        class Actor(nn.Module):
            def __init__(self, state_dim=17, goal_dim=3, action_dim=6, max_action=1.0):
                super().__init__()
                self.max_action = max_action
                self.l1 = nn.Linear(state_dim + goal_dim, 256)
                self.l2 = nn.Linear(256, action_dim)

            def forward(self, state, goal):
                return self.l2(F.relu(self.l1(torch.cat([state, goal], 1))))  # <-
    """
    assert found(code, "GL204") == [("GL204", n) for n in marked(code)]


# --- class 3: GL201's severity follows its estimate ----------------------------------------------

RND = """
    class Predictor(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 8, 4), nn.LeakyReLU(),
                nn.Conv2d(32, 64, 4, 2), nn.LeakyReLU(),
                nn.Conv2d(64, 64, 3, 1), nn.LeakyReLU(),
                nn.Flatten(),
                nn.Linear(3136, 512), nn.ReLU(),
                nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 512),
            )
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.orthogonal_(m.weight, {gain})

        def forward(self, x):
            return self.net(x)
"""


@pytest.mark.parametrize("gain, severity, words", [
    ("np.sqrt(2)", "info", "gradient variance stays about constant at initialisation"),
    ("1.2 * np.sqrt(2)", "warning", "gradient variance grows about 8.92x across the stack"),
    ("2.0", "error", "gradient variance grows about 64x across the stack"),
])
def test_gl201_severity_follows_the_estimated_growth(gain: str, severity: str, words: str) -> None:
    [diagnostic] = run(RND.format(gain=gain), "GL201")
    assert diagnostic.severity.value == severity and words in diagnostic.message
    assert "grows about 1x" not in diagnostic.message


def test_gl201_with_an_unknown_init_stays_a_warning() -> None:
    [diagnostic] = run(RND.format(gain="self.gain"), "GL201")
    assert diagnostic.severity.value == "warning" and "the init scale of some layers is unknown" in diagnostic.message


# --- class 8: deep stacks built the common ways ----------------------------------------------------

BUILDS = [
    # the loop's local initialised before it is appended, `layers, d = [], n_in`
    """
    layers, d = [], n_in
    for _ in range(depth):
        lin = nn.Linear(d, h)
        nn.init.normal_(lin.weight, std=1.0)  # <-
        layers += [lin, nn.ReLU()]
        d = h
    self.net = nn.Sequential(*layers)
    """,
    # a flattening comprehension, initialised by a loop over the container's parameters
    """
    self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(h, h), nn.ReLU())])
    for p in self.net.parameters():
        if p.dim() == 2:
            nn.init.normal_(p, std=1.0)  # <-
    """,
    # named parameters, biases in the `else`
    """
    self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(h, h), nn.ReLU())])
    for name, p in self.named_parameters():
        if "weight" in name:
            nn.init.normal_(p, std=1.0)  # <-
        else:
            nn.init.zeros_(p)
    """,
    # a ModuleList appended to in a loop, initialised by a loop over it
    """
    self.net = nn.ModuleList()
    for _ in range(depth):
        self.net.append(nn.Linear(h, h))
        self.net.append(nn.ReLU())
    for layer in self.net:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=1.0)  # <-
    """,
]


def deep_model(build: str) -> str:
    return (
        "class Deep(nn.Module):  # <-\n"
        "    def __init__(self, n_in=256, h=256, depth=8):\n"
        "        super().__init__()\n"
        + textwrap.indent(textwrap.dedent(build).strip("\n"), " " * 8) + "\n\n"
        "    def forward(self, x):\n"
        "        for layer in self.net:\n"
        "            x = layer(x)\n"
        "        return x\n"
    )


@pytest.mark.parametrize("build", BUILDS)
def test_a_truly_exploding_deep_stack_is_flagged_however_it_is_built(build: str) -> None:
    code = deep_model(build)
    findings = run(code, "GL201,GL301")
    assert [(d.code, d.line) for d in findings] == [("GL201", marked(code)[0]), ("GL301", marked(code)[1])]
    deep, large = findings
    assert deep.severity.value == "error" and "8 weight layers" in deep.message and "c = 128 per layer" in deep.message
    assert "c = 1/2 * fan_in * E[w^2] = 128 (fan_in 256)" in large.message


@pytest.mark.parametrize("build", BUILDS)
def test_the_same_stacks_with_he_init_are_no_error_and_no_large_init(build: str) -> None:
    code = deep_model(build.replace("nn.init.normal_(lin.weight, std=1.0)", "nn.init.kaiming_normal_(lin.weight)")
                      .replace("nn.init.normal_(p, std=1.0)", "nn.init.kaiming_normal_(p)")
                      .replace("nn.init.normal_(layer.weight, std=1.0)", "nn.init.kaiming_normal_(layer.weight)"))
    [deep] = run(code, "GL201,GL301")
    assert deep.code == "GL201" and deep.severity.value == "info" and "stays about constant" in deep.message


def test_a_parameter_loop_reaches_only_its_container() -> None:
    models = describe("""
        class Two(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
                self.head = nn.Linear(64, 1)
                for p in self.body.parameters():
                    if p.dim() > 1:
                        nn.init.normal_(p, std=1.0)

            def forward(self, x):
                return self.head(self.body(x))
    """)
    two = models["Two"]
    assert two.layers["body"].children[0].gain() == pytest.approx(32.0)
    assert two.layers["head"].gain() == pytest.approx(1 / 6)


def test_small_output_inits_through_helpers_are_resolved() -> None:
    code = """
        def init_layer_uniform(layer, init_w=3e-3):
            layer.weight.data.uniform_(-init_w, init_w)
            layer.bias.data.uniform_(-init_w, init_w)
            return layer

        def initialize_uniformly(layer, init_w=3e-3):
            layer.weight.data.uniform_(-init_w, init_w)

        class Critic(nn.Module):
            def __init__(self, in_dim=3):
                super().__init__()
                self.hidden = nn.Linear(in_dim, 64)
                self.out = nn.Linear(64, 1)
                self.out = init_layer_uniform(self.out)

            def forward(self, state):
                return self.out(F.relu(self.hidden(state)))

        class Actor(nn.Module):
            def __init__(self, in_dim=3, out_dim=1):
                super().__init__()
                self.hidden1 = nn.Linear(in_dim, 128)
                self.mu_layer = nn.Linear(128, out_dim)
                initialize_uniformly(self.mu_layer)

            def forward(self, state):
                return torch.tanh(self.mu_layer(F.relu(self.hidden1(state))))

        critic, actor = Critic(), Actor()
        opt = torch.optim.Adam([*critic.parameters(), *actor.parameters()])
        (critic(torch.zeros(1, 3)).sum() + actor(torch.zeros(1, 3)).sum()).backward()
        opt.step()
    """
    assert found(code, "GL302") == []
    # the same models without the helpers' small init: both heads reported (unclipped step)
    bare = code.replace("        self.out = init_layer_uniform(self.out)\n", "").replace(
        "        initialize_uniformly(self.mu_layer)\n", "")
    assert [c for c, _ in found(bare, "GL302")] == ["GL302", "GL302"]


def test_a_large_init_through_a_helper_is_judged_with_the_layers_width() -> None:
    code = """
        def init_weights(layer, std):
            nn.init.normal_(layer.weight, std=std)  # <-

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(256, 256)
                self.small = nn.Linear(256, 256)
                init_weights(self.fc, 1.0)

            def forward(self, x):
                return self.small(F.relu(self.fc(x)))
    """
    [diagnostic] = run(code, "GL301")
    assert diagnostic.line == marked(code)[0] and "on Net.fc: c = 1/2 * fan_in * E[w^2] = 128" in diagnostic.message


# --- inits applied from outside a model, and constructor arguments ---------------------------------

NET = """
    class Net(nn.Module):
        def __init__(self, hidden_1=256, constant_weight=None):
            super().__init__()
            self.fc1 = nn.Linear(28 * 28, hidden_1)
            self.fc2 = nn.Linear(hidden_1, 10)
            if constant_weight is not None:
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.constant_(m.weight, constant_weight)  # <-

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x.view(-1, 784))))
"""


def test_model_apply_from_module_code_is_judged_per_model() -> None:
    code = NET.replace("  # <-", "") + """
    def weights_init_uniform(m):
        classname = m.__class__.__name__
        if classname.find('Linear') != -1:
            m.weight.data.uniform_(0.0, 1.0)  # <-
            m.bias.data.fill_(0)

    def weights_init_rule(m):
        classname = m.__class__.__name__
        if classname.find('Linear') != -1:
            n = m.in_features
            y = 1.0 / np.sqrt(n)
            m.weight.data.uniform_(-y, y)

    model_uniform = Net()
    model_uniform.apply(weights_init_uniform)
    model_rule = Net().to("cpu")
    model_rule.apply(weights_init_rule)
    """
    [diagnostic] = run(code, "GL301")
    assert diagnostic.line == marked(code)[0]
    # E[w^2] of U(0, 1) is 1/3: c = 1/2 * 784 / 3
    assert "on Net.fc1, Net.fc2: c = 1/2 * fan_in * E[w^2] = 131 (fan_in 784)" in diagnostic.message


def test_a_constant_from_a_constructor_argument_says_where_its_value_comes_from() -> None:
    code = textwrap.dedent(NET) + "\nmodel_0 = Net(constant_weight=0)\nmodel_1 = Net(constant_weight=1)\nplain = Net()\n"
    [diagnostic] = run(code, "GL301")
    assert diagnostic.line == marked(code)[0]
    assert "constant(val=constant_weight)" in diagnostic.message
    assert "`constant_weight` is 0 and 1 where the model is built in this file" in diagnostic.message
    assert "None" not in diagnostic.message
    # zero only, or never built with a value: nothing known to report
    assert found(textwrap.dedent(NET) + "\nmodel_0 = Net(constant_weight=0)\n") == []
    assert found(textwrap.dedent(NET) + "\nmodel = Net()\n") == []
