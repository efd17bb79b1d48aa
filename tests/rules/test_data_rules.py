"""GL401-GL403: data followed from its source to a model, on flagged code and look-alikes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_source
from gradlint.source import read_source
from tests.conftest import lint

HEADER = textwrap.dedent("""\
    import numpy as np
    import pandas as pd
    import torch
    import torch.nn as nn
    import gymnasium as gym


    class Policy(nn.Module):
        def __init__(self, obs_dim=3, act_dim=1):
            super().__init__()
            self.fc = nn.Linear(obs_dim, act_dim)

        def forward(self, x):
            return self.fc(x)


""")


def found(code: str, select: str = "GL4") -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in lint(HEADER + textwrap.dedent(code), select=select)]


def marked(code: str) -> list[int]:
    return [i + 1 for i, line in enumerate((HEADER + textwrap.dedent(code)).splitlines()) if "# <-" in line]


RAW_LOOP = """
    env = gym.make("Pendulum-v1")
    policy = Policy()
    obs, _ = env.reset(seed=0)
    for t in range(1000):
        action = policy(torch.as_tensor(obs, dtype=torch.float32))  # <-
        obs, reward, terminated, truncated, _ = env.step(action.detach().numpy())
"""


def test_gl401_raw_env_observations_reach_the_model() -> None:
    [diagnostic] = lint(HEADER + textwrap.dedent(RAW_LOOP), select="GL401")
    assert diagnostic.line == marked(RAW_LOOP)[0]
    assert "raw observations of Pendulum (angular velocity up to 8 next to a cosine and a sine in [-1, 1]) " \
           "from `env.reset(...)` (line 20) reach `policy`" in diagnostic.message


@pytest.mark.parametrize("change", [
    ('env = gym.make("Pendulum-v1")', 'env = gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1"))'),
    ('env = gym.make("Pendulum-v1")', 'env = gym.make("Pendulum-v1"); env = gym.wrappers.NormalizeObservation(env)'),
    ("torch.as_tensor(obs, dtype=torch.float32)", "torch.as_tensor((obs - obs_mean) / (obs_std + 1e-8))"),
    ("torch.as_tensor(obs, dtype=torch.float32)", "torch.as_tensor(obs_rms.normalize(obs))"),
    ("torch.as_tensor(obs, dtype=torch.float32)", "torch.as_tensor(normalizer(obs))"),
    ("policy = Policy()", "policy = LNPolicy()"),
])
def test_gl401_normalized_look_alikes(change: tuple[str, str]) -> None:
    extra = """
    class LNPolicy(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(3)
            self.fc = nn.Linear(3, 1)

        def forward(self, x):
            return self.fc(self.norm(x))
    """
    code = extra + RAW_LOOP.replace(*change)
    assert found(code) == []


@pytest.mark.parametrize("change", [
    ("obs, _ = env.reset(seed=0)", "obs = env.reset(seed=0)[0]"),
    ("obs, _ = env.reset(seed=0)", "obs = np.array(env.reset(seed=0)[0])"),
    ("obs, _ = env.reset(seed=0)", 'obs = torch.Tensor(env.reset(seed=0)[0]).to("cpu")'),
    ("policy(torch.as_tensor(obs, dtype=torch.float32))", "policy(Variable(torch.as_tensor(obs)))"),
])
def test_gl401_env_results_wrapped_or_indexed_are_followed(change: tuple[str, str]) -> None:
    code = "\n    from torch.autograd import Variable" + RAW_LOOP.replace(*change)
    [diagnostic] = lint(HEADER + textwrap.dedent(code), select="GL401")
    assert diagnostic.line == marked(code)[0]
    assert "from `env.reset(...)`" in diagnostic.message


def test_gl401_a_model_run_inside_the_env_step_call_is_seen() -> None:
    code = """
        env = gym.make("Pendulum-v1")
        policy = Policy()
        obs = np.array(env.reset(seed=0)[0])
        for t in range(1000):
            obs = np.array(env.step(policy(torch.as_tensor(obs)).detach().numpy())[0])  # <-
    """
    assert found(code, "GL401") == [("GL401", n) for n in marked(code)]
    direct = code.replace("obs = np.array(env.step(", "obs, reward, terminated, truncated, _ = env.step(").replace(
        ".numpy())[0])", ".numpy())")
    assert found(direct, "GL401") == [("GL401", n) for n in marked(direct)]


@pytest.mark.parametrize("code", [
    # the same wrapped and indexed results, from a normalizing wrapper or an env we cannot read
    RAW_LOOP.replace('env = gym.make("Pendulum-v1")', 'env = gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1"))')
            .replace("obs, _ = env.reset(seed=0)", "obs = np.array(env.reset(seed=0)[0])"),
    RAW_LOOP.replace('env = gym.make("Pendulum-v1")', "from somewhere_else import make_env; env = make_env()")
            .replace("obs, _ = env.reset(seed=0)", "obs = torch.Tensor(env.reset(seed=0)[0])"),
    # the info dict of `reset`, not the observations
    RAW_LOOP.replace("obs, _ = env.reset(seed=0)", "obs = np.zeros(3); info = env.reset(seed=0)[1]")
            .replace("obs, reward, terminated, truncated, _ = env.step", "_ = env.step"),
])
def test_gl401_wrapped_env_results_look_alikes(code: str) -> None:
    assert found(code, "GL401") == []


def test_gl401_silent_when_the_env_comes_from_unreadable_code() -> None:
    code = RAW_LOOP.replace('env = gym.make("Pendulum-v1")', "from somewhere_else import make_env; env = make_env()")
    assert found(code) == []


def test_gl401_follows_a_replay_buffer_into_the_update() -> None:
    code = """
        class ReplayBuffer:
            def add(self, *transition):
                pass

            def sample(self, n):
                pass

        def collect(env, buffer):
            obs, _ = env.reset()
            next_obs, reward, terminated, truncated, _ = env.step(0)
            buffer.add(obs, 0, reward, next_obs, terminated)

        def update(critic, buffer):
            s, a, r, s2, d = buffer.sample(64)
            return critic(torch.as_tensor(s))  # <-

        env = gym.make("Hopper-v4")
        critic = Policy()
        buffer = ReplayBuffer()
    """
    assert found(code, "GL401") == [("GL401", n) for n in marked(code)]


def test_gl401_features_from_disk_and_a_scaler() -> None:
    raw = """
        df = pd.read_csv("data.csv")
        X = torch.tensor(df[["a", "b", "c"]].values, dtype=torch.float32)
        model = Policy()
        pred = model(X)  # <-
    """
    assert found(raw, "GL401") == [("GL401", n) for n in marked(raw)]
    scaled = raw.replace('X = torch.tensor(df[["a", "b", "c"]].values', 'X = torch.tensor(scaler.fit_transform(df[["a", "b", "c"]].values)')
    assert found(scaled, "GL401") == []


# --- GL402 ---------------------------------------------------------------------------------

TD = """
    env = gym.make("Pendulum-v1")
    obs, reward, terminated, truncated, _ = env.step(action)
    target = {reward} + gamma * (1 - terminated) * next_q  # <-
"""


def test_gl402_raw_rewards_in_a_td_target() -> None:
    code = TD.format(reward="reward")
    assert found(code, "GL402") == [("GL402", n) for n in marked(code)]


@pytest.mark.parametrize("reward", ["reward * reward_scale", "np.clip(reward, -1, 1)", "np.sign(reward)", "reward * 0.1", "reward / reward_std"])
def test_gl402_scaled_rewards_are_fine(reward: str) -> None:
    assert found(TD.format(reward=reward), "GL402") == []


def test_gl402_follows_a_reward_indexed_out_of_the_step_result() -> None:
    code = TD.replace("obs, reward, terminated, truncated, _ = env.step(action)",
                      "reward = np.float32(env.step(action)[1])").format(reward="reward")
    assert found(code, "GL402") == [("GL402", n) for n in marked(code)]
    observations = code.replace("env.step(action)[1]", "env.step(action)[0]")
    assert found(observations, "GL402") == []


def test_gl402_normalize_reward_wrapper_and_advantage_normalization() -> None:
    wrapped = TD.format(reward="reward").replace('gym.make("Pendulum-v1")', 'gym.wrappers.NormalizeReward(gym.make("Pendulum-v1"))')
    assert found(wrapped, "GL402") == []
    normalized_adv = TD.format(reward="reward") + "\nadv = (adv - adv.mean()) / (adv.std() + 1e-8)\n"
    assert found(normalized_adv, "GL402") == []


def test_gl402_is_off_by_default() -> None:
    assert [d.code for d in lint(HEADER + textwrap.dedent(TD.format(reward="reward")))] == []


# --- GL403 ---------------------------------------------------------------------------------

ATARI = """
    class QNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 32, 8, stride=4)

        def forward(self, x):
            return self.conv({scaled})

    env = gym.wrappers.AtariPreprocessing(gym.make("ALE/Breakout-v5", frameskip=1))
    q_network = QNetwork()
    obs, _ = env.reset()
    q_values = q_network(torch.as_tensor(obs).float())  # <-
