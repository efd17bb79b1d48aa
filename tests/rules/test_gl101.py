"""GL101: optimizer step after backward with no clipping in between."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_paths
from tests.conftest import codes, fix, lint

HEADER = """\
import torch
import torch.nn as nn
import torch.optim as optim
"""

# --- must be flagged ---------------------------------------------------------------------

FLAGGED = {
    "module_level_script": """
        model = nn.Linear(4, 1)
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        for x, y in loader:
            optimizer.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()  # <-
    """,
    "function_loop": """
        def train(model, loader, optimizer):
            for x, y in loader:
                loss = model(x).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()  # <-
    """,
    "agent_update_method": """
        class Agent:
            def __init__(self, net):
                self.net = net
                self.optimizer = optim.Adam(self.net.parameters())

            def learn(self, batch):
                loss = self.net(batch).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()  # <-
    """,
    "backward_in_helper_method": """
        class Learner:
            def _backprop(self, loss):
                self.optimizer.zero_grad()
                loss.backward()

            def update(self, batch):
                self._backprop(self.loss(batch))
                self.optimizer.step()  # <-
    """,
    "step_in_helper_method": """
        class Learner:
            def _apply(self):
                self.optimizer.step()  # <-
                self.optimizer.zero_grad()

            def update(self, batch):
                loss = self.loss(batch)
                loss.backward()
                self._apply()
    """,
    "only_critic_unclipped": """
        class DDPG:
            def update(self, critic_loss, actor_loss):
                self.critic_optimizer.zero_grad()
                critic_loss.backward()
                self.critic_optimizer.step()  # <-
                self.actor_optimizer.zero_grad()
                actor_loss.backward()
                nn.utils.clip_grad_norm_(self.actor.parameters(), 0.5)
                self.actor_optimizer.step()
    """,
    "clipped_the_wrong_model": """
        class DDPG:
            def __init__(self, actor, critic):
                self.actor, self.critic = actor, critic
                self.actor_opt = optim.Adam(self.actor.parameters())
                self.critic_opt = optim.Adam(self.critic.parameters())

            def update(self, actor_loss):
                actor_loss.backward()
                nn.utils.clip_grad_norm_(self.critic.parameters(), 1.0)
                self.actor_opt.step()  # <-
    """,
    "accelerate": """
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()  # <-
            lr_scheduler.step()
            optimizer.zero_grad()
    """,
    "lightning_manual_optimization": """
        class Model(LightningModule):
            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                opt.zero_grad()
                loss = self.compute_loss(batch)
                self.manual_backward(loss)
                opt.step()  # <-
    """,
    "amp_step_without_clip": """
        scaler = torch.amp.GradScaler("cuda")
        for x in loader:
            with torch.autocast("cuda"):
                loss = model(x).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # <-
            scaler.update()
    """,
    "clip_before_backward": """
        for x in loader:
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            loss = model(x).sum()
            loss.backward()
            optimizer.step()  # <-
    """,
    "optimizer_with_unusual_name": """
        trainer = optim.RMSprop(net.parameters(), lr=1e-4)
        loss.backward()
        trainer.step()  # <-
    """,
    "list_of_optimizers": """
        for agent_id in range(n_agents):
            losses[agent_id].backward()
            self.optimizers[agent_id].step()  # <-
    """,
    "loop_over_optimizers": """
        loss.backward()
        for opt in optimizers:
            opt.step()  # <-
    """,
    "dcgan_names": """
        errD.backward()
        optimizerD.step()  # <-
    """,
    "conditional_backward": """
        def update(loss, warmup):
            if not warmup:
                loss.backward()
            optimizer.step()  # <-
    """,
    "step_on_same_line": """
        loss.backward(); optimizer.step()  # <-
    """,
    "agent_method_called_from_loop": """
        class PPOAgent:
            def optimize(self):
                self.optimizer.step()  # <-

        def main():
            agent = PPOAgent()
            for update in range(10):
                loss = agent.loss()
                loss.backward()
                agent.optimize()
    """,
}


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_flags(name: str) -> None:
    code = HEADER + textwrap.dedent(FLAGGED[name])
    expected = [i + 1 for i, line in enumerate(code.splitlines()) if "# <-" in line]
    found = [d.line for d in lint(code, select="GL1")]
    assert found == expected
    assert {d.code for d in lint(code, select="GL1")} == {"GL101"}


# --- must not be flagged -----------------------------------------------------------------

CLEAN = {
    "env_and_scheduler_steps": """
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        scheduler.step()
        lr_scheduler.step()
        self.scheduler.step()
        swa_scheduler.step()
        obs, reward, done, info = env.step(action)
        envs.step(actions)
    """,
    "non_optimizer_steps_after_backward": """
        class Simulator:
            def run(self, loss):
                loss.backward()
                self.step()
                self.env.step()
                sim.step()
                model.step()
                scheduler.step()
                self.lr_scheduler.step()
    """,
    "scheduler_built_from_torch_optim": """
        sched = torch.optim.lr_scheduler.StepLR(opt, 10)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    """,
    "clip_spelled_fully": """
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
    """,
    "clip_imported_under_alias": """
        from torch.nn.utils import clip_grad_norm_ as cgn
        loss.backward()
        cgn(model.parameters(), 1.0)
        optimizer.step()
    """,
    "clip_by_value": """
        from torch.nn.utils import clip_grad_value_
        loss.backward()
        clip_grad_value_(model.parameters(), 100)
        optimizer.step()
    """,
    "deprecated_clip_grad_norm": """
        loss.backward()
        torch.nn.utils.clip_grad_norm(model.parameters(), 0.5)
        optimizer.step()
    """,
    "grad_clamp_loop": """
        loss.backward()
        for param in policy_net.parameters():
            param.grad.data.clamp_(-1, 1)
        optimizer.step()
    """,
    "accelerator_clip": """
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    """,
    "fabric_clip": """
        fabric.backward(loss)
        fabric.clip_gradients(model, optimizer, max_norm=2.0)
        optimizer.step()
    """,
    "lightning_clip_gradients": """
        class Model(LightningModule):
            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                self.manual_backward(self.loss(batch))
                self.clip_gradients(opt, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
                opt.step()
    """,
    "clip_behind_config_switch": """
        loss.backward()
        if args.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
    """,
    "own_clip_helper": """
        def clip_gradients(module, max_norm=0.5):
            torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)

        def update(actor, loss):
            loss.backward()
            clip_gradients(actor)
            actor_optimizer.step()
    """,
    "helper_named_like_a_clip": """
        from utils import clip_grads
        loss.backward()
        clip_grads(model)
        optimizer.step()
    """,
    "clip_in_helper_method": """
        class Agent:
            def _clip(self):
                nn.utils.clip_grad_norm_(self.net.parameters(), 10)

            def learn(self, loss):
                loss.backward()
                self._clip()
                self.optimizer.step()
    """,
    "lbfgs_closure": """
        def closure():
            optimizer.zero_grad()
            loss = model(x).sum()
            loss.backward()
            return loss
        optimizer.step(closure)
    """,
    "step_without_backward_in_view": """
        def apply_update(optimizer):
            optimizer.step()
    """,
    "backward_then_return": """
        def compute(loss):
            loss.backward()
            return loss.item()

        def other():
            optimizer.step()
    """,
    "meta_learning_manual_update": """
        grads = torch.autograd.grad(loss, params, create_graph=True)
        params = [p - lr * g for p, g in zip(params, grads)]
    """,
    "amp_correct_order": """
        scaler.scale(loss).backward()
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    """,
    "clip_every_iteration_of_loop": """
        for epoch in range(10):
            for x in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            scheduler.step()
    """,
    "gradient_accumulation": """
        for i, x in enumerate(loader):
            (model(x).sum() / accum).backward()
            if (i + 1) % accum == 0:
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
    """,
    "clip_of_a_parameter_named_differently_from_the_callers_variable": """
        def fit(model, loader, optimizer):
            for x in loader:
                model(x).sum().backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()

        regressor = nn.Linear(3, 1)
        opt = optim.Adam(regressor.parameters())
        fit(regressor, [], opt)
    """,
    "scaler_update_is_not_agent_update": """
        class Agent:
            def update(self):
                self.optimizer.step()

        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
    """,
}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_does_not_flag(name: str) -> None:
    assert lint(HEADER + textwrap.dedent(CLEAN[name]), select="GL1") == []


def test_message_names_the_backward_line() -> None:
    [diagnostic] = lint(HEADER + textwrap.dedent(FLAGGED["function_loop"]), select="GL101")
    assert "`loss.backward()` (line 9)" in diagnostic.message
    assert diagnostic.message.startswith("`optimizer.step()` runs after")
    assert (diagnostic.line, diagnostic.column, diagnostic.end_line) == (10, 9, 10)
    assert diagnostic.end_column == diagnostic.column + len("optimizer.step()")


def test_file_without_backward_is_not_analysed() -> None:
    # the cheap per-file pre-filter: no `backward` -> no analysis, no finding
    assert codes(HEADER + "optimizer.step()\n") == []


SIBLING_MODEL = """\
import torch.nn as nn


