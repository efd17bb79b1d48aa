"""The training analysis terminates by construction: files built to make a naive analysis
recurse without end finish in a number of steps that grows with the file, not exponentially.
Everything here counts analysis steps (`ctx.budget.spent`), never time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradlint import context
from gradlint.config import Settings
from gradlint.context import AnalysisBudget, FileContext
from gradlint.source import SourceFile
from tests.conftest import lint

COMMANDS = ("step", "reset", "reset_task", "render", "close")


def on_policy_shape(wrappers: int) -> str:
    """The shape of a vectorised-env module (marlbenchmark/on-policy's env_wrappers.py hung
    the old analysis): worker functions whose parameters (`remote`, `parent_remote`, a wrapper)
    call methods named like the file's own, many wrapper classes whose methods call each other
    and hand their arguments on, and no training code beyond the words `backward` and `.step(`."""
    parts = ['"""Vectorised environments (kept for backwards compatibility)."""',
             "from multiprocessing import Pipe, Process", "import numpy as np", "",
             "class Wrapped:", "    def __init__(self, fn):", "        self.fn = fn", "",
             "class VecBase:",
             "    def __init__(self, count, spaces):", "        self.count = count", "        self.spaces = spaces",
             "    def reset(self):", "        raise NotImplementedError",
             "    def step_async(self, actions):", "        raise NotImplementedError",
             "    def step_wait(self):", "        raise NotImplementedError",
             "    def step(self, actions):", "        self.step_async(actions)", "        return self.step_wait()",
             "    def close(self):", "        self.close_extras()",
             "    def close_extras(self):", "        pass",
             "    def render(self, mode):", "        return self.get_images(mode)",
             "    def get_images(self, mode):", "        return []", ""]
    for k in range(wrappers):
        parts += textwrap.dedent(f"""\
            def worker{k}(remote, parent_remote, wrapped):
                parent_remote.close()
                env = wrapped.fn()
                while True:
                    cmd, data = remote.recv()
                    if cmd == "step":
                        ob, reward, done, info = env.step(data)
                        if done:
                            ob = env.reset()
                        remote.send((ob, reward, done, info))
                    elif cmd == "reset":
                        remote.send(env.reset())
                    elif cmd == "reset_task":
                        remote.send(env.reset_task())
                    elif cmd == "render":
                        remote.send(env.render(mode=data))
                    elif cmd == "close":
                        env.close()
                        remote.close()
                        break
                    else:
                        relay{k}(remote, parent_remote, wrapped)

            def relay{k}(remote, parent_remote, wrapped):
                worker{(k + 1) % wrappers}(parent_remote, remote, wrapped)
                remote.close()


            class SubprocVec{k}(VecBase):
                def __init__(self, env_fns, spaces=None):
                    self.remotes, self.work_remotes = zip(*[Pipe() for _ in env_fns])
                    self.ps = [Process(target=worker{k}, args=(work, remote, Wrapped(fn)))
                               for (work, remote, fn) in zip(self.work_remotes, self.remotes, env_fns)]
                    for remote in self.work_remotes:
                        remote.close()
                    VecBase.__init__(self, len(env_fns), spaces)

                def step_async(self, actions):
                    for remote, action in zip(self.remotes, actions):
                        remote.send(("step", action))
                    self.waiting = True

                def step_wait(self):
                    results = [remote.recv() for remote in self.remotes]
                    return np.stack(results)

                def reset(self, choose=None):
                    for remote in self.remotes:
                        remote.send(("reset", choose))
                    return self.step_wait()

                def reset_task(self):
                    return self.reset(None)

                def render(self, mode="rgb_array"):
                    for remote in self.remotes:
                        remote.send(("render", mode))
                    return self.get_images(mode)

                def close(self):
                    if self.waiting:
                        self.step_wait()
                    for remote in self.remotes:
                        remote.send(("close", None))
                        worker{k}(remote, remote, Wrapped(None))
                    for p in self.ps:
                        p.join()

        """).splitlines()
    return "\n".join(parts) + "\n"


def mutual_helpers(count: int) -> str:
    """Hundreds of helpers that call one another (cycles everywhere), pass their parameters on
    in shuffled order, call methods on them, and step and backward here and there."""
    lines = ["import torch", "", "class Agent:", "    def update(self, a, b):", "        helper0(a, b, self)", ""]
    for i in range(count):
        lines += [f"def helper{i}(a, b, opt):",
                  f"    helper{(i * 7 + 1) % count}(b, a, opt)",
                  f"    a.helper{(i * 13 + 5) % count}(opt, b)",
                  f"    if b:",
                  f"        helper{(i + 1) % count}(opt, b, a)",
                  f"    b.update(a, opt)"]
        if i % 5 == 0:
            lines.append("    a.backward()")
        if i % 7 == 0:
            lines.append("    opt.step()")
        lines.append("")
    lines += ["optimizer = torch.optim.Adam(model.parameters())", "helper0(loss, agent, optimizer)", ""]
    return "\n".join(lines)


def call_chain(length: int) -> str:
    """A backward in the first of `length` helpers, each calling the next with its arguments,
    and the step in the last: the finding needs the whole chain followed."""
    lines = ["import torch", "", "def link0(model, opt, x):", "    model(x).sum().backward()", "    link1(model, opt, x)", ""]
    for i in range(1, length):
        lines += [f"def link{i}(model, opt, x):", f"    link{i + 1}(model, opt, x)" if i + 1 < length else "    opt.step()", ""]
    lines += ["net = torch.nn.Linear(2, 1)", "optimizer = torch.optim.Adam(net.parameters())",
              "link0(net, optimizer, torch.ones(2))", ""]
    return "\n".join(lines)


def elif_ladder(arms: int) -> str:
    """One loop holding a long `if/elif` ladder whose tests call the file's own helper and
    whose arms backward and step, with or without a clip in between (`# <-`: flagged)."""
    lines = ["import torch", "", "def check(cmd, k):", "    return cmd == k", "",
             "def train(model, optimizer, commands):", "    for cmd in commands:", "        if check(cmd, -1):",
             "            pass"]
    for k in range(arms):
        lines.append(f"        elif check(cmd, {k}):" if k % 2 == 0 else f"        elif cmd == {k}:")
        lines.append(("            model(cmd).sum().backward(); optimizer.step()  # <-",
                      "            model(cmd).sum().backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); "
                      "optimizer.step()",
                      "            pass")[k % 3])
    lines += ["        else:", "            optimizer.zero_grad()", ""]
    return "\n".join(lines)


def nested_loops(depth: int, optimizers: int) -> str:
    """Many optimizers, stepped inside `depth` nested loops (with breaks and continues) after a
    backward that every other loop level clips, and the innermost does not."""
    lines = ["import torch", "", "def train(models, data):"]
    for i in range(optimizers):
        lines.append(f"    opt{i} = torch.optim.SGD(models[{i}].parameters(), lr=0.1)")
    indent = "    "
    for level in range(depth):
        lines.append(f"{indent}for x{level} in data:")
        indent += "    "
        lines.append(f"{indent}models[0](x{level}).sum().backward()")
        if (depth - level) % 2 == 0:  # the innermost level does not clip
            lines.append(f"{indent}torch.nn.utils.clip_grad_norm_(models[0].parameters(), 1.0)")
        lines.append(f"{indent}if x{level} is None:")
        lines.append(f"{indent}    {'continue' if level % 3 else 'break'}")
    for i in range(optimizers):
        lines.append(f"{indent}opt{i}.step()")
    lines.append("")
    return "\n".join(lines)


def _analyse(text: str) -> FileContext:
    source = SourceFile("generated.py", text)
    ctx = FileContext.parse(source, Settings())
    ctx.training  # noqa: B018 - builds the skeleton and runs the flow pass
    assert ctx.budget.spent <= ctx.budget.limit
    return ctx


def _spent(text: str) -> int:
    return _analyse(text).budget.spent


def _assert_polynomial(small: int, large: int, factor: float) -> None:
    """Doubling the input multiplies the steps by at most `factor` (4 = quadratic)."""
    assert small > 0
    assert large <= factor * small, (small, large)


def test_the_on_policy_shape_finishes_in_steps_that_grow_with_the_file() -> None:
    small, large = _spent(on_policy_shape(8)), _spent(on_policy_shape(16))
    _assert_polynomial(small, large, 4.5)
    text = on_policy_shape(16)
    assert large < 40 * len(text.splitlines())  # a few dozen steps a line, not a search
    assert lint(text, select="GL1") == []  # no training code: nothing to report


@pytest.mark.parametrize("make, sizes", [
    (mutual_helpers, (150, 300)),
    (call_chain, (200, 400)),
    (elif_ladder, (500, 1000)),
])
def test_generated_adversarial_files_finish_in_bounded_steps(make, sizes) -> None:
    small, large = (_spent(make(n)) for n in sizes)
    _assert_polynomial(small, large, 4.5)


def test_nested_loops_cost_the_sum_of_their_iterations_not_the_product() -> None:
    small, large = _spent(nested_loops(12, 20)), _spent(nested_loops(24, 20))
    _assert_polynomial(small, large, 2.5)  # linear in the depth (a product would be 2 ** 12 times)


def test_what_the_adversarial_files_report_is_still_right() -> None:
    # the chain is followed as deep as calls are followed: the step in the last helper is
    # reached after the backward in the first
    assert [d.code for d in lint(call_chain(20), select="GL1")] == ["GL101"]
    # the ladder: the steps behind a clip-free path are flagged, one finding per step
    ladder = elif_ladder(12)
    flagged = {d.line for d in lint(ladder, select="GL1")}
    expected = {i + 1 for i, line in enumerate(ladder.splitlines()) if "# <-" in line}
    assert len(expected) == 4 and flagged == expected
    # every optimizer in the innermost loop is stepped after an unclipped backward
    assert len(lint(nested_loops(6, 4), select="GL1")) == 4


def clip_fan_in(n: int) -> str:
    """n callers, each clipping a model of its own, call one chain of n helpers that ends in a
    step: the clip state goes into the helpers' summaries, one per distinct entry state."""
    parts = ["import torch", ""]
    for k in range(n):
        parts += [f"def caller{k}(loss):", "    loss.backward()",
                  f"    torch.nn.utils.clip_grad_norm_(model{k}.parameters(), 1.0)", "    helper0()", ""]
    for k in range(n):
        parts += [f"def helper{k}():", f"    helper{k + 1}()" if k + 1 < n else "    optimizer.step()", ""]
    return "\n".join(parts)