"""


def test_gl403_uint8_frames_without_scaling() -> None:
    code = ATARI.format(scaled="x")
    [diagnostic] = lint(HEADER + textwrap.dedent(code), select="GL4")
    assert (diagnostic.code, diagnostic.line) == ("GL403", marked(code)[0])


def test_gl403_scaling_in_forward_or_in_the_loop_is_fine() -> None:
    assert found(ATARI.format(scaled="x / 255.0")) == []
    assert found(ATARI.format(scaled="x").replace("torch.as_tensor(obs).float()", "torch.as_tensor(obs).float() / 255.0")) == []


# --- across files --------------------------------------------------------------------------


def test_normalization_in_a_sibling_module_is_seen(tmp_path: Path) -> None:
    (tmp_path / "envs.py").write_text(textwrap.dedent("""
        import gymnasium as gym

        def make_env(env_id):
            env = gym.make(env_id)
            env = gym.wrappers.NormalizeObservation(env)
            return env
    """))
    (tmp_path / "networks.py").write_text(HEADER)
    train = textwrap.dedent("""
        import torch
        from envs import make_env
        from networks import Policy

        env = make_env("Hopper-v4")
        policy = Policy()
        obs, _ = env.reset()
        action = policy(torch.as_tensor(obs))
    """)
    (tmp_path / "train.py").write_text(train)
    (tmp_path / "train_raw.py").write_text(train.replace('make_env("Hopper-v4")', 'gym.make("Hopper-v4")').replace(
        "import torch\n", "import torch\nimport gymnasium as gym\n"))
    settings = Settings(select=("GL4",), root=str(tmp_path))
    assert lint_source(read_source(str(tmp_path / "train.py")), settings) == []
    [diagnostic] = lint_source(read_source(str(tmp_path / "train_raw.py")), settings)
    assert diagnostic.code == "GL401" and diagnostic.line == 10


@pytest.mark.parametrize(("scaled", "expected"), [("x / 255.0", []), ("x", ["GL403"])])
def test_a_sibling_module_is_described_only_when_a_model_class_of_it_is_used(
        tmp_path: Path, scaled: str, expected: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from gradlint.analysis import project
    from gradlint.analysis.models import discovery

    networks = ATARI.split("    env =")[0].format(scaled=scaled)
    (tmp_path / "networks.py").write_text(HEADER + textwrap.dedent(networks))
    (tmp_path / "extra.py").write_text(HEADER)  # a model module imported but not used here
    (tmp_path / "buffers.py").write_text("class ReplayBuffer:\n    def __init__(self):\n        self.items = []\n")
    train = textwrap.dedent("""
        import gymnasium as gym
        import torch
        from buffers import ReplayBuffer
        from extra import Policy
        from networks import QNetwork

        env = gym.wrappers.AtariPreprocessing(gym.make("ALE/Breakout-v5", frameskip=1))
        buffer = ReplayBuffer()
        q_network = QNetwork()
        obs, _ = env.reset()
        q_values = q_network(torch.as_tensor(obs).float())
    """)
    (tmp_path / "train.py").write_text(train)
    described: list[str] = []
    init = discovery.ModelAnalysis.__init__
    monkeypatch.setattr(discovery.ModelAnalysis, "__init__", lambda self, ctx: described.append(
        os.path.basename(ctx.source.path)) or init(self, ctx))
    project._CACHE.clear()
    settings = Settings(select=("GL4",), root=str(tmp_path))
    assert [d.code for d in lint_source(read_source(str(tmp_path / "train.py")), settings)] == expected
    # the model's forward was read from networks.py; buffers.py has no `nn`, extra.py's Policy is not used
    assert sorted(set(described)) == ["networks.py", "train.py"]


@pytest.mark.parametrize(("text", "feeds"), [
    ("optimizer.step()\nscheduler.step()\n", False),  # every training script: no data source
    ("scaler.step(optimizer)\n", True),  # an argument: kept (conservative)
    ("obs, r, done, info = env.step(action)\n", True),
    ("obs = env.reset()\n", True),
    ("df = pd.read_csv(path)\n", True),
    ("x = np.load('a.npy')\n", True),
    ("x = numpy.loadtxt('a.csv')\n", True),
    ("from numpy import load\nx = load('a.npy')\n", True),
    ("self.mixer.load_state_dict(th.load(path))\n", False),  # a checkpoint, in every learner
    ("state = torch.load(path)\nconfig = json.load(f)\n", False),
])
def test_the_data_rules_skip_criterion(text: str, feeds: bool) -> None:
    from gradlint.context import file_may_feed

    assert file_may_feed(text) is feeds


EARLIER_FUNCTION = """
    def evaluate(policy, env):
        obs, _ = env.reset(seed=0)
        return policy(torch.as_tensor(obs, dtype=torch.float32))  # <-


    env = gym.make("Pendulum-v1")
    policy = Policy()
    evaluate(policy, env)
