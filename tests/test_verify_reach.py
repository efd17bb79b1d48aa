"""Building reach (issue 17, item 5): the stand-ins and readings that let `gradlint verify` build
the model a real RL script builds, each next to the look-alike where nothing honest can be said.
These build models in this process (the worker's own functions), without the sandbox."""

from __future__ import annotations

import json
import textwrap

import pytest

from gradlint.verify.loader import ParsedFile, constructor_args, model_only_source, removed_names

torch = pytest.importorskip("torch")

from gradlint.analysis.envs import env_spec  # noqa: E402
from gradlint.verify.report import _stand_in, render_text  # noqa: E402
from gradlint.verify.session import _registered_env  # noqa: E402
from gradlint.verify.worker import build, find_inputs, measure  # noqa: E402


def _build(text: str, class_name: str, env_id: str | None = None, **kwargs):
    spec = env_spec(env_id) if env_id else None
    source = model_only_source(text, spec)
    construction = constructor_args(ParsedFile.of(text), class_name, None, spec)
    request = {"file": "script.py", "module_name": f"gradlint_test_{class_name}", "class": class_name,
               "source": source, "args": construction.args,
               "kwargs": json.loads(json.dumps(construction.kwargs)), **kwargs}  # as it crosses to the worker
    return build(request), construction, request


# RL-Adventure's notebooks: the class body reads the env the removed code made
ENV_IN_CLASS_BODY = textwrap.dedent("""\
    import random
    import gym_that_is_not_installed as gym
    import torch.nn as nn

    env_id = "CartPole-v0"
    env = gym.make(env_id)

    class DQN(nn.Module):
        def __init__(self, num_inputs, num_actions):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(env.observation_space.shape[0], 128), nn.ReLU(),
                                        nn.Linear(128, env.action_space.n))

        def forward(self, x):
            return self.layers(x)

        def act(self, state, epsilon):
            return random.randrange(env.action_space.n)

    model = DQN(env.observation_space.shape[0], env.action_space.n)
""")


def test_an_env_the_removed_code_made_stands_in_with_the_registered_envs_spaces() -> None:
    file = ParsedFile.of(ENV_IN_CLASS_BODY)
    env = _registered_env(file)
    assert env is not None and env["id"] == "CartPole-v0"
    model, construction, _ = _build(ENV_IN_CLASS_BODY, "DQN", "CartPole-v0")
    assert (model.layers[0].in_features, model.layers[-1].out_features) == (4, 2)  # CartPole's sizes
    assert construction.kwargs == {"num_inputs": 4, "num_actions": 2}
    stand_in = removed_names(file, env_spec("CartPole-v0"))["env"]
    assert _stand_in(stand_in) == ("<stand-in env with CartPole-v0's spaces: Box(4,) observations, "
                                   "Discrete(2) actions>")


def test_an_env_stand_in_without_one_registered_env_is_the_labelled_synthetic_one() -> None:
    # two envs named (RL-Adventure: CartPole, then Pong): no one env's bounds describe the model
    text = ENV_IN_CLASS_BODY.replace('env_id = "CartPole-v0"', 'env_id = "CartPole-v0"\nother = "PongNoFrameskip-v4"')
    assert _registered_env(ParsedFile.of(text)) is None
    model, construction, _ = _build(text, "DQN")
    assert (model.layers[0].in_features, model.layers[-1].out_features) == (8, 4)
    assert construction.guessed == {"num_inputs": 8, "num_actions": 2}
    assert _stand_in(removed_names(ParsedFile.of(text))["env"]).startswith("<synthetic env: 8 observation features")
    # a registered env next to one gradlint has no bounds for (quantumiracle's `['Pendulum-v0',
    # 'HalfCheetah-v2'][i]`): the script can train either, so neither describes its input
    either = ENV_IN_CLASS_BODY.replace('"CartPole-v0"', "['Pendulum-v0', 'HalfCheetah-v2'][0]")
    assert _registered_env(ParsedFile.of(either)) is None


CLEANRL_QNETWORK = textwrap.dedent("""\
    from dataclasses import dataclass
    import numpy as np
    import torch.nn as nn

    @dataclass
    class Args:
        env_id: str = "{env}"

    class QNetwork(nn.Module):
        def __init__(self, env):
            super().__init__()
            self.network = nn.Sequential(
                nn.Linear(np.array(env.single_observation_space.shape).prod(), 120), nn.ReLU(),
                nn.Linear(120, env.single_action_space.n))

        def forward(self, x):
            return self.network(x)
""")


