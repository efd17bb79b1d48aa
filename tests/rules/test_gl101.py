"""GL101: optimizer step after backward with no clipping in between."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_paths
from tests.conftest import codes, lint

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