"""


@pytest.mark.parametrize(("code", "passes"), [(RAW_LOOP, 1), (EARLIER_FUNCTION, 2)])
def test_the_data_flow_takes_a_second_pass_only_when_code_used_something_learnt_later(
        code: str, passes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradlint.analysis import dataflow

    started: list[int] = []
    start_pass = dataflow.PassState.start_pass
    monkeypatch.setattr(dataflow.PassState, "start_pass", lambda self: started.append(id(self)) or start_pass(self))
    assert found(code, "GL401") == [("GL401", marked(code)[0])]  # found either way
    assert len(started) == passes * len(set(started))


MAIN_BLOCK_HELPER = """
    if __name__ == "__main__":
        env = gym.make("Pendulum-v1")
        policy = Policy()

        def act(obs):
            return policy(torch.as_tensor(obs))

        obs, _ = env.reset()
        act(obs)  # <-
"""

IN_TRY_ELSE = """
    env = gym.make("Pendulum-v1")
    policy = Policy()
    obs, _ = env.reset()
    try:
        pass
    except ValueError:
        pass
    else:
        a = policy(torch.as_tensor(obs))  # <-
"""

IN_MATCH = """
    env = gym.make("Pendulum-v1")
    policy = Policy()
    match mode:
        case "eval":
            obs, _ = env.reset()
            b = policy(obs)  # <-