def test_a_model_built_from_the_env_gets_the_registered_envs_spaces_and_is_probed_at_its_bounds() -> None:
    text = CLEANRL_QNETWORK.format(env="Acrobot-v1")
    env = _registered_env(ParsedFile.of(text))
    model, construction, request = _build(text, "QNetwork", "Acrobot-v1", env=env, codes=["GL401"],
                                          hints={"inputs": ["x"]})
    assert (model.network[0].in_features, model.network[-1].out_features) == (6, 3)  # Acrobot: 6 features, 3 actions
    figures = measure(request)
    assert figures["input_shapes"] == [[8, 6]]
    assert figures["env"]["env"] == "Acrobot-v1" and figures["env"].get("grad_norm_at_bounds_vs_unit") is not None
    # the stand-in is named in the report, not passed off as the env
    from gradlint.verify import ModelReport

    report = ModelReport("dqn.py", "QNetwork", 8, "ok", construction={
        "source": construction.source, "args": [], "kwargs": construction.kwargs, "guessed": construction.guessed})
    assert "env=<stand-in env with Acrobot-v1's spaces: Box(6,) observations, Discrete(3) actions>" in \
        render_text([report], colour=False)


def test_a_model_built_from_an_image_env_keeps_the_synthetic_spaces() -> None:
    # Atari frames: the wrappers decide the shape the model sees; nothing to read off the id
    text = CLEANRL_QNETWORK.format(env="ALE/Breakout-v5")
    construction = constructor_args(ParsedFile.of(text), "QNetwork", None, env_spec("ALE/Breakout-v5"))
    assert construction.kwargs["env"] == {"__gradlint_synthetic__": "env"}


BY571_ACTOR = textwrap.dedent("""\
    import torch
    import torch.nn as nn

    class Actor(nn.Module):
        def __init__(self, state_size, action_size, seed, device, hidden_size=32, init_w=3e-3):
            super().__init__()
            self.seed = torch.manual_seed(seed)
            self.device = device
            self.fc1 = nn.Linear(state_size, hidden_size)
            self.mu = nn.Linear(hidden_size, action_size)

        def forward(self, state):
            return torch.tanh(self.mu(torch.relu(self.fc1(state))))

    actor = Actor(state_size, action_size, random_seed, device, hidden_size=256)
""")


def test_a_seed_and_a_device_parameter_get_honest_values_and_call_site_constants_are_kept() -> None:
    model, construction, _ = _build(BY571_ACTOR, "Actor")
    # the script's own hidden size (a constant at its call), not the constructor's default 32
    assert construction.source == "call site" and construction.kwargs["hidden_size"] == 256
    assert construction.guessed == {"state_size": 8, "action_size": 2, "seed": 0, "device": "cpu"}
    assert model.fc1.out_features == 256 and model.device == "cpu"
    # a parameter nothing resolves is still missing, not invented
    mystery = BY571_ACTOR.replace("seed, device,", "seed, device, mystery,")
    assert constructor_args(ParsedFile.of(mystery), "Actor").missing == ["mystery"]


def test_a_class_deriving_from_a_missing_module_is_defined_and_fails_only_when_built() -> None:
    # MrSyee's notebooks define `class ActionNormalizer(gym.ActionWrapper)` next to the model
    text = textwrap.dedent("""\
        import gym_that_is_not_installed as gym
        import torch.nn as nn

        class ActionNormalizer(gym.ActionWrapper):
            def action(self, action):
                return action

        class Critic(nn.Module):
            def __init__(self, in_dim=3):
                super().__init__()
                self.out = nn.Linear(in_dim, 1)

            def forward(self, x):
                return self.out(x)
    """)
    namespace: dict = {}
    exec(compile(model_only_source(text), "a2c.py", "exec"), namespace)
    assert namespace["Critic"]().out.in_features == 3
    with pytest.raises(ImportError, match="gym.ActionWrapper is not available here"):
        namespace["ActionNormalizer"]()


def test_a_policy_returning_a_distribution_is_measured_through_its_parameters() -> None:
    text = textwrap.dedent("""\
        import torch
        import torch.nn as nn
        from torch.distributions import Normal

        class Actor(nn.Module):
            def __init__(self, in_dim=3, out_dim=1):
                super().__init__()
                self.hidden = nn.Linear(in_dim, 128)
                self.mu = nn.Linear(128, out_dim)
                self.log_std = nn.Linear(128, out_dim)

            def forward(self, state):
                x = torch.relu(self.hidden(state))
                dist = Normal(torch.tanh(self.mu(x)), self.log_std(x).exp())
                return dist.sample(), dist
    """)
    figures = measure({"file": "a2c.py", "module_name": "gradlint_test_dist", "class": "Actor",
                       "source": model_only_source(text), "codes": ["GL201"], "hints": {"inputs": ["state"]}})
    grads = {layer["name"]: layer["grad_norm"] for layer in figures["layers"]}
    assert grads["hidden"] > 0 and grads["mu"] > 0 and grads["log_std"] > 0  # both heads reached
    # a model whose output carries no gradient at all is still an error, not a verdict
    frozen = text.replace("return dist.sample(), dist", "return dist.sample()")
    with pytest.raises(ValueError, match="no differentiable tensor"):
        measure({"file": "a2c.py", "module_name": "gradlint_test_frozen", "class": "Actor",
                 "source": model_only_source(frozen), "codes": ["GL201"], "hints": {"inputs": ["state"]}})