class QNetwork(nn.Module):
    def __init__(self, obs_dim, n_actions):
        super().__init__()
        self.q = nn.Linear(obs_dim, n_actions)
        self.pi = nn.Linear(obs_dim, n_actions)

    def forward(self, x):
        return self.q(x)
"""

SPINNING_UP_STYLE = """\
import torch
import networks as core


def train(env_fn, actor_critic=core.QNetwork, steps=10):
    ac = actor_critic(8, 2)
    {optimizer} = torch.optim.Adam({params}, lr=1e-3)
    for _ in range(steps):
        loss = ac(torch.randn(4, 8)).pow(2).mean()
        {optimizer}.zero_grad()
        loss.backward()
        {optimizer}.step()
"""


@pytest.mark.parametrize(("params", "subject"), [
    ("ac.parameters()", "core.QNetwork"),  # the class is the default of the parameter that builds it
    ("ac.pi.parameters()", "core.QNetwork"),  # a part of that model
])
def test_gl101_names_the_model_built_from_a_parameter_default(tmp_path: Path, params: str, subject: str) -> None:
    (tmp_path / "networks.py").write_text(SIBLING_MODEL)
    (tmp_path / "train.py").write_text(SPINNING_UP_STYLE.format(optimizer="q_optimizer", params=params))
    [diagnostic] = lint_paths([str(tmp_path / "train.py")], Settings(select=("GL101",), root=str(tmp_path)),
                              jobs=1)[0].diagnostics
    assert diagnostic.subject == subject


def test_gl101_subject_look_alikes_of_a_parameter_default(tmp_path: Path) -> None:
    (tmp_path / "networks.py").write_text(SIBLING_MODEL)
    no_default = SPINNING_UP_STYLE.replace("actor_critic=core.QNetwork", "actor_critic")
    not_a_model = SPINNING_UP_STYLE.replace("actor_critic=core.QNetwork", "actor_critic=core.make_q")
    for text in (no_default, not_a_model):
        (tmp_path / "train.py").write_text(text.format(optimizer="q_optimizer", params="ac.parameters()"))
        [diagnostic] = lint_paths([str(tmp_path / "train.py")], Settings(select=("GL101",), root=str(tmp_path)),
                                  jobs=1)[0].diagnostics
        assert diagnostic.subject is None  # still flagged, but no model class to name


# --- issue 16, class 6: a clip of the loss tensor clips nothing ---------------------------------

NOOP_CLIPS = {
    "receiver_of_backward": """
        class Agent:
            def __init__(self, policy):
                self.policy = policy
                self.optimizer = optim.Adam(self.policy.parameters(), lr=1e-3)

            def update(self, log_probs, returns):
                policy_loss = -(log_probs * returns).sum()
                self.optimizer.zero_grad()
                policy_loss.backward()
                nn.utils.clip_grad_norm_(policy_loss, 0.1)
                self.optimizer.step()  # <-
    """,
    "bound_to_a_loss_expression": """
        from torch.nn.utils import clip_grad_norm_
        import torch.nn.functional as F
        def update(model, optimizer, x, y, rewards):
            value_loss = F.mse_loss(model(x), y)
            total = value_loss + 0.5 * rewards.mean()
            total.backward()
            clip_grad_norm_(value_loss, 1.0)
            optimizer.step()  # <-
    """,
}

REAL_CLIPS = {
    "params_list_name": """
        params = list(model.parameters())
        optimizer = optim.Adam(params)
        for x in loader:
            loss = model(x).sum()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
    """,
    "self_params_attribute": """
        class Learner:
            def __init__(self, mac, mixer):
                self.params = list(mac.parameters())
                self.params += list(mixer.parameters())
                self.optimiser = optim.RMSprop(params=self.params, lr=5e-4)

            def train(self, loss):
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, 10)
                self.optimiser.step()
    """,
    "unresolvable_first_argument": """
        def update(optimizer, loss):
            loss.backward()
            nn.utils.clip_grad_norm_(get_params(), 1.0)
            optimizer.step()
    """,
    "parameter_of_the_function": """
        def update(parameters, optimizer, loss):
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
    """,
    "name_says_loss_but_holds_parameters": """
        loss_params = list(loss_fn.parameters())
        loss.backward()
        nn.utils.clip_grad_norm_(loss_params, 1.0)
        optimizer.step()
    """,
    "param_groups_generator": """
        loss.backward()
        nn.utils.clip_grad_norm_((p for g in optimizer.param_groups for p in g["params"]), 1.0)
        optimizer.step()
    """,
}


@pytest.mark.parametrize("name", sorted(NOOP_CLIPS))
def test_a_clip_of_the_loss_tensor_clips_nothing(name: str) -> None:
    code = HEADER + textwrap.dedent(NOOP_CLIPS[name])
    expected = [i + 1 for i, line in enumerate(code.splitlines()) if "# <-" in line]
    found = lint(code, select="GL101")
    assert [d.line for d in found] == expected
    [diagnostic] = found
    assert "clips nothing" in diagnostic.message and "pass the parameters instead" in diagnostic.message
    assert diagnostic.severity.value == "warning"  # the author meant to clip: never info


@pytest.mark.parametrize("name", sorted(REAL_CLIPS))
def test_a_clip_of_parameters_or_of_something_unknown_still_counts(name: str) -> None:
    assert lint(HEADER + textwrap.dedent(REAL_CLIPS[name]), select="GL1") == []


def test_the_fix_gives_the_noop_clip_the_parameters() -> None:
    text, result = fix(HEADER + textwrap.dedent(NOOP_CLIPS["receiver_of_backward"]), select="GL101")
    assert "nn.utils.clip_grad_norm_(self.policy.parameters(), 0.1)" in text
    assert "clip_grad_norm_(policy_loss" not in text
    assert text.count("clip_grad_norm_") == 1  # replaced, not a second clip
    again, _ = fix(text, select="GL101")
    assert again == text


# --- issue 16, class 6 and the labelling line: marginal cases move to info ------------------------

MARGINAL = {
    "sac_log_alpha": ("""
        class SAC:
            def __init__(self, actor):
                self.log_alpha = torch.zeros(1, requires_grad=True, device="cpu")
                self.alpha_optim = optim.Adam([self.log_alpha], lr=3e-4)

            def update(self, log_pi, rewards):
                alpha_loss = -(self.log_alpha * (log_pi + 1.0).detach()).mean()
                self.alpha_optim.zero_grad()
                alpha_loss.backward()
                self.alpha_optim.step()  # <-
    """, "`self.log_alpha`, not a module's parameters"),
    "alpha_module_of_one_parameter": ("""
        class Alpha(nn.Module):
            def __init__(self):
                super().__init__()
                self.log_alpha = nn.Parameter(torch.zeros(1))

        class Trainer:
            def __init__(self):
                self.log_alpha = Alpha()
                self.alpha_optimizer = optim.Adam(self.log_alpha.parameters(), lr=3e-4)

            def update(self, log_prob, rewards):
                alpha_loss = -(self.log_alpha() * log_prob.detach()).mean()
                alpha_loss.backward()
                self.alpha_optimizer.step()  # <-
    """, "`self.log_alpha`, not a module's parameters"),
    "huber_dqn_with_target_network": ("""
        import torch.nn.functional as F
        class DQNAgent:
            def __init__(self, net, target):
                self.dqn, self.dqn_target = net, target
                self.optimizer = optim.Adam(self.dqn.parameters())

            def _compute_dqn_loss(self, s, a, r, s2, done):
                q = self.dqn(s).gather(1, a)
                next_q = self.dqn_target(s2).max(dim=1, keepdim=True)[0].detach()
                target = r + 0.99 * next_q * (1 - done)
                return F.smooth_l1_loss(q, target)

            def update_model(self, batch):
                loss = self._compute_dqn_loss(*batch)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()  # <-
    """, "Huber/smooth-L1 TD loss"),
    "huber_module_loss": ("""
        class DQN:
            def __init__(self):
                self.loss_fn = nn.SmoothL1Loss()
                self.optimizer = optim.RMSprop(self.q_net.parameters())

            def learn(self, s, a, r, s2):
                q_next = self.target_net(s2).max(1)[0]
                loss = self.loss_fn(self.q_net(s).gather(1, a), r + 0.99 * q_next)
                loss.backward()
                self.optimizer.step()  # <-
    """, "Huber/smooth-L1 TD loss"),
    "demo_step_at_module_level": ("""
        obs = env.reset()
        loss = (policy(obs) * advantages).sum()
        loss.backward()
        optimizer.step()  # <-
    """, "a one-off step at module level"),
    "demo_step_under_main": ("""
        if __name__ == "__main__":
            opt = optim.Adam(learner.parameters(), lr=3e-4)
            loss = learner(torch.randn(8, 3, 256, 256))
            opt.zero_grad()
            loss.backward()
            opt.step()  # <-
    """, "a one-off step at module level"),
}

NOT_MARGINAL = {
    "a_hand_written_weight_matrix_is_not_a_lone_tensor": """
        W = nn.Parameter(torch.randn(64, 64))
        optimizer = optim.SGD([W], lr=0.1)
        for x, rewards in loader:
            loss = (torch.tanh(x @ W).sum(1) - rewards).pow(2).mean()
            loss.backward()
            optimizer.step()  # <-
    """,
    "log_alpha_with_the_actor": """
        class SAC:
            def __init__(self, actor):
                self.log_alpha = torch.zeros(1, requires_grad=True)
                self.optim = optim.Adam([self.log_alpha] + list(actor.parameters()))

            def update(self, loss, rewards):
                loss.backward()
                self.optim.step()  # <-
    """,
    "mse_dqn_with_target_network": """
        import torch.nn.functional as F
        class DQNAgent:
            def update(self, s, a, r, s2):
                q = self.q_net(s).gather(1, a)
                target = r + 0.99 * self.target_net(s2).max(1)[0].detach()
                loss = F.mse_loss(q, target)
                loss.backward()
                self.optimizer.step()  # <-
    """,
    "huber_without_target_network": """
        import torch.nn.functional as F
        class A2C:
            def update(self, values, returns):
                value_loss = F.smooth_l1_loss(values, returns)
                value_loss.backward()
                self.critic_optimizer.step()  # <-
    """,
    "module_level_step_in_a_loop": """
        obs = env.reset()
        for t in range(1000):
            loss = (policy(obs) * advantages).sum()
            loss.backward()
            optimizer.step()  # <-
    """,
}


def _flagged(code: str) -> list:
    found = lint(code, select="GL101")
    expected = [i + 1 for i, line in enumerate(code.splitlines()) if "# <-" in line]
    assert [d.line for d in found] == expected
    return found


@pytest.mark.parametrize("name", sorted(MARGINAL))
def test_marginal_cases_are_reported_at_info_and_say_why(name: str) -> None:
    snippet, seen = MARGINAL[name]
    [diagnostic] = _flagged(HEADER + textwrap.dedent(snippet))
    assert diagnostic.severity.value == "info"
    assert "marginal: " in diagnostic.message and seen in diagnostic.message, diagnostic.message
    if "not a module's parameters" in seen:
        assert diagnostic.fix is None  # never clip a lone scalar
    else:
        assert diagnostic.fix is not None


@pytest.mark.parametrize("name", sorted(NOT_MARGINAL))
def test_look_alikes_of_marginal_cases_stay_warnings(name: str) -> None:
    [diagnostic] = _flagged(HEADER + textwrap.dedent(NOT_MARGINAL[name]))
    assert diagnostic.severity.value == "warning", diagnostic.message
    assert "marginal" not in diagnostic.message


# --- issue 16: severity follows the risk factor the analysis sees --------------------------------

SUPERVISED = """
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 128)
            self.bn = nn.BatchNorm1d(128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.bn(self.fc1(x))))

    model = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(10):
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()  # <-
"""

RISKY = {
    "policy_gradient_loss": ("""
        def update(policy, optimizer, states, actions, advantages):
            log_probs = policy(states).log_prob(actions)
            loss = -(log_probs * advantages).mean()
            loss.backward()
            optimizer.step()  # <-
    """, "a policy-gradient loss weighted by advantages"),
    "td_target_with_rewards": ("""
        def update(critic, critic_target, optimizer, s, a, r, s2):
            target_q = r + 0.99 * critic_target(s2)
            loss = ((critic(s, a) - target_q.detach()) ** 2).mean()
            loss.backward()
            optimizer.step()  # <-
    """, "the loss is built from `target_q`"),
    "critic_optimizer_name": ("""
        def update(loss):
            loss.backward()
            critic_optimizer.step()  # <-
    """, "it updates `critic_optimizer`"),
    "file_steps_an_environment": ("""
        def train(model, optimizer, batch):
            loss = model(batch).pow(2).mean()
            loss.backward()
            optimizer.step()  # <-

        obs = env.reset()
        for t in range(100):
            obs, r, done, info = env.step(model(obs).argmax())
    """, "an RL objective, the file runs an environment, `env.reset()` at line 10"),
    "transformer_from_scratch": ("""
        model = nn.TransformerEncoder(nn.TransformerEncoderLayer(512, 8), num_layers=6)
        optimizer = optim.Adam(model.parameters(), lr=1e-4)
        for src in loader:
            loss = model(src).pow(2).mean()
            loss.backward()
            optimizer.step()  # <-
    """, "an attention model trained from scratch, `TransformerEncoder`"),
    "attention_inside_a_class_of_the_file": ("""
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nn.MultiheadAttention(256, 4)

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([Block() for _ in range(4)])

        model = Model()
        optimizer = optim.AdamW(model.parameters(), lr=3e-4)
        for x in loader:
            loss = model(x).mean()
            loss.backward()
            optimizer.step()  # <-
    """, "nn.MultiheadAttention in Block"),
    "deep_stack_flagged_by_gl201": ("""
        class Deep(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                    nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                    nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
                for layer in self.net:  # c = 1/2 * 64 * 0.25**2 = 2 per layer: GL201 shows growth, GL301 is silent
                    if isinstance(layer, nn.Linear):
                        nn.init.normal_(layer.weight, std=0.25)

            def forward(self, x):
                return self.net(x)

        model = Deep()
        optimizer = optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            loss = (model(x) - y).abs().mean()
            loss.backward()
            optimizer.step()  # <-
    """, "a deep unnormalised stack (GL201) in `Deep`"),
}

NO_RISK = {
    "small_supervised_classifier": SUPERVISED,
    "pretrained_transformer_fine_tuned": """
        import transformers
        model = transformers.BertForSequenceClassification.from_pretrained("bert-base-uncased")
        optimizer = optim.AdamW(model.parameters(), lr=2e-5)
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()  # <-
    """,
    "a_class_named_like_a_transformer_around_a_pretrained_model": """
        import transformers
        class Transformer(nn.Module):
            def __init__(self, transformer, output_dim):
                super().__init__()
                self.transformer = transformer
                self.fc = nn.Linear(768, output_dim)

        transformer = transformers.AutoModel.from_pretrained("bert-base-uncased")
        model = Transformer(transformer, 2)
        optimizer = optim.Adam(model.parameters(), lr=1e-5)
        for ids, label in loader:
            loss = nn.functional.cross_entropy(model(ids), label)
            loss.backward()
            optimizer.step()  # <-
    """,
    "gan_and_adversarial_words": """
        for real in loader:
            adv_loss = adversarial_loss(discriminator(generator(z)), valid)
            adv_loss.backward()
            optimizer_G.step()  # <-
    """,
    "cross_entropy_and_a_scheduler_gamma": """
        scheduler = optim.lr_scheduler.StepLR(optimizer, 10, gamma=args.gamma)
        for x, y in loader:
            loss = nn.CrossEntropyLoss()(model(x), y)
            loss.backward()
            optimizer.step()  # <-
    """,
}


@pytest.mark.parametrize("name", sorted(RISKY))
def test_a_visible_risk_factor_makes_a_warning_that_names_it(name: str) -> None:
    snippet, factor = RISKY[name]
    [diagnostic] = _flagged(HEADER + textwrap.dedent(snippet))
    assert diagnostic.severity.value == "warning"
    assert "one exploding gradient becomes one huge update (risk factor: " in diagnostic.message
    assert factor in diagnostic.message, diagnostic.message


@pytest.mark.parametrize("name", sorted(NO_RISK))
def test_no_risk_factor_is_info_with_the_reason(name: str) -> None:
    [diagnostic] = _flagged(HEADER + textwrap.dedent(NO_RISK[name]))
    assert diagnostic.severity.value == "info"
    assert diagnostic.message.endswith("(no exploding-gradient risk factor seen: a clip is still cheap insurance)")
    assert diagnostic.fix is not None  # info is still fixable: a clip is cheap


def test_the_severity_policy_is_documented_in_the_rule() -> None:
    from gradlint.cli import render_rule
    from gradlint.rules import RULES_BY_CODE
    from gradlint.rules._clipping import MARGINAL_CASES, NO_FACTOR, RISK_FACTORS

    text = render_rule(RULES_BY_CODE["GL101"])
    for case in MARGINAL_CASES:
        assert case.case in text and case.why in text
    for factor in RISK_FACTORS:
        assert factor in text
    assert NO_FACTOR in text


# --- issue 16, class 10: the fix's max_norm follows the algorithm ---------------------------------

THRESHOLDS = {
    "dqn_mse": (NOT_MARGINAL["mse_dqn_with_target_network"], "10.0", "DQN/Q-learning default"),
    "qmix_mixer": ("""
        class QLearner:
            def __init__(self, mac, mixer):
                self.mixer = mixer
                self.params = list(mac.parameters()) + list(mixer.parameters())
                self.optimiser = optim.RMSprop(params=self.params, lr=5e-4)

            def train(self, chosen_qs, targets, states):
                q_tot = self.mixer(chosen_qs, states)
                loss = ((q_tot - targets.detach()) ** 2).sum()
                loss.backward()
                self.optimiser.step()  # <-
    """, "10.0", "a value-decomposition mixer"),
    "ppo_ratio_clip": ("""
        def update(policy, optimizer, obs, act, old_logp, adv, eps=0.2):
            ratio = torch.exp(policy.log_prob(obs, act) - old_logp)
            loss = -torch.min(ratio * adv, torch.clamp(ratio, 1 - eps, 1 + eps) * adv).mean()
            loss.backward()
            optimizer.step()  # <-
    """, "0.5", "PPO/A2C default: a PPO ratio clip"),
    "a2c_advantages": (RISKY["policy_gradient_loss"][0], "0.5", "PPO/A2C default"),
    "supervised": (SUPERVISED, "1.0", "(the default)"),
    "ddpg_critic_is_not_q_learning": (RISKY["td_target_with_rewards"][0], "1.0", "(the default)"),
}


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_the_fix_chooses_max_norm_from_the_algorithm_and_says_which(name: str) -> None:
    snippet, value, why = THRESHOLDS[name]
    [diagnostic] = _flagged(HEADER + textwrap.dedent(snippet))
    assert f"max_norm={value})" in diagnostic.fix.edits[-1].content
    assert f"to {value} (" in diagnostic.fix.message and why in diagnostic.fix.message, diagnostic.fix.message


def test_a_configured_max_norm_overrides_the_algorithm() -> None:
    code = HEADER + textwrap.dedent(THRESHOLDS["dqn_mse"][0])
    [diagnostic] = lint(code, select="GL101", GL101={"max-norm": 2.5})
    assert "max_norm=2.5)" in diagnostic.fix.edits[-1].content
    assert "(the configured max-norm)" in diagnostic.fix.message


def test_choose_max_norm_is_one_function_with_an_optional_override() -> None:
    from gradlint.analysis.step_facts import StepFacts
    from gradlint.rules._clipping import choose_max_norm

    assert choose_max_norm(StepFacts(q_learning="x")).max_norm == 10.0
    assert choose_max_norm(StepFacts(policy_gradient="x")).max_norm == 0.5
    assert choose_max_norm(StepFacts()).max_norm == 1.0
    assert choose_max_norm(StepFacts(q_learning="x"), 3.0).max_norm == 3.0


# --- issue 16: steps the tune half showed were missed or misread --------------------------------

CALLER_CLIPS_HELPER_STEPS = """
    class Agent:
        def backprop(self, loss):
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)

        def apply_update(self):
            self.optimizer.step()

        def learn(self, batch):
            self.backprop(self.loss(batch))
            self.apply_update()