"""


@pytest.mark.parametrize("code", [MAIN_BLOCK_HELPER, IN_TRY_ELSE, IN_MATCH])
def test_gl401_sees_functions_of_the_main_block_and_every_block_of_try_and_match(code: str) -> None:
    # the libcst core skipped all three: functions under `if __name__ == "__main__":` were never
    # entered, and `try: ... else:`/`finally:` and `match` bodies were never read
    assert found(code, "GL401") == [("GL401", line) for line in marked(code)]


def test_the_data_flow_enters_each_function_once_per_binding_however_calls_nest() -> None:
    from gradlint.config import Settings
    from gradlint.context import FileContext
    from gradlint.source import SourceFile

    depth = 60  # each helper calls the next twice: 2**60 entries without the memo
    helpers = "".join(
        f"def step{i}(obs):\n    step{i + 1}(obs)\n    return step{i + 1}(obs)\n\n" for i in range(depth))
    helpers += f"def step{depth}(obs):\n    return policy(torch.as_tensor(obs))\n\n"
    code = HEADER + helpers + textwrap.dedent("""
        env = gym.make("Pendulum-v1")
        policy = Policy()
        obs, _ = env.reset()
        step0(obs)
    """)
    source = SourceFile("deep.py", code)
    ctx = FileContext.parse(source, Settings(select=("GL401",)))
    assert len(ctx.dataflow.model_inputs) == 1
    assert ctx.budget.spent < 20 * code.count("\n")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0", "Acrobot-v1", "LunarLander-v3",
                                    "BipedalWalker-v3", "FrozenLake-v1", "Taxi-v3"])
def test_gl401_is_silent_on_registered_envs_whose_observations_are_of_order_one(env_id: str) -> None:
    assert found(RAW_LOOP.replace("Pendulum-v1", env_id), "GL401") == []


@pytest.mark.parametrize(("env_id", "says"), [
    ("Pendulum-v1", "raw observations of Pendulum (angular velocity up to 8"),
    ("HalfCheetah-v4", "raw observations of HalfCheetah (unbounded joint positions and velocities)"),
    ("MyRobot-v0", "raw observations from `env.reset(...)`"),  # not a known id: the general rule
])
def test_gl401_names_the_scale_of_a_registered_env_and_keeps_unknown_ones(env_id: str, says: str) -> None:
    [diagnostic] = lint(HEADER + textwrap.dedent(RAW_LOOP.replace("Pendulum-v1", env_id)), select="GL401")
    assert diagnostic.line == marked(RAW_LOOP)[0] and says in diagnostic.message


def test_gl401_an_env_id_that_is_not_a_literal_keeps_the_general_rule() -> None:
    code = RAW_LOOP.replace('gym.make("Pendulum-v1")', "gym.make(args.env_id)")
    assert found(code, "GL401") == [("GL401", marked(code)[0])]


@pytest.mark.parametrize("scaled", ["x", "x / 255.0"])
def test_gl403_in_place_scaling_as_forwards_first_statement_is_seen(scaled: str) -> None:
    code = ATARI.format(scaled=scaled).replace(
        "        def forward(self, x):\n", "        def forward(self, x):\n            x /= 255.0\n")
    assert found(code) == []


AGENT = """
    class Actor(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 1)

        def forward(self, x):
            return self.fc(x)


    class Agent:
        def __init__(self, environment):
            self.environment = environment
            self.actor = Actor()

        def select_action(self, state):
            return self.actor(torch.as_tensor(state, dtype=torch.float32))


    env = gym.make("Pendulum-v1")
    agent = Agent(env)
    obs, _ = env.reset()
    action = agent.select_action(obs)  # <- outside
