"""`gradlint run`: overhead on a CleanRL-style PPO script, and its verdicts against torch-measured
truth in both directions.

    python benchmarks/bench_run.py [--repeats 5] [--skip-truth] [--skip-overhead]

Overhead: the script times its own training loop (rollouts and updates, after start-up) with
`time.perf_counter` and `time.process_time`; plain `python` and `gradlint run` runs are
interleaved and the medians compared. Target: <= 5 % of the step time at the default sampling.

Truth: each case is run with `gradlint run --steps 200` for several seeds; the script also
prints what torch measured on its own (the largest gradient norm, non-finite values), so the
verdict is checked against the same run's truth.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

# CleanRL's ppo.py (4 envs x 128 steps, 4 epochs x 4 minibatches, Adam 2.5e-4, clip 0.5), on a
# numpy CartPole so that it needs no gym; 13 iterations = 208 optimizer steps.
PPO = '''
import sys, time
import numpy as np
import torch
import torch.nn as nn
from torch.distributions.categorical import Categorical


class CartPoles:
    """Vectorised CartPole dynamics (gymnasium's equations), numpy only."""
    def __init__(self, n, seed):
        self.n, self.rng = n, np.random.default_rng(seed)
        self.state = self.rng.uniform(-0.05, 0.05, (n, 4))

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(action == 1, 10.0, -10.0)
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + 0.05 * theta_dot ** 2 * sin) / 1.1
        theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos ** 2 / 1.1))
        x_acc = temp - 0.05 * theta_acc * cos / 1.1
        self.state = np.stack([x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot,
                               theta_dot + 0.02 * theta_acc], 1)
        done = (np.abs(self.state[:, 0]) > 2.4) | (np.abs(self.state[:, 2]) > 0.2095)
        self.state[done] = self.rng.uniform(-0.05, 0.05, (done.sum(), 4))
        return self.state.astype(np.float32), np.ones(self.n, np.float32), done


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self):
        super().__init__()
        self.critic = nn.Sequential(layer_init(nn.Linear(4, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                    layer_init(nn.Linear(64, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(4, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                   layer_init(nn.Linear(64, 2), std=0.01))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        probs = Categorical(logits=self.actor(x))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


torch.manual_seed(1)
torch.set_num_threads(1)
num_envs, num_steps, iterations = 4, 128, 13
envs = CartPoles(num_envs, 1)
agent = Agent()
optimizer = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)
obs = torch.zeros((num_steps, num_envs, 4)); actions = torch.zeros((num_steps, num_envs))
logprobs = torch.zeros((num_steps, num_envs)); rewards = torch.zeros((num_steps, num_envs))
dones = torch.zeros((num_steps, num_envs)); values = torch.zeros((num_steps, num_envs))
next_obs = torch.tensor(envs.state, dtype=torch.float32); next_done = torch.zeros(num_envs)
start, cpu = time.perf_counter(), time.process_time()
for iteration in range(iterations):
    for step in range(num_steps):
        obs[step], dones[step] = next_obs, next_done
        with torch.no_grad():
            action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step] = value.flatten()
        actions[step], logprobs[step] = action, logprob
        o, r, d = envs.step(action.numpy())
        rewards[step] = torch.tensor(r)
        next_obs, next_done = torch.tensor(o), torch.tensor(d, dtype=torch.float32)
    with torch.no_grad():
        next_value = agent.get_value(next_obs).reshape(1, -1)
        advantages = torch.zeros_like(rewards); lastgaelam = 0
        for t in reversed(range(num_steps)):
            nextnonterminal = 1.0 - (next_done if t == num_steps - 1 else dones[t + 1])
            nextvalues = next_value if t == num_steps - 1 else values[t + 1]
            delta = rewards[t] + 0.99 * nextvalues * nextnonterminal - values[t]
            advantages[t] = lastgaelam = delta + 0.99 * 0.95 * nextnonterminal * lastgaelam
        returns = advantages + values
    b_obs, b_logprobs, b_actions = obs.reshape(-1, 4), logprobs.reshape(-1), actions.reshape(-1)
    b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
    b_inds = np.arange(num_steps * num_envs)
    for epoch in range(4):
        np.random.shuffle(b_inds)
        for begin in range(0, len(b_inds), 128):
            mb = b_inds[begin:begin + 128]
            _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions.long()[mb])
            ratio = (newlogprob - b_logprobs[mb]).exp()
            adv = b_advantages[mb]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)).mean()
            v_loss = 0.5 * ((newvalue.view(-1) - b_returns[mb]) ** 2).mean()
            loss = pg_loss - 0.01 * entropy.mean() + 0.5 * v_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            optimizer.step()
print(f"TIMING wall={time.perf_counter() - start:.6f} cpu={time.process_time() - cpu:.6f} steps={iterations * 16}")
'''

DEEP_DEFAULT = '''
import sys
import torch
import torch.nn as nn

torch.manual_seed(int(sys.argv[1]))


class DeepReLUMLP(nn.Module):
    def __init__(self, in_dim=32, hidden=256, depth=20, out_dim=1):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


model = DeepReLUMLP()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for step in range(200):
    loss = model(torch.randn(64, 32)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    print(f"TRUTH {float(norm)!r}")
    optimizer.step()
'''

RELU_RNN = '''
import sys
import torch
import torch.nn as nn

torch.manual_seed(int(sys.argv[1]))


class ReLURNN(nn.Module):
    def __init__(self, input_size=16, hidden=64):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden, nonlinearity="relu")
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1])