def test_find_inputs_reads_the_env_stand_in_sizes() -> None:
    model, _, request = _build(ENV_IN_CLASS_BODY, "DQN", "CartPole-v0", hints={"inputs": ["x"]})
    [x] = find_inputs(model, request)
    assert x.shape == (8, 4)


GAIL = textwrap.dedent("""\
    import numpy as np
    import torch
    import torch.nn as nn
    import gym_that_is_not_installed as gym

    env = gym.make("Pendulum-v0")
    num_inputs = env.observation_space.shape[0]
    num_outputs = env.action_space.shape[0]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    try:
        expert_traj = np.load("expert_traj.npy")
    except:
        assert False

    class Discriminator(nn.Module):
        def __init__(self, num_inputs, hidden_size):
            super().__init__()
            self.linear1 = nn.Linear(num_inputs, hidden_size)
            self.linear2 = nn.Linear(hidden_size, 1)

        def forward(self, x):
            return torch.sigmoid(self.linear2(torch.tanh(self.linear1(x.to(device)))))

    discriminator = Discriminator(num_inputs + num_outputs, 128)
""")


def test_sizes_the_script_reads_off_its_env_resolve_its_call_site() -> None:
    # RL-Adventure-2's GAIL notebook: a discriminator of (state, action) pairs
    model, construction, _ = _build(GAIL, "Discriminator", "Pendulum-v0")
    assert (construction.source, construction.args, construction.kwargs) == ("call site", [4, 128], {})
    assert construction.env_sizes == {"num_inputs": 3, "num_outputs": 1} and not construction.guessed
    assert model.linear1.in_features == 4
    # the removed device is verify's own; a top-level `try: data = np.load(...)` is work, not kept
    source = model_only_source(GAIL, env_spec("Pendulum-v0"))
    assert "np.load" not in source and "device = 'cpu'" in source
    # without a registered env nothing is read off it: the sizes are guesses, and say so
    unknown = constructor_args(ParsedFile.of(GAIL.replace("Pendulum-v0", "MyRobot-v0")), "Discriminator")
    assert unknown.guessed == {"num_inputs": 8} and unknown.env_sizes == {}
    # a name bound to a size and to something else is not a size of the env
    twice = GAIL.replace("discriminator =", "num_inputs = compute()\ndiscriminator =")
    assert "num_inputs" not in constructor_args(ParsedFile.of(twice), "Discriminator", None,
                                                env_spec("Pendulum-v0")).env_sizes


def test_a_recurrent_policy_taking_a_hidden_state_is_run_on_sequences() -> None:
    # quantumiracle's DPG_PolicyNetworkLSTM2: cat(state, last_action) -> Linear -> LSTM(hidden_in)
    text = textwrap.dedent("""\
        import torch
        import torch.nn as nn

        class Policy(nn.Module):
            def __init__(self, state_space, action_space, hidden_dim=32):
                super().__init__()
                self.linear1 = nn.Linear(state_space.shape[0] + action_space.shape[0], hidden_dim)
                self.lstm1 = nn.LSTM(hidden_dim, hidden_dim)
                self.linear2 = nn.Linear(hidden_dim, action_space.shape[0])

            def forward(self, state, last_action, hidden_in):
                x = torch.cat([state.permute(1, 0, 2), last_action.permute(1, 0, 2)], -1)
                x, hidden = self.lstm1(torch.relu(self.linear1(x)), hidden_in)
                return torch.tanh(self.linear2(x)).permute(1, 0, 2), hidden
    """)
    model, _, request = _build(text, "Policy", "Pendulum-v0", hints={"inputs": ["state", "last_action", "hidden_in"]})
    state, last_action, (h, c) = find_inputs(model, request)
    assert (state.shape, last_action.shape, h.shape) == ((8, 16, 3), (8, 16, 1), (1, 8, 32))
    # minimalRL's PPO: no forward; `pi(x, hidden)` with a batch of one sequence
    ppo = textwrap.dedent("""\
        import torch
        import torch.nn as nn

        class PPO(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(4, 64)
                self.lstm = nn.LSTM(64, 32)
                self.fc_pi = nn.Linear(32, 2)

            def pi(self, x, hidden):
                x = torch.relu(self.fc1(x)).view(-1, 1, 64)
                x, lstm_hidden = self.lstm(x, hidden)
                return torch.softmax(self.fc_pi(x), dim=2), lstm_hidden
    """)
    figures = measure({"file": "ppo.py", "module_name": "gradlint_test_ppo_lstm", "class": "PPO",
                       "source": model_only_source(ppo), "codes": ["GL201"], "hints": {"inputs": ["x"]}})
    assert figures["forward"] == "pi" and figures["input_shapes"][0] == [8, 4]