def test_clip_states_carried_into_helpers_cost_at_most_callers_times_helpers() -> None:
    small, large = _spent(clip_fan_in(20)), _spent(clip_fan_in(40))
    _assert_polynomial(small, large, 4.5)
    # each caller clipped a model the optimizer is not known to update: its clip counts
    assert lint(clip_fan_in(8), select="GL1") == []


def test_a_file_over_the_budget_gets_one_error_line_and_the_others_are_linted(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    (tmp_path / "a_bad.py").write_text("import torch\nloss.backward()\noptimizer.step()\n")
    (tmp_path / "b_heavy.py").write_text(mutual_helpers(60))
    (tmp_path / "c_bad.py").write_text("import torch\nloss.backward()\noptimizer.step()\n")
    # a budget the small files fit in and the generated one does not
    monkeypatch.setattr(context, "BUDGET_BASE", 300)
    monkeypatch.setattr(context, "BUDGET_PER_CHARACTER", 0)
    assert AnalysisBudget.for_text("").limit == 300
    result = CliRunner().invoke(main, ["check", "--isolated", "--no-cache", "--select", "GL1", str(tmp_path)])
    errors = [line for line in result.stderr.splitlines() if line.startswith("gradlint: error:")]
    assert errors == [f"gradlint: error: {tmp_path / 'b_heavy.py'}: analysis budget exceeded"]
    assert result.exit_code == 2
    assert f"{tmp_path / 'a_bad.py'}:3:1: GL101" in result.stdout
    assert f"{tmp_path / 'c_bad.py'}:3:1: GL101" in result.stdout