"""


def test_gl401_follows_env_data_into_an_agents_methods() -> None:
    # reported where the script hands the observations to the agent, naming the model call
    [diagnostic] = lint(HEADER + textwrap.dedent(AGENT), select="GL401")
    assert diagnostic.line == marked(AGENT)[0]
    assert "reach `self.actor` (line" in diagnostic.message and "through this call" in diagnostic.message


def test_gl401_follows_an_env_held_by_an_agent_object() -> None:
    # only the agent's own method reads the env (`self.environment = environment` in __init__)
    code = AGENT.replace("        def select_action(self, state):", """        def run_episode(self):
            obs, _ = self.environment.reset()
            return self.select_action(obs)  # <-

        def select_action(self, state):""").replace(
        "    obs, _ = env.reset()\n    action = agent.select_action(obs)  # <- outside\n", "    agent.run_episode()\n")
    assert found(code, "GL401") == [("GL401", marked(code)[0])]


@pytest.mark.parametrize("change", [
    ("return self.actor(torch.as_tensor(state, dtype=torch.float32))",
     "return self.actor(torch.as_tensor(self.obs_rms.normalize(state), dtype=torch.float32))"),
    ('env = gym.make("Pendulum-v1")', 'env = gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1"))'),
    ('env = gym.make("Pendulum-v1")', 'env = gym.make("CartPole-v1")'),
])
def test_gl401_agent_look_alikes(change: tuple[str, str]) -> None:
    assert found(AGENT.replace(*change), "GL401") == []


INLINE = """
    env = gym.make("Pendulum-v1")
    q = nn.Sequential({first}nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 1))
    obs, _ = env.reset()
    value = q(torch.as_tensor(obs))  # <-