"""


def test_a_clip_before_a_helper_that_steps_is_carried_into_the_helper() -> None:
    assert lint(HEADER + textwrap.dedent(CALLER_CLIPS_HELPER_STEPS), select="GL1") == []
    unclipped = CALLER_CLIPS_HELPER_STEPS.replace("nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)", "pass")
    assert [d.line for d in lint(HEADER + textwrap.dedent(unclipped), select="GL1")] == [12]  # the step in the helper


PROJECT_OPTIMIZERS = {
    "shared_adam_subclass": """
        class SharedAdam(optim.Adam):
            def __init__(self, params, lr=1e-3):
                super().__init__(params, lr=lr)
                for group in self.param_groups:
                    for p in group["params"]:
                        self.state[p]["step"] = torch.zeros(1).share_memory_()

        class Worker:
            def __init__(self, net):
                self.shared = SharedAdam(net.parameters())

            def learn(self, loss, rewards):
                loss.backward()
                self.shared.step()  # <-
    """,
    "optimizer_base_class": """
        class SharedRMSprop(optim.Optimizer):
            pass

        shared = SharedRMSprop(model.parameters())
        for x in loader:
            model(x).sum().backward()
            shared.step()  # <-
    """,
    "numbered_optimizer_name": """
        def update(self, q_value_loss1):
            q_value_loss1.backward()
            self.soft_q_optimizer1.step()  # <-
    """,
}

NOT_OPTIMIZERS = {
    "a_class_of_the_file_that_is_not_an_optimizer": """
        class SharedCounter:
            def step(self):
                self.n += 1

        shared = SharedCounter()
        for x in loader:
            model(x).sum().backward()
            shared.step()
    """,
}


@pytest.mark.parametrize("name", sorted(PROJECT_OPTIMIZERS))
def test_optimizer_classes_of_the_project_and_numbered_names_step(name: str) -> None:
    _flagged(HEADER + textwrap.dedent(PROJECT_OPTIMIZERS[name]))


@pytest.mark.parametrize("name", sorted(NOT_OPTIMIZERS))
def test_other_classes_with_a_step_method_do_not(name: str) -> None:
    assert lint(HEADER + textwrap.dedent(NOT_OPTIMIZERS[name]), select="GL1") == []


SCHEDULED_OPTIM = """\
class ScheduledOptim:
    def __init__(self, optimizer, lr_mul, d_model, n_warmup_steps):
        self._optimizer = optimizer
        self.n_steps = 0

    def step_and_update_lr(self):
        self._update_learning_rate()
        self._optimizer.step()

    def step_lr_only(self):
        self.n_steps += 1

    def zero_grad(self):
        self._optimizer.zero_grad()
