"""The runtime verifier: verdicts from measurements in both directions, model-only loading,
constructor arguments, and isolation from the user's code."""

from __future__ import annotations

import ast

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.config import Settings
from gradlint.engine import lint_paths
from gradlint.verify.loader import constructor_args, model_only_source
from gradlint.verify.runner import scrubbed_environment
from tests.conftest import FIXTURES, ROOT

torch = pytest.importorskip("torch")

from gradlint.verify import verify_model  # noqa: E402
from gradlint.verify.session import Options, verify_results  # noqa: E402


def _parsed(text: str):
    from gradlint.verify.loader import ParsedFile

    return ParsedFile.of(text)


def verdicts(paths: list[Path], **options) -> dict[tuple[str, str], object]:
    results = lint_paths([str(p) for p in paths], Settings(select=("ALL",)), jobs=1)
    reports = verify_results(results, Settings(), Options(**options))
    return {(Path(r.file).stem, r.model, v.code): v for r in reports for v in r.verdicts}


@pytest.fixture(scope="module")
def fixture_verdicts() -> dict:
    models = FIXTURES / "models"
    return verdicts([models / "deep_plain_relu.py", models / "deep_plain_relu_default_init.py",
                     models / "exploding_rnn.py", FIXTURES / "clipping" / "lstm_no_clip.py",
                     FIXTURES / "data" / "pendulum_ddpg_raw.py", FIXTURES / "data" / "atari_dqn_raw.py",
                     FIXTURES / "data" / "mujoco_ppo_raw.py"])


def test_deep_relu_with_large_init_is_confirmed(fixture_verdicts) -> None:
    for code in ("GL201", "GL301"):
        verdict = fixture_verdicts[("deep_plain_relu", "DeepReLUMLP", code)]
        assert verdict.verdict == "confirmed", verdict.reason
        assert verdict.figures["max_he_c"] > 100  # measured on the weights: std 1 on 256 inputs


def test_deep_relu_with_default_init_is_not_confirmed(fixture_verdicts) -> None:
    # the same 22-layer stack with PyTorch's default init: gradients shrink with depth
    quiet = fixture_verdicts[("deep_plain_relu_default_init", "DeepReLUMLP", "GL201")]
    assert quiet.verdict == "not confirmed", quiet.reason
    assert quiet.figures["first_last_ratio"] < 1 and quiet.figures["activation_growth_per_layer"] < 2


def test_recurrence_growing_with_length_is_confirmed_and_default_lstm_is_not(fixture_verdicts) -> None:
    exploding = fixture_verdicts[("exploding_rnn", "ExplodingReLURNN", "GL202")]
    assert exploding.verdict == "confirmed"
    grads = exploding.figures["grad_first_input_by_T"]
    assert grads["200"] > grads["50"] > grads["10"]
    lstm = fixture_verdicts[("lstm_no_clip", "CharLSTM", "GL103")]
    # an LSTM at default init: the gradient through time vanishes. That measures the model, not
    # the training loop GL103 is about: not verified, and the reason says what would verify it
    assert lstm.verdict == "not verified" and "gradlint run" in lstm.reason and "vanishes" in lstm.reason
    assert lstm.figures["grad_first_input_by_T"]["200"] < lstm.figures["grad_first_input_by_T"]["10"]


def test_training_loop_findings_are_not_verified_without_the_real_run(fixture_verdicts) -> None:
    # the false confirmation: a deep default-init ReLU MLP (SGD 0.01 on pow(2).mean()) was
    # "GL101 confirmed: non-finite, max_grad_norm 4.2e14" from a 100x-target synthetic run
    for key in (("deep_plain_relu_default_init", "DeepReLUMLP", "GL101"), ("deep_plain_relu", "DeepReLUMLP", "GL101"),
                ("exploding_rnn", "ExplodingReLURNN", "GL103")):
        verdict = fixture_verdicts[key]
        if key[2] == "GL103":  # the recurrence itself grows with T: the model part is measured
            assert verdict.verdict == "confirmed" and "T=200" in verdict.reason
            continue
        assert verdict.verdict == "not verified" and "needs the real training loop (`gradlint run`)" in verdict.reason