"""


def test_gl401_follows_data_into_an_inline_torch_model() -> None:
    code = INLINE.format(first="")
    assert found(code, "GL401") == [("GL401", marked(code)[0])]


@pytest.mark.parametrize("first", ["nn.LayerNorm(3), ", "Scale(1 / 255), ", "Lambda(lambda x: x / 255.0), "])
def test_gl401_inline_model_that_starts_by_normalising(first: str) -> None:
    assert found(INLINE.format(first=first), "GL401") == []


REINFORCE = """
    env = gym.make("Pendulum-v1")
    rewards = []
    obs, _ = env.reset()
    for t in range(200):
        obs, reward, terminated, truncated, _ = env.step(policy_action(obs))
        rewards.append(reward)
    R, returns = 0, []
    for r in rewards[::-1]:
        R = r + gamma * R  # <-
        returns.insert(0, R)
    returns = torch.tensor(returns)
{standardize}    loss = -(log_probs * returns).sum()
"""


@pytest.mark.parametrize("standardize", [
    "returns = (returns - returns.mean()) / (returns.std() + eps)\n",
    "returns = (returns - np.mean(returns)) / np.std(returns)\n",
    "returns = returns / returns_scale\n",
])
def test_gl402_returns_standardised_before_the_loss_are_fine(standardize: str) -> None:
    assert found(REINFORCE.format(standardize="    " + standardize), "GL402") == []


def test_gl402_returns_left_raw_are_reported() -> None:
    code = REINFORCE.format(standardize="")
    assert found(code, "GL402") == [("GL402", marked(code)[0])]


def test_gl401_follows_models_of_a_sibling_module_imported_with_a_star(tmp_path: Path) -> None:
    from gradlint.analysis import project

    (tmp_path / "networks.py").write_text(HEADER)
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        import torch
        from networks import *

        env = gym.make("Pendulum-v1")
        policy = Policy()
        obs, _ = env.reset()
        action = policy(torch.as_tensor(obs))
    """))
    project._CACHE.clear()
    settings = Settings(select=("GL401",), root=str(tmp_path))
    assert [(d.code, d.line) for d in lint_source(read_source(str(tmp_path / "train.py")), settings)] == [("GL401", 9)]


@pytest.mark.parametrize(("binding", "reported"), [
    ('ENV_NAME = "CartPole-v1"\n', False),
    ('ENV_NAME = "Pendulum-v1"\n', True),
    ("", True),  # unknown name: the general rule
])
def test_gl401_reads_an_env_id_bound_to_a_module_constant(binding: str, reported: bool) -> None:
    code = textwrap.indent(binding, "    ") + RAW_LOOP.replace('gym.make("Pendulum-v1")', "gym.make(ENV_NAME)")
    assert bool(found(code, "GL401")) is reported


def test_gl401_prefers_the_rollout_call_to_an_update_defined_earlier_that_samples_a_buffer() -> None:
    code = """
    class Agent:
        def __init__(self):
            self.policy = Policy()
            self.buffer = ReplayBuffer()

        def update(self):
            obs, act, rew, nxt = self.buffer.sample(64)
            return self.policy(obs)

        def act(self, obs):
            self.buffer.add(obs, 0, 0, obs)
            return self.policy(torch.as_tensor(obs))


    env = gym.make("Pendulum-v1")
    agent = Agent()
    obs, _ = env.reset()
    for t in range(100):
        action = agent.act(obs)  # <-
        agent.update()
    """
    assert found(code, "GL401") == [("GL401", marked(code)[0])]