"""

WRAPPER_TRAIN = """\
import torch.optim as optim
from transformer.Optim import ScheduledOptim
from transformer.Models import Transformer


def train_epoch(model, data, optimizer):
    for batch in data:
        optimizer.zero_grad()
        loss = model(batch).sum()
        loss.backward()
        optimizer.{method}()


def main():
    transformer = Transformer(512)
    optimizer = ScheduledOptim(optim.Adam(transformer.parameters(), betas=(0.9, 0.98)), 2.0, 512, 4000)
    train_epoch(transformer, [], optimizer)
"""


def _wrapper_project(tmp_path: Path, method: str) -> Path:
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "__init__.py").write_text("")
    (tmp_path / "transformer" / "Optim.py").write_text(SCHEDULED_OPTIM)
    (tmp_path / "transformer" / "Models.py").write_text("class Transformer:\n    pass\n")
    (tmp_path / "train.py").write_text(WRAPPER_TRAIN.format(method=method))
    return tmp_path / "train.py"


def test_a_step_through_an_optimizer_wrapper_of_a_sibling_module(tmp_path: Path) -> None:
    path = _wrapper_project(tmp_path, "step_and_update_lr")
    [diagnostic] = lint_paths([str(path)], Settings(select=("GL101",), root=str(tmp_path)), jobs=1)[0].diagnostics
    assert (diagnostic.line, diagnostic.severity.value) == (11, "warning")
    assert "`Transformer`" in diagnostic.message  # a transformer trained from scratch
    # the wrapper has no param_groups: the fix reaches the optimizer it holds
    assert "optimizer._optimizer.param_groups" in diagnostic.fix.edits[-1].content


def test_a_wrapper_method_that_does_not_step_is_not_a_step(tmp_path: Path) -> None:
    path = _wrapper_project(tmp_path, "step_lr_only")
    assert lint_paths([str(path)], Settings(select=("GL101",), root=str(tmp_path)), jobs=1)[0].diagnostics == []


GAIL = """
    import torch.nn.functional as F
    def update_discriminator(discriminator, optimizer_discrim, expert, policy_sa):
        expert_out, policy_out = discriminator(expert), discriminator(policy_sa)
        discrim_loss = F.binary_cross_entropy(policy_out, torch.ones_like(policy_out)) + \\
            F.binary_cross_entropy(expert_out, torch.zeros_like(expert_out))
        optimizer_discrim.zero_grad()
        discrim_loss.backward()
        optimizer_discrim.step()  # <-

    state = env.reset()
    for t in range(1000):
        state, reward, done, _ = env.step(policy(state))