def test_data_findings_rest_on_a_registered_envs_observation_bounds(fixture_verdicts) -> None:
    # Pendulum-v1: cos, sin in [-1, 1], angular velocity in [-8, 8]: within 10x unit scale
    pendulum = fixture_verdicts[("pendulum_ddpg_raw", "Actor", "GL401")]
    assert pendulum.verdict == "not confirmed", pendulum.reason
    assert pendulum.figures["env"] == "Pendulum-v1" and pendulum.figures["largest_feature"] == 2
    assert pendulum.figures["largest_feature_scale"] == pytest.approx(8 / 3 ** 0.5)
    # ALE frames are uint8 in [0, 255]
    atari = fixture_verdicts[("atari_dqn_raw", "QNetwork", "GL403")]
    assert atari.verdict == "confirmed" and "ALE/Breakout-v5" in atari.reason
    # HalfCheetah's joint velocities have no documented bound: nothing honest to say without the real run
    mujoco = fixture_verdicts[("mujoco_ppo_raw", "Agent", "GL401")]
    assert mujoco.verdict == "not verified" and "gradlint run" in mujoco.reason


def test_no_verdict_without_figures(fixture_verdicts) -> None:
    for verdict in fixture_verdicts.values():
        if verdict.verdict in ("confirmed", "not confirmed"):
            assert any(value is not None for value in verdict.figures.values())