model = ReLURNN()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(200):
    x = torch.randn(200, 16, 16)  # T = 200
    loss = (model(x) - x[:5].mean((0, 2)).unsqueeze(1)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    print(f"TRUTH {float(norm)!r}")
    optimizer.step()
'''

EXPLODING = '''
import sys
import torch
import torch.nn as nn

torch.manual_seed(int(sys.argv[1]))


class WideMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256),
                                 nn.ReLU(), nn.Linear(256, 1))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=1.0)

    def forward(self, x):
        return self.net(x)


model = WideMLP()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(200):
    loss = (model(torch.randn(64, 32)) - 1).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    print(f"TRUTH {float(norm)!r}")
    optimizer.step()
'''


def _write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    Path(path).write_text(textwrap.dedent(text))
    return path


def _timing(stdout: str) -> tuple[float, float]:
    match = re.search(r"TIMING wall=([\d.]+) cpu=([\d.]+)", stdout)
    if not match:
        raise RuntimeError(f"no timing in: {stdout[-500:]}")
    return float(match.group(1)), float(match.group(2))


def overhead(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        script = _write(directory, "ppo.py", PPO)
        plain, run = [], []
        for _ in range(repeats):  # interleaved, so that a change in the machine's load hits both
            out = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True, env=ENV)
            plain.append(_timing(out.stdout))
            out = subprocess.run([sys.executable, "-m", "gradlint", "run", "--steps", "1000", script],
                                 capture_output=True, text=True, env=ENV, cwd=directory)
            run.append(_timing(out.stdout))
        steps = 13 * 16
        # Other jobs on the machine only ever add time, so the fastest of the interleaved runs is
        # the estimate of each; the medians are printed too, to show how noisy the machine was.
        for index, label in ((0, "wall"), (1, "CPU")):
            base, measured = min(t[index] for t in plain), min(t[index] for t in run)
            base_median = statistics.median(t[index] for t in plain)
            measured_median = statistics.median(t[index] for t in run)
            print(f"{label:>4}: plain {base / steps * 1e3:.2f} ms/step, under gradlint run {measured / steps * 1e3:.2f} "
                  f"ms/step: overhead {100 * (measured / base - 1):+.1f} % (fastest runs; medians "
                  f"{100 * (measured_median / base_median - 1):+.1f} %)   target <= 5 %", flush=True)
        print(f"({repeats} interleaved runs each; {steps} optimizer steps per run: CleanRL PPO, 4 envs x 128 "
              "steps, 16 updates per iteration)")


def truth(seeds: int, steps: int = 200, only: str = "") -> None:
    cases = (("deep default-init ReLU MLP, SGD 0.01, pow(2).mean()", DEEP_DEFAULT, "not confirmed"),
             ("ReLU RNN, Adam 1e-3, T = 200", RELU_RNN, "not confirmed"),
             ("std=1 init on width 256, SGD 0.1", EXPLODING, "confirmed"))
    with tempfile.TemporaryDirectory() as directory:
        for title, text, expected in cases:
            if only and only not in title:
                continue
            script = _write(directory, "case.py", text)
            rows = []
            for seed in range(seeds):
                report_path = os.path.join(directory, "report.json")
                out = subprocess.run([sys.executable, "-m", "gradlint", "run", "--steps", str(steps), "--format", "json", "-o",
                                      report_path, script, str(seed)], capture_output=True, text=True, env=ENV,
                                     cwd=directory)
                report = json.loads(Path(report_path).read_text())
                true_norms = [float(v) for v in re.findall(r"TRUTH (\S+)", out.stdout)]
                finite = [v for v in true_norms if v == v and v != float("inf")]
                [verdict] = [f for f in report["findings"] if f["code"] in ("GL101", "GL103")]
                rows.append((seed, verdict["verdict"], verdict["figures"].get("max_grad_norm"),
                             verdict["figures"].get("largest_jump_vs_median"), max(finite) if finite else None,
                             len(true_norms) - len(finite)))
            verify = subprocess.run([sys.executable, "-m", "gradlint", "verify", "--format", "json", script],
                                    capture_output=True, text=True, env=ENV, cwd=directory)
            verified = [f["verdict"] for model in json.loads(verify.stdout or "[]") for f in model["findings"]
                        if f["code"] in ("GL101", "GL103")]
            print(f"\n{title}: expected {expected}; `gradlint verify` GL101/GL103: {verified}")
            print(f"  {'seed':>4} {'gradlint run':>14} {'max norm (run)':>15} {'largest jump':>13} "
                  f"{'max norm (torch)':>17} {'non-finite (torch)':>19}")
            for seed, verdict, top, jump, true_top, nonfinite in rows:
                show = (lambda v: f"{v:.3g}" if isinstance(v, float) else str(v))
                print(f"  {seed:>4} {verdict:>14} {show(top):>15} {show(jump):>13} {show(true_top):>17} {nonfinite:>19}",
                      flush=True)
            agree = sum(1 for row in rows if row[1] == expected)
            print(f"  verdicts matching torch's truth: {agree}/{len(rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--case", default="", help="only the truth cases whose title contains this")
    parser.add_argument("--skip-truth", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    if not args.skip_overhead:
        overhead(args.repeats)
    if not args.skip_truth:
        truth(args.seeds, args.steps, args.case)


if __name__ == "__main__":
    main()