"""


def test_a_discriminator_bce_step_in_an_rl_file_is_info() -> None:
    [diagnostic] = _flagged(HEADER + textwrap.dedent(GAIL))
    assert diagnostic.severity.value == "info"


def test_the_same_file_with_a_squared_error_step_is_a_warning() -> None:
    code = HEADER + textwrap.dedent(GAIL).replace("F.binary_cross_entropy", "F.mse_loss")
    [diagnostic] = _flagged(code)
    assert diagnostic.severity.value == "warning" and "the file runs an environment" in diagnostic.message


# --- an input optimised through a network trains no network: not reported (tune-half labels) ----

STYLE_TRANSFER = """
    target = content.clone().requires_grad_(True).to(device)
    optimizer = optim.Adam([target], lr=0.003)
    for step in range(2000):
        loss = style_weight * style_loss(target) + content_loss(target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""


def test_an_optimizer_of_copies_of_data_is_not_reported() -> None:
    assert lint(HEADER + textwrap.dedent(STYLE_TRANSFER), select="GL1") == []
    data_copy = STYLE_TRANSFER.replace("content.clone().requires_grad_(True).to(device)", "x.data.clone().detach()")
    assert lint(HEADER + textwrap.dedent(data_copy), select="GL1") == []


@pytest.mark.parametrize("made", [
    "torch.zeros(1, requires_grad=True)",  # a learnt scalar: marginal, info
    "torch.randn(256, 256, requires_grad=True)",  # may be a hand-written layer's weight
])
def test_look_alikes_of_an_optimised_input_are_still_reported(made: str) -> None:
    code = STYLE_TRANSFER.replace("content.clone().requires_grad_(True).to(device)", made)
    assert [d.code for d in lint(HEADER + textwrap.dedent(code), select="GL1")] == ["GL101"]
    mixed = STYLE_TRANSFER.replace("Adam([target]", "Adam([target, self_w]").replace(
        "optimizer = ", f"self_w = {made}\n    optimizer = ")
    assert [d.code for d in lint(HEADER + textwrap.dedent(mixed), select="GL1")] == ["GL101"]