BIT_ENV = """
    class BitFlipEnv:
        def __init__(self, n):
            self.n = n

        def reset(self):
            self.state = {state}
            return self.state

        def step(self, action):
            self.state[action] = 1 - self.state[action]
            return self.state, -1.0, False, {{}}


    env = BitFlipEnv(11)
    policy = Policy()
    obs = env.reset()
    action = policy(torch.as_tensor(obs))  # <-
"""


@pytest.mark.parametrize(("state", "reported"), [
    ("np.random.randint(2, size=self.n)", False),
    ("np.eye(self.n)[0]", False),
    ("np.random.randn(self.n) * 100.0", True),
])
def test_gl401_an_env_class_of_the_file_that_emits_bits_is_already_unit_scale(state: str, reported: bool) -> None:
    assert bool(found(BIT_ENV.format(state=state), "GL401")) is reported


@pytest.mark.parametrize(("default", "reported"), [("CartPole-v1", False), ("Pendulum-v1", True)])
def test_gl401_reads_the_env_id_a_script_runs_with_by_default(default: str, reported: bool) -> None:
    code = ('    parser.add_argument("--env-id", type=str, default="%s")\n' % default) + RAW_LOOP.replace(
        'gym.make("Pendulum-v1")', "gym.make(args.env_id)")
    assert bool(found(code, "GL401")) is reported


# --- a model's own training method scales no input (tune half: quantumiracle's PPO classes) ----

SELF_TRAINING_MODEL = """
    class PPO(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.fc = nn.Linear(n_in, n_out)
            self.optimizer = torch.optim.Adam(self.parameters())

        def pi(self, x):
            return torch.tanh(self.fc(x))

        def {method}:
            {body}


    env = gym.make("Ant-v4")
    model = PPO(27, 8)
    for episode in range(100):
        s, _ = env.reset()
        for t in range(1000):
            a = model.pi(torch.from_numpy(s).float())  # <-
            s, r, term, trunc, _ = env.step(a.detach().numpy())
"""

TRAINING_METHOD = ("train_net(self)", "adv = (self.adv - self.adv.mean()) / (self.adv.std() + 1e-8); "
                   "loss = -(adv * self.logp).mean(); self.optimizer.zero_grad(); loss.backward(); self.optimizer.step()")


@pytest.mark.parametrize("method, body", [
    TRAINING_METHOD,  # standardises its advantages, then trains: not the model's input
    ("reset_stats(self)", "self.mean = (self.total - self.total.mean()) / self.total.std()"),  # takes no data
])
def test_gl401_a_standardisation_in_a_method_that_takes_no_input_is_not_the_models(method: str, body: str) -> None:
    code = SELF_TRAINING_MODEL.format(method=method, body=body)
    assert found(code, "GL401") == [("GL401", marked(code)[0])]


def test_gl401_scaling_in_a_method_that_takes_the_data_still_counts() -> None:
    code = SELF_TRAINING_MODEL.format(method="get_value(self, x)", body="return self.fc((x - x.mean()) / (x.std() + 1e-8))")
    assert found(code, "GL401") == []


@pytest.mark.parametrize("made", [
    'gym.make("Pendulum-v1").unwrapped',
    'gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1")).unwrapped',  # unwrapped drops the wrapper
])
def test_gl401_an_unwrapped_env_is_still_the_env(made: str) -> None:
    code = RAW_LOOP.replace('gym.make("Pendulum-v1")', made)
    assert found(code, "GL401") == [("GL401", marked(code)[0])]


@pytest.mark.parametrize("made", ['gym.make("CartPole-v1").unwrapped',
                                  'gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1"))'])
def test_gl401_unwrapped_look_alikes(made: str) -> None:
    assert found(RAW_LOOP.replace('gym.make("Pendulum-v1")', made), "GL401") == []