def test_python_api_on_a_model_object_both_directions() -> None:
    torch.manual_seed(0)
    acrobot = torch.nn.Sequential(torch.nn.Linear(6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    report = verify_model(acrobot, torch.randn(16, 6), codes=("GL401",), env_id="Acrobot-v1")
    assert report["verdicts"][0]["verdict"] == "confirmed"  # angular velocities up to 9 pi
    assert report["figures"]["env"]["grad_norm_at_bounds_vs_unit"] > 1
    car = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    report = verify_model(car, torch.randn(16, 2), codes=("GL401",), env_id="MountainCar-v0")
    assert report["verdicts"][0]["verdict"] == "not confirmed"  # position and velocity are small
    report = verify_model(car, torch.randn(16, 2), codes=("GL401", "GL101"))
    assert [v["verdict"] for v in report["verdicts"]] == ["not verified", "not verified"]  # nothing made up


def test_env_bounds_table_and_the_env_a_file_names() -> None:
    from gradlint.analysis.envs import env_ids_in, env_spec

    assert env_spec("Pendulum-v1").high == (1.0, 1.0, 8.0) and env_spec("CartPole-v1").observation_dim == 4
    assert env_spec("ALE/Pong-v5").dtype == "uint8" and env_spec("PongNoFrameskip-v4").high == (255.0,)
    assert env_spec("MyEnv-v0") is None and env_spec("CartPole-v2") is None
    text = 'import gym\nENV = "Acrobot-v1"\nparser.add_argument("--env-id", default="CartPole-v1")\nprint("v1")\n'
    assert env_ids_in(ast.parse(text)) == ["Acrobot-v1", "CartPole-v1"]


def test_a_cell_agent_is_unrolled_over_t() -> None:
    from gradlint.verify import probes

    class Agent(torch.nn.Module):  # PyMARL's RNNAgent: (x, h) -> (q, h)
        def __init__(self, gain: float) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(6, 16)
            self.rnn = torch.nn.RNNCell(16, 16, nonlinearity="relu")
            self.fc2 = torch.nn.Linear(16, 3)
            with torch.no_grad():
                self.rnn.weight_hh.copy_(gain * torch.eye(16))

        def forward(self, x, h):
            h = self.rnn(torch.relu(self.fc1(x)), h)
            return self.fc2(h), h

    growing = probes.recurrent_profile(Agent(1.5), [torch.randn(4, 6), torch.zeros(4, 16)], None, lengths=(5, 20))
    assert growing["unrolled"] and growing["grad_first_input"]["20"] > 10 * growing["grad_first_input"]["5"]
    shrinking = probes.recurrent_profile(Agent(0.3), [torch.randn(4, 6), torch.zeros(4, 16)], None, lengths=(5, 20))
    assert shrinking["grad_first_input"]["20"] < shrinking["grad_first_input"]["5"]


# --- model-only loading and constructor arguments ---------------------------------------------

SCRIPT = textwrap.dedent("""\
    import argparse
    import gymnasium_that_is_not_installed as gym
    import torch
    import torch.nn as nn

    HIDDEN = 64
    args = argparse.ArgumentParser().parse_args()
    env = gym.make("Pendulum-v1")

    class Deep(nn.Module):
        def __init__(self, state_dim, depth=8):
            super().__init__()
            self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(HIDDEN, HIDDEN), nn.ReLU())])
            self.inp = nn.Linear(state_dim, HIDDEN)

        def forward(self, x):
            return self.net(self.inp(x))

    model = Deep(17)
    for step in range(10):
        pass

    if __name__ == "__main__":
        raise SystemExit(1)
""")


def test_model_only_source_keeps_models_and_drops_work() -> None:
    text = model_only_source(SCRIPT)
    assert "class Deep" in text and "HIDDEN = 64" in text
    for gone in ("parse_args", "gym.make", "for step", "__main__", "model = Deep"):
        assert gone not in text
    namespace: dict = {}
    exec(compile(text, "script.py", "exec"), namespace)  # the missing module becomes a placeholder
    assert namespace["Deep"](17)(torch.randn(2, 17)).shape == (2, 64)
    # a class of the missing module is the type of nothing (Spinning Up: `isinstance(space, Box)`)
    assert not isinstance(3, namespace["gym"].spaces.Box) and not issubclass(int, namespace["gym"].spaces.Box)


def test_model_only_source_keeps_future_imports_first() -> None:
    # pytorch/examples' scripts start with `from __future__ import print_function`; behind the
    # placeholder class it was a SyntaxError and no model of such a file could be verified
    text = model_only_source('"""A script."""\nfrom __future__ import print_function, division\n' + SCRIPT)
    assert text.startswith("from __future__ import print_function, division\n")
    namespace: dict = {}
    exec(compile(text, "script.py", "exec"), namespace)
    assert namespace["Deep"](17)(torch.randn(2, 17)).shape == (2, 64)


CLEANRL_AGENT = textwrap.dedent("""\
    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn as nn
    from torch.distributions.categorical import Categorical


    class Agent(nn.Module):
        def __init__(self, envs):
            super().__init__()
            obs = int(np.array(envs.single_observation_space.shape).prod())
            self.critic = nn.Sequential(nn.Linear(obs, 64), nn.Tanh(), nn.Linear(64, 1))
            self.actor = nn.Sequential(nn.Linear(obs, 64), nn.Tanh(), nn.Linear(64, envs.single_action_space.n))

        def get_value(self, x):
            return self.critic(x)

        def get_action_and_value(self, x, action=None):
            probs = Categorical(logits=self.actor(x))
            if action is None:
                action = probs.sample()
            return action, probs.log_prob(action), probs.entropy(), self.critic(x)


    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    agent = Agent(envs)
""")


def test_a_model_built_from_an_env_gets_a_synthetic_one_and_a_method_as_forward() -> None:
    from gradlint.verify.loader import SYNTHETIC_ENV
    from gradlint.verify.worker import build, find_inputs, use_method_as_forward

    construction = constructor_args(_parsed(CLEANRL_AGENT.replace("agent = Agent(envs)", "")), "Agent")
    assert (construction.source, construction.kwargs) == ("guesses", {"envs": SYNTHETIC_ENV})
    request = {"file": "agent.py", "module_name": "gradlint_test_agent", "class": "Agent",
               "source": model_only_source(CLEANRL_AGENT), "kwargs": json.loads(json.dumps(construction.kwargs))}
    model = build(request)  # the marker crossed JSON, as it does to the worker
    assert model.actor[-1].out_features == 4 and model.critic[0].in_features == 8
    assert use_method_as_forward(model) == "get_action_and_value"
    [x] = find_inputs(model, request)
    assert x.shape == (8, 8) and len(model(x)) == 4


def test_a_model_built_from_the_spaces_gets_the_synthetic_spaces() -> None:
    from gradlint.verify.worker import build

    text = textwrap.dedent("""\
        import torch.nn as nn


        class MLPActor(nn.Module):
            def __init__(self, observation_space, action_space):
                super().__init__()
                self.net = nn.Linear(observation_space.shape[0], action_space.shape[0])
                self.act_limit = float(action_space.high[0])
    """)
    construction = constructor_args(_parsed(text), "MLPActor")
    assert sorted(construction.guessed) == ["action_space", "observation_space"]
    model = build({"file": "a.py", "module_name": "gradlint_test_spaces", "class": "MLPActor",
                   "source": model_only_source(text), "kwargs": json.loads(json.dumps(construction.kwargs))})
    assert (model.net.in_features, model.net.out_features, model.act_limit) == (8, 2, 1.0)


def test_look_alikes_of_an_env_parameter_and_of_a_missing_forward() -> None:
    from gradlint.verify.worker import use_method_as_forward

    counted = CLEANRL_AGENT.replace("def __init__(self, envs)", "def __init__(self, envs, num_envs)")
    assert constructor_args(_parsed(counted.replace("agent = Agent(envs)", "")), "Agent").missing == ["num_envs"]
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    model.get_value = lambda x: x  # has its own forward: nothing is replaced
    assert use_method_as_forward(model) is None and model.forward.__func__ is torch.nn.Sequential.forward


def test_a_model_whose_update_step_is_named_train_is_measured_without_running_it() -> None:
    # minimalRL's PPO: `pi`/`v` heads, no forward, and `def train(self)` is the update step
    from gradlint.verify.worker import measure

    source = model_only_source(textwrap.dedent("""\
        import torch.nn as nn
        import torch.nn.functional as F


        class PPO(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(4, 32)
                self.fc_pi = nn.Linear(32, 2)

            def pi(self, x, softmax_dim=0):
                return F.softmax(self.fc_pi(F.relu(self.fc1(x))), dim=softmax_dim)

            def train(self):
                raise AssertionError("the user's update step ran")
    """))
    figures = measure({"file": "ppo.py", "module_name": "gradlint_test_ppo", "class": "PPO", "source": source,
                       "codes": ["GL401"], "hints": {"inputs": ["x"]}})
    assert figures["forward"] == "pi" and figures["input_shapes"] == [[8, 4]]


def test_names_removed_with_the_training_code_get_stand_ins() -> None:
    from gradlint.analysis.envs import env_spec

    text = textwrap.dedent("""\
        import argparse
        import gymnasium_that_is_not_installed as gym
        import torch.nn as nn

        parser = argparse.ArgumentParser()
        parser.add_argument("--capacity", type=int, default=10000)
        parser.add_argument("--hidden-size", dest="hidden", type=int, default=32)
        args = parser.parse_args()
        env = gym.make("CartPole-v1")
        NUM_STATES = env.observation_space.shape[0]
        NUM_ACTIONS = env.action_space.n
        SCALE = compute_scale()

        class Memory:
            def __init__(self, capacity=args.capacity):
                self.capacity = capacity

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(NUM_STATES, args.hidden)
                self.out = nn.Linear(args.hidden, NUM_ACTIONS)

            def forward(self, x):
                return self.out(self.fc(x)) * SCALE
    """)
    namespace: dict = {}
    exec(compile(model_only_source(text, env_spec("CartPole-v1")), "dqn.py", "exec"), namespace)
    assert namespace["Memory"]().capacity == 10000  # the parser's own default, not a NameError
    net = namespace["Net"]()
    assert (net.fc.in_features, net.fc.out_features, net.out.out_features) == (4, 32, 2)  # CartPole's sizes
    with pytest.raises(TypeError):  # a name nothing can stand in for fails only where it is used
        net(torch.randn(2, 4))
    tyro = "import tyro\nfrom dataclasses import dataclass\n@dataclass\nclass Args:\n    hidden: int = 7\n" \
           "args = tyro.cli(Args)\nclass M:\n    def __init__(self, h=args.hidden):\n        self.h = h\n"
    namespace = {}
    exec(compile(model_only_source(tyro), "cleanrl.py", "exec"), namespace)
    assert namespace["M"]().h == 7  # CleanRL's dataclass defaults


def test_constructor_arguments_in_order_of_preference() -> None:
    assert constructor_args(_parsed(SCRIPT), "Deep").args == [17]  # a call site with constant arguments
    user = constructor_args(_parsed(SCRIPT), "Deep", {"state_dim": 5})
    assert (user.source, user.kwargs) == ("user", {"state_dim": 5})
    no_call_site = SCRIPT.replace("model = Deep(17)", "model = Deep(env.observation_space.shape[0])")
    guessed = constructor_args(_parsed(no_call_site), "Deep")
    assert guessed.source == "guesses" and guessed.guessed == {"state_dim": 8}
    unknown = constructor_args(_parsed(SCRIPT.replace("state_dim", "mystery").replace("Deep(17)", "Deep(x)")), "Deep")
    assert unknown.missing == ["mystery"]


# --- isolation ----------------------------------------------------------------------------------

MODEL = textwrap.dedent("""\
    import os
    import sys
    import torch
    import torch.nn as nn

    open("TOP_LEVEL_RAN", "w").write("the training code ran")

    class Deep(nn.Module):
        def __init__(self, depth=8):
            super().__init__()
            {body}
            layers = []
            for _ in range(depth):
                layers += [nn.Linear(16, 16), nn.ReLU()]
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)

    for epoch in range(10 ** 9):
        pass
    sys.exit(5)
""")


@pytest.mark.slow
def test_user_code_that_raises_hangs_exits_or_runs_at_import_is_contained(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = {
        "ok.py": "pass",
        "raises.py": 'raise ValueError("broken constructor")',
        "hangs.py": "while True: pass",
        "exits.py": "os._exit(3)",
        "allocates.py": "self.blob = bytearray(10 ** 12)",
        "writes.py": f"open({str(tmp_path / 'WRITTEN')!r}, 'w').write('x')",
        "connects.py": "import socket; socket.create_connection(('127.0.0.1', 9))",
        "after.py": "pass",
    }
    paths = []
    for name, body in files.items():
        path = tmp_path / name
        path.write_text(MODEL.replace("{body}", body))
        paths.append(path)
    results = lint_paths([str(p) for p in paths], Settings(select=("GL201",)), jobs=1)
    # the default per-model timeout is a generous hang guard, so on a busy machine no slow model
    # is mistaken for a hang; the hanging model alone is verified with a short one
    hanging = [r for r in results if r.path.endswith("hangs.py")]
    reports = verify_results([r for r in results if r not in hanging], Settings(), Options())
    reports += verify_results(hanging, Settings(), Options(timeout=5))
    by_file = {Path(r.file).name: r for r in reports}
    assert by_file["ok.py"].verdicts[0].verdict == "not confirmed"  # default init: measured, not assumed
    assert "ValueError: broken constructor" in by_file["raises.py"].error
    assert "timed out after 5 s" in by_file["hangs.py"].error
    assert "exited with code 3" in by_file["exits.py"].error
    assert "MemoryError" in by_file["allocates.py"].error
    assert "writing" in by_file["writes.py"].error and not (tmp_path / "WRITTEN").exists()
    assert "network use is not allowed" in by_file["connects.py"].error
    assert by_file["after.py"].verdicts[0].verdict == "not confirmed"  # a fresh worker took over
    assert not (tmp_path / "TOP_LEVEL_RAN").exists()
    assert all(v.verdict == "not verified" for name in ("raises.py", "hangs.py", "exits.py", "allocates.py", "writes.py",
                                                        "connects.py")
               for v in by_file[name].verdicts)


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    path = tmp_path / "deep.py"
    path.write_text(MODEL.replace("{body}", "pass"))
    # with an absurdly low first/last ratio threshold, the default-init stack counts as confirmed
    result = CliRunner().invoke(main, ["verify", "--select", "GL201", "--threshold", "first_last_ratio=1e-12", str(path)])
    assert "GL201  confirmed" in result.output, result.output
    bad = CliRunner().invoke(main, ["verify", "--threshold", "nonsense=1", str(path)])
    assert bad.exit_code == 2 and "unknown threshold" in bad.output


def test_worker_environment_is_scrubbed(monkeypatch) -> None:
    for name in ("GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "MY_API_KEY", "HF_TOKEN"):
        monkeypatch.setenv(name, "secret")
    monkeypatch.setenv("HARMLESS", "1")
    env = scrubbed_environment("/tmp/home")
    assert not {"GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "MY_API_KEY", "HF_TOKEN"} & set(env)
    assert "HARMLESS" not in env and env["HOME"] == "/tmp/home"  # an allow-list: tests/test_sandbox_layers.py


# --- command line -------------------------------------------------------------------------------


def test_verify_command_json_and_check_verify(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "deep.py"
    path.write_text(MODEL.replace("{body}", "pass"))
    plots = tmp_path / "plots"
    result = CliRunner().invoke(main, ["verify", "--format", "json", "--select", "GL201", "--plot", str(plots), str(path)])
    assert result.exit_code == 0, result.output
    [model] = json.loads(result.stdout)
    if __import__("importlib").util.find_spec("matplotlib"):
        import matplotlib.image

        [png] = plots.glob("*.png")
        assert png.name == "deep.Deep.png" and matplotlib.image.imread(str(png)).std() > 0.01
    assert model["model"] == "Deep" and model["status"] == "ok"
    [finding] = model["findings"]
    assert finding["code"] == "GL201" and finding["verdict"] == "not confirmed"
    assert model["layers"] and all("grad_norm" in layer for layer in model["layers"])
    checked = CliRunner().invoke(main, ["check", "--verify", "--select", "GL201", str(path)])
    assert "GL201" in checked.output and "[not confirmed]" in checked.output


def test_verify_without_torch_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    import gradlint.verify as verify

    monkeypatch.setattr(verify, "torch_available", lambda: False)
    path = tmp_path / "deep.py"
    path.write_text(MODEL.replace("{body}", "pass"))
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 2
    assert "pip install 'gradlint[verify]'" in result.output


def test_verify_without_libcst_says_how_to_install(tmp_path: Path) -> None:
    # libcst is in the verify extra only (the linter reads Python's ast): a linter-only install
    # that runs `gradlint verify` gets the install line, not an ImportError
    import subprocess
    import sys

    path = tmp_path / "deep.py"
    path.write_text(MODEL.replace("{body}", "pass"))
    code = ("import sys\nsys.modules['libcst'] = None\nfrom gradlint.cli import main\n"
            f"sys.argv = ['gradlint', 'verify', {str(path)!r}]\nmain()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "needs torch and libcst: pip install 'gradlint[verify]'" in out.stdout + out.stderr


def test_linter_never_imports_torch_even_with_verify_available() -> None:
    import subprocess
    import sys

    code = ("import sys; from gradlint.engine import lint_paths; from gradlint.config import Settings;"
            f"lint_paths([{str(FIXTURES / 'models' / 'deep_plain_relu.py')!r}], Settings());"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ)
    assert out.stdout.strip() == "False", out.stderr


def test_a_model_imported_from_a_sibling_module_is_built_from_its_file() -> None:
    split = FIXTURES / "models" / "split"
    results = lint_paths([str(split / "train.py")], Settings(select=("GL1",), root=str(split)), jobs=1)
    [diagnostic] = results[0].diagnostics
    assert diagnostic.subject == "MLPNetwork"  # defined in networks.py, imported by train.py
    [report] = verify_results(results, Settings(root=str(split)), Options())
    assert report.status == "ok" and report.file.endswith("networks.py")
    assert report.construction["source"] == "call site"  # the arguments train.py passes
    assert report.figures["layers"]  # built and measured; GL101 itself is the training loop's
    assert report.verdicts[0].verdict == "not verified" and "gradlint run" in report.verdicts[0].reason


@pytest.mark.parametrize(("change", "subject"), [
    # `import networks` and a dotted constructor
    (("from networks import MLPNetwork", "import networks"), "networks.MLPNetwork"),
])
def test_a_sibling_model_named_through_its_module_is_built_from_its_file(tmp_path: Path, change, subject) -> None:
    split = FIXTURES / "models" / "split"
    (tmp_path / "networks.py").write_text((split / "networks.py").read_text())
    script = (split / "train.py").read_text().replace(*change).replace("MLPNetwork(input_dim", "networks.MLPNetwork(input_dim")
    (tmp_path / "train.py").write_text(script)
    results = lint_paths([str(tmp_path / "train.py")], Settings(select=("GL1",), root=str(tmp_path)), jobs=1)
    [diagnostic] = results[0].diagnostics
    assert diagnostic.subject == subject
    [report] = verify_results(results, Settings(root=str(tmp_path)), Options())
    assert report.status == "ok" and report.file.endswith("networks.py") and report.model == "MLPNetwork"
    assert report.construction["source"] == "call site"


def test_a_cnn_gets_the_image_size_its_linear_layer_fixes_and_a_bad_input_shape_is_one_clear_error() -> None:
    from gradlint.verify.worker import find_inputs

    class Net(torch.nn.Module):  # 47x47 images: none of the usual sides
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.fc = torch.nn.Linear(8 * 45 * 45, 10)

        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    [x] = find_inputs(Net(), {"hints": {"inputs": ["x"]}})
    assert list(x.shape) == [8, 3, 47, 47]
    with pytest.raises(ValueError, match=r"--input-shape Net=2,3,31 does not fit the model: RuntimeError"):
        find_inputs(Net(), {"class": "Net", "input_shapes": [[2, 3, 31]]})


def test_check_verify_marks_findings_about_a_model_of_a_sibling_module(tmp_path: Path, monkeypatch) -> None:
    # train.py trains MLPNetwork from networks.py: verify's report is "train.py -> networks.py";
    # the finding of train.py must still get its verdict
    shutil.copytree(FIXTURES / "models" / "split", tmp_path / "split")
    monkeypatch.chdir(tmp_path / "split")
    checked = CliRunner().invoke(main, ["check", "--no-cache", "--verify", "--select", "GL101", "train.py"])
    [line] = [line for line in checked.output.splitlines() if "GL101" in line]
    assert "[not verified]" in line, checked.output


def test_gl403_on_an_env_with_unbounded_float_features_says_so() -> None:
    # CartPole's bounds are infinite: "values in [-inf, inf]" read as if the frames were measured
    from gradlint.verify.verdict import NOT_CONFIRMED, THRESHOLDS, data_verdict

    unbounded = {"min": float("-inf"), "max": float("inf"), "dtype": "float32", "source": "CartPole-v1's bounds"}
    verdict = data_verdict("GL403", unbounded, THRESHOLDS, raw_frames=True)
    assert verdict.verdict == NOT_CONFIRMED and "inf" not in verdict.reason and "unbounded" in verdict.reason
    frames = {"min": 0.0, "max": 255.0, "dtype": "uint8", "source": "ALE bounds"}
    assert data_verdict("GL403", frames, THRESHOLDS, raw_frames=True).verdict != NOT_CONFIRMED