def test_a_model_class_from_a_star_import_of_the_project_is_found_in_its_module(tmp_path) -> None:
    from gradlint.config import Settings
    from gradlint.verify.session import _analysis_facts

    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "__init__.py").write_text("")
    (tmp_path / "common" / "policy_networks.py").write_text(textwrap.dedent("""\
        import torch.nn as nn

        class Policy(nn.Module):
            def __init__(self, state_dim):
                super().__init__()
                self.fc = nn.Linear(state_dim, 2)

        class Helper:
            pass
    """))
    (tmp_path / "train.py").write_text("from common.policy_networks import *\nfrom os.path import *\n"
                                       "policy = Policy(3)\n")
    _, _, lookup = _analysis_facts(str(tmp_path / "train.py"), Settings(root=str(tmp_path)))
    assert lookup("Policy") == str(tmp_path / "common" / "policy_networks.py")
    assert lookup("Helper") is None and lookup("Missing") is None  # not a model; defined nowhere


def test_a_notebook_section_is_probed_with_the_env_its_model_is_built_under() -> None:
    # RL-Adventure: a CartPole DQN section, then a Pong CnnDQN section, in one notebook
    text = textwrap.dedent("""\
        import torch
        import torch.autograd as autograd
        import torch.nn as nn

        USE_CUDA = torch.cuda.is_available()
        Variable = lambda *args, **kwargs: autograd.Variable(*args, **kwargs).cuda() if USE_CUDA else autograd.Variable(*args, **kwargs)

        env_id = "CartPole-v0"
        env = gym.make(env_id)

        class DQN(nn.Module):
            def __init__(self, num_inputs, num_actions):
                super().__init__()
                self.fc = nn.Linear(num_inputs, num_actions)

            def forward(self, x):
                return self.fc(Variable(x))

        model = DQN(env.observation_space.shape[0], env.action_space.n)

        env_id = "PongNoFrameskip-v4"
        env = make_atari(env_id)

        class CnnDQN(nn.Module):
            def __init__(self, input_shape, num_actions):
                super().__init__()
                self.conv = nn.Conv2d(input_shape[0], 32, 8, 4)

        model = CnnDQN(env.observation_space.shape, env.action_space.n)

        class Unbuilt(nn.Module):
            pass
    """)
    file = ParsedFile.of(text)
    assert _registered_env(file) is None  # the file as a whole names two envs
    assert _registered_env(file, "DQN")["id"] == "CartPole-v0"
    assert _registered_env(file, "CnnDQN")["id"] == "PongNoFrameskip-v4"
    assert _registered_env(file, "Unbuilt") is None  # never built at top level: no section to read
    # the lambda is a definition and stays; USE_CUDA is whether verify measures on a GPU
    source = model_only_source(file, env_spec("CartPole-v0"), removed_names(file, env_spec("CartPole-v0")))
    assert "Variable = lambda" in source and "USE_CUDA = False" in source
    namespace: dict = {}
    exec(compile(source, "1.dqn.ipynb", "exec"), namespace)
    assert namespace["DQN"](4, 2)(torch.randn(3, 4)).shape == (3, 2)
    # a statement naming two envs before the construction decides nothing
    either = text.replace('env_id = "CartPole-v0"', 'env_id = ["CartPole-v0", "Acrobot-v1"][0]')
    assert _registered_env(ParsedFile.of(either), "DQN") is None


def test_no_section_env_is_read_where_the_order_of_the_code_does_not_say_it() -> None:
    base = textwrap.dedent("""\
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, n=4):
                super().__init__()
                self.fc = nn.Linear(n, 2)

        {before}
        {build}
    """)
    cases = {  # (statements before the construction, the construction): an env only for the first
        ('env = gym.make("CartPole-v1")\nother = "Acrobot-v1"\nenv = gym.make("Pendulum-v1")', "net = Net()"): "Pendulum-v1",
        ('env = gym.make("CartPole-v1")\nif fast:\n    env = gym.make("Acrobot-v1")', "net = Net()"): None,
        ('env = gym.make("CartPole-v1")\nx = "Acrobot-v1"', 'if __name__ == "__main__":\n    net = Net()'): None,
        ('def make(env_id="Acrobot-v1"):\n    return gym.make(env_id)\nenv_id = "CartPole-v1"', "net = Net()"): None,
    }
    for (before, build), expected in cases.items():
        text = base.format(before=before, build=build)
        env = _registered_env(ParsedFile.of(text), "Net")
        assert (env["id"] if env else None) == expected, text
