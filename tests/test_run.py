"""`gradlint run`: the user's own script under torch's hooks, stopped after N steps, and each
finding's verdict from what the real run measured, in both directions. Tiny models, few steps,
no assertion on speed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gradlint.config import Settings, max_norms_from_run_report
from gradlint.diagnostics import Diagnostic
from gradlint.run.matching import recommend_max_norm, verdicts
from tests.conftest import ROOT

torch = pytest.importorskip("torch")

from gradlint.run.recorder import Recorder, StopRun  # noqa: E402

HANG_GUARD = 600  # seconds: only against a hang, never a speed assertion


def gradlint_run(tmp_path: Path, script: str, *args: str, cwd: Path | None = None, name: str = "train.py",
                 options: tuple[str, ...] = ("--steps", "20")) -> tuple[subprocess.CompletedProcess, dict]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(script))
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "gradlint", "run", *options, "--format", "json", "-o", str(out),
                             str(path), *args], capture_output=True, text=True, cwd=cwd or tmp_path, env=env,
                            timeout=HANG_GUARD)
    report = json.loads(out.read_text()) if out.exists() else {}
    return result, report


def by_code(report: dict) -> dict[str, dict]:
    return {f["code"]: f for f in report["findings"]}


# --- the recorder, in process ----------------------------------------------------------------


def test_recorder_measures_the_norm_the_optimizer_sees_the_loss_and_the_pre_clip_norm() -> None:
    recorder = Recorder(steps=4).install()
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1); built_at = sys._getframe().f_lineno  # noqa: E702
        x = torch.randn(16, 3)
        expected_pre, expected_loss, expected_post = [], [], []
        with pytest.raises(StopRun, match="--steps 4"):
            for _ in range(10):
                loss = model(x).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                total = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
                expected_pre.append(float(total))
                expected_loss.append(float(loss.detach()))
                expected_post.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))))
                optimizer.step(); stepped_at = sys._getframe().f_lineno  # noqa: E702
    finally:
        recorder.uninstall()
    [record] = recorder.measurements()["optimizers"]
    assert record["steps"] == 4 and record["class"] == "SGD"
    assert record["site"] == {"file": __file__, "line": built_at}
    assert record["step_sites"] == [{"file": __file__, "line": stepped_at, "count": 4}]
    assert record["pre_clip"] == pytest.approx(expected_pre[:4], rel=1e-5)
    assert record["norms"] == pytest.approx(expected_post[:4], rel=1e-5)  # what step() saw: after the clip
    assert record["loss"] == pytest.approx(expected_loss[:4], rel=1e-6)
    assert record["layers"] == ["0", "2"] and record["clip"]["max_norm"] == 0.05


def test_the_stop_is_not_swallowed_by_the_scripts_except_exception_and_hooks_come_off() -> None:
    originals = (torch.optim.Optimizer.__init__, torch.Tensor.backward, torch.nn.utils.clip_grad_norm_,
                 torch.nn.utils.clip_grad.clip_grad_norm_, torch.amp.GradScaler.step)
    recorder = Recorder(steps=3).install()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    steps = 0
    try:
        with pytest.raises(StopRun):
            for _ in range(10):
                try:
                    model(torch.randn(4, 2)).sum().backward()
                    optimizer.step()
                    steps += 1
                except Exception:  # noqa: BLE001 - what training scripts do
                    pass
    finally:
        recorder.uninstall()
    assert steps == 3
    assert (torch.optim.Optimizer.__init__, torch.Tensor.backward, torch.nn.utils.clip_grad_norm_,
            torch.nn.utils.clip_grad.clip_grad_norm_, torch.amp.GradScaler.step) == originals
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()  # no hook left: no StopRun


class Scaled(torch.nn.Module):
    """Divides by 255 inside forward: the first layer sees [0, 1] although the model gets uint8."""

    def __init__(self, divide: bool) -> None:
        super().__init__()
        self.divide = divide
        self.fc = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(x.float() / 255.0 if self.divide else x.float())


def test_what_reaches_the_first_layer_per_feature() -> None:
    recorder = Recorder(steps=100).install()
    try:
        torch.manual_seed(0)
        frames = torch.randint(0, 256, (32, 4), dtype=torch.uint8)
        models = {divide: Scaled(divide) for divide in (True, False)}
        wide = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        optimizer = torch.optim.SGD([p for m in (*models.values(), wide) for p in m.parameters()], lr=0.0)
        for _ in range(3):
            loss = sum(m(frames).sum() for m in models.values())
            loss = loss + wide(torch.randn(32, 3) * torch.tensor([1.0, 300.0, 0.01])).sum()
            loss.backward()
            optimizer.step()
    finally:
        recorder.uninstall()
    from gradlint.run.matching import feature_data

    found = {(m["class"], m.get("path")): m for m in recorder.measurements()["models"]}
    assert len(found) == 2 and ("Sequential", "") in found  # the two Scaled models share a class
    scaled = [m for m in recorder.measurements()["models"] if m["class"] == "Scaled"]
    assert len(scaled) == 2 and all(m["model_input"]["dtype"] == "torch.uint8" for m in scaled)
    divided = [feature_data([m]) for m in scaled]
    assert sorted(d["max"] <= 1.0 for d in divided) == [False, True]
    raw = next(d for d in divided if d["max"] > 1)
    assert raw["integer_valued"] and raw["min"] >= 0 and raw["max"] <= 255
    features = feature_data([found[("Sequential", "")]])["features"]
    assert features[1]["scale"] == pytest.approx(300, rel=0.25)  # the raw-scale feature, measured
    assert features[0]["scale"] == pytest.approx(1.0, abs=0.5) and features[2]["scale"] < 0.1


def test_amp_clip_before_unscale_and_skipped_steps_are_measured() -> None:
    recorder = Recorder(steps=6).install()
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        x = torch.randn(8, 4)
        for step in range(4):
            optimizer.zero_grad()
            scale = float("inf") if step == 2 else 1.0  # one overflowing batch: the scaler skips that step
            scaler.scale(model(x * scale).pow(2).mean()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # GL102: still scaled
            scaler.step(optimizer)
            scaler.update()
    finally:
        recorder.uninstall()
    [record] = recorder.measurements()["optimizers"]
    assert record["steps"] == 3 and record["amp"]["skipped"] == 1 and record["amp"]["skipped_at"] == [2]
    # every clip ran on scaled gradients, the skipped step's too; the last scale, halved by the overflow
    assert record["clip"]["on_scaled_gradients"] == 4 and record["clip"]["loss_scale"] == 512.0
    from gradlint.verify.verdict import clip_verdict

    verdict = clip_verdict("GL102", record)
    assert verdict.verdict == "confirmed" and verdict.figures["effective_max_norm"] == pytest.approx(1 / 512)


# --- verdict rules on measured figures (no process) --------------------------------------------


def _finding(code: str, line: int, subject: str | None = None, path: str = "/p/train.py") -> Diagnostic:
    return Diagnostic(path, line, 1, line, 10, code, "message", subject=subject)


def _run(norms, loss=None, pre_clip=None, site=("/p/train.py", 9)) -> dict:
    return {"steps": len(norms), "optimizers": [{
        "name": "train.py:3 Adam", "steps": len(norms), "norms": norms, "pre_clip": pre_clip or [None] * len(norms),
        "loss": loss or [None] * len(norms), "step_sites": [{"file": site[0], "line": site[1], "count": len(norms)}],
        "clip": {"calls": 0}}], "models": []}


def test_loop_verdicts_in_both_directions_and_never_without_the_step() -> None:
    steady = [1.0 + 0.1 * (i % 5) for i in range(60)]
    spiky = steady[:30] + [40.0] + steady[31:]
    nan = steady[:12] + [None] * 5
    diverging = [1.0] * 40
    growing_loss = [10.0 ** (i / 5) for i in range(40)]
    cases = {"steady": (_run(steady), "not confirmed"), "spike": (_run(spiky), "confirmed"),
             "nan": (_run(nan), "confirmed"), "loss": (_run(diverging, loss=growing_loss), "confirmed")}
    for name, (data, expected) in cases.items():
        [found] = verdicts([_finding("GL101", 9)], data)
        assert found.verdict.verdict == expected, (name, found.verdict.reason)
    [spike] = verdicts([_finding("GL101", 9)], cases["spike"][0])
    assert "step 30" in spike.verdict.reason and spike.verdict.figures["largest_jump_vs_median"] > 10
    [elsewhere] = verdicts([_finding("GL101", 12)], cases["spike"][0])  # a step that never ran
    assert elsewhere.verdict.verdict == "not verified" and "never ran" in elsewhere.verdict.reason
    # a clipped optimizer is judged on the norm before the clip, not on the clipped one
    clipped = _run([0.5] * 60, pre_clip=spiky)
    assert verdicts([_finding("GL101", 9)], clipped)[0].verdict.verdict == "confirmed"


def test_the_measured_max_norm_is_the_90th_percentile_of_healthy_norms() -> None:
    norms = [0.1 * (i % 10 + 1) for i in range(100)] + [None] + [500.0] + [0.5] * 10
    recommendation = recommend_max_norm({"norms": norms})
    assert recommendation["max_norm"] == 0.9 and recommendation["percentile"] == 90
    assert recommendation["healthy_steps"] == 110  # the NaN and the spike are left out
    assert recommend_max_norm({"norms": [1.0] * 5})["max_norm"] is None  # too few steps to measure


def test_a_run_report_gives_the_clipping_fix_a_max_norm_per_optimizer_step(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("pass\n")
    report = {"optimizers": [
        {"recommendation": {"max_norm": 0.42}, "step_sites": [{"file": str(script), "line": 9, "count": 3}]},
        {"clipped": True, "step_sites": [{"file": str(script), "line": 20, "count": 3}]}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(report))
    settings = Settings(max_norm_at=max_norms_from_run_report(str(path)))
    assert settings.max_norm_for(str(script), 9) == 0.42
    assert settings.max_norm_for(str(script), 20) is None and settings.max_norm_for(str(script), 10) is None
    assert Settings().fingerprint() != settings.fingerprint()  # a cached result never hides it


def test_check_fix_with_a_run_report_inserts_the_measured_max_norm(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""\
        import torch
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            model(torch.randn(4, 2)).sum().backward()
            optimizer.step()
    """))
    report = tmp_path / "run.json"
    report.write_text(json.dumps({"optimizers": [{"recommendation": {"max_norm": 0.42},
                                                  "step_sites": [{"file": str(script), "line": 6, "count": 3}]}]}))
    result = CliRunner().invoke(main, ["check", "--fix", "--select", "GL101", "--run-report", str(report), str(script)])
    assert "max_norm=0.42" in script.read_text(), result.output
    # without the report, the documented default for what the analysis sees
    script.write_text(script.read_text().replace("    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.42)\n", ""))
    CliRunner().invoke(main, ["check", "--fix", "--select", "GL101", str(script)])
    assert "max_norm=1.0" in script.read_text()


def test_a_bad_run_report_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    (tmp_path / "t.py").write_text("x = 1\n")
    result = CliRunner().invoke(main, ["check", "--run-report", str(bad), str(tmp_path / "t.py")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--run-report" in result.output


# --- the command, end to end (subprocesses) -----------------------------------------------------

DEEP_DEFAULT = """\
    import os
    import sys

    import numpy as np
    import torch
    import torch.nn as nn

    import helpers

    print("main:", __name__, sys.argv[1:], os.path.basename(sys.path[0]), os.path.basename(os.getcwd()), flush=True)
    torch.manual_seed(0)


    class DeepReLUMLP(nn.Module):
        def __init__(self, in_dim=8, hidden=32, depth=12, out_dim=1):
            super().__init__()
            layers = [nn.Linear(in_dim, hidden), nn.ReLU()]
            for _ in range(depth):
                layers += [nn.Linear(hidden, hidden), nn.ReLU()]
            layers.append(nn.Linear(hidden, out_dim))
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)


    features = torch.as_tensor(np.load("features.npy"), dtype=torch.float32)
    model = DeepReLUMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(10 ** 6):
        loss = model(features + helpers.noise()).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""

HELPERS = """\
    import torch


    def noise():
        return 0.1 * torch.randn(16, 8)
"""


def test_run_is_python_script_and_the_issues_false_confirmation_is_gone(tmp_path: Path) -> None:
    # the issue's case: a deep default-init ReLU MLP, SGD 0.01, model(x).pow(2).mean(); `gradlint
    # verify` said "GL101 confirmed, max_grad_norm 4.2e14"; the real gradients shrink
    project = tmp_path / "project"
    project.mkdir()
    (project / "helpers.py").write_text(textwrap.dedent(HELPERS))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    import numpy as np

    np.save(elsewhere / "features.npy", np.random.default_rng(0).standard_normal((16, 8)))  # raw, but unit scale
    pytest.importorskip("matplotlib")
    plot = tmp_path / "run.png"
    result, report = gradlint_run(project, DEEP_DEFAULT, "--flag", "value", cwd=elsewhere,
                                  options=("--steps", "30", "--plot", str(plot)))
    assert result.returncode == 0, result.stderr
    assert "main: __main__ ['--flag', 'value'] project elsewhere" in result.stdout  # passed through, as python runs it
    assert "[gradlint run] step" not in result.stderr  # the progress line is for a terminal only
    assert report["status"] == "stopped" and report["reason"] == "--steps 30" and report["steps"] == 30
    found = by_code(report)
    assert found["GL101"]["verdict"] == "not confirmed", found["GL101"]["reason"]
    assert found["GL101"]["figures"]["steps_seen"] == 30 and found["GL101"]["figures"]["max_grad_norm"] < 1
    assert found["GL201"]["verdict"] == "not confirmed" and found["GL201"]["figures"]["first_last_ratio"] < 1
    assert found["GL401"]["verdict"] == "not confirmed" and found["GL401"]["figures"]["largest_feature_scale"] < 10
    [optimizer] = report["optimizers"]
    assert optimizer["name"] == "train.py:29 SGD" and optimizer["recommendation"]["max_norm"] > 0
    assert any(m.endswith("helpers.py") for m in report["modules"])
    import matplotlib.image

    assert matplotlib.image.imread(str(plot)).std() > 0.01


EXPLODING = """\
    import numpy as np
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self, std):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=std)

        def forward(self, x):
            return self.net(x)


    torch.manual_seed(0)
    features = torch.as_tensor(np.load("features.npy"), dtype=torch.float32)
    model = Net(1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for step in range(1000):
        loss = (model(features) - 1.0).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""


def test_a_real_explosion_and_raw_features_are_confirmed(tmp_path: Path) -> None:
    # std=1 on 256 inputs (c = 128 per layer), lr 1, a raw feature at scale 1000: non-finite in a
    # few steps. Its unit-scale look-alike is the previous test's script.
    import numpy as np

    np.save(tmp_path / "features.npy", np.random.default_rng(0).standard_normal((32, 4)) * np.array([1, 1000, 1, 1]))
    result, report = gradlint_run(tmp_path, EXPLODING)
    found = by_code(report)
    assert found["GL401"]["verdict"] == "confirmed", found["GL401"]["reason"]
    assert found["GL401"]["figures"]["largest_feature"] == 1 and found["GL401"]["figures"]["largest_feature_scale"] > 100
    assert found["GL101"]["verdict"] == "confirmed", found["GL101"]["reason"]
    assert found["GL101"]["figures"]["first_nonfinite_step"] is not None
    assert result.returncode == 1  # a confirmed finding
    assert "no max_norm measured" in _text_of(report)


def _text_of(report: dict) -> str:
    from gradlint.run.report import render_text

    return render_text(report, colour=False)


def test_the_scripts_exception_and_exit_status_are_reported(tmp_path: Path) -> None:
    failing = """\
        import sys
        import torch

        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(5):
            model(torch.randn(4, 2)).sum().backward()
            optimizer.step()
        if sys.argv[1] == "raise":
            raise ValueError("bad batch")
        sys.exit(3)
    """
    result, report = gradlint_run(tmp_path, failing, "raise")
    assert result.returncode == 1 and report["status"] == "exception"
    assert report["exception"]["type"] == "ValueError" and report["exception"]["line"] == 10
    assert "ValueError: bad batch" in result.stderr and "runpy" not in result.stderr  # as python prints it
    assert report["steps"] == 5
    result, report = gradlint_run(tmp_path, failing, "exit")
    assert result.returncode == 3 and report["status"] == "exited" and report["exit_code"] == 3


@pytest.mark.slow
def test_ctrl_c_still_writes_the_report(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""\
        import torch

        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        step = 0
        while True:
            model(torch.randn(4, 2)).pow(2).mean().backward()
            optimizer.step()
            step += 1
            if step == 3:
                print("ready", flush=True)
    """))
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "gradlint", "run", "--steps", "100000000", "--format", "json",
                                "-o", str(out), str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path, env=env, start_new_session=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C on the terminal does: the whole group
        process.wait(timeout=HANG_GUARD)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    report = json.loads(out.read_text())
    assert process.returncode == 130 and report["status"] == "interrupted" and report["steps"] >= 3
    assert report["optimizers"][0]["steps"] >= 3


@pytest.mark.slow
def test_time_limit_stops_a_script_that_keeps_stepping(tmp_path: Path) -> None:
    slow = """\
        import time
        import torch

        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        while True:
            model(torch.randn(4, 2)).pow(2).mean().backward()
            optimizer.step()
            time.sleep(0.05)
    """
    result, report = gradlint_run(tmp_path, slow, options=("--steps", "100000000", "--time-limit", "3"))
    assert result.returncode == 0, result.stderr
    assert report["status"] == "stopped" and report["reason"] == "--time-limit 3 s"


def test_run_usage_errors_are_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    missing = CliRunner().invoke(main, ["run", str(tmp_path / "nope.py")])
    assert missing.exit_code == 2 and missing.output.strip().endswith("nope.py: no such file")
    (tmp_path / "t.py").write_text("pass\n")
    bad = CliRunner().invoke(main, ["run", "--threshold", "nonsense=1", str(tmp_path / "t.py")])
    assert bad.exit_code == 2 and "unknown threshold" in bad.output


DISTRIBUTED = """\
    import torch
    import torch.distributed as dist
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 16)
            self.fc2 = nn.Linear(16, 1)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))


    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = WRAP
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    torch.manual_seed(1 + rank)
    for step in range(100):
        loss = model(torch.randn(8, 4) * (1 + 3 * rank)).pow(2).mean()  # each rank its own data
        optimizer.zero_grad()
        loss.backward()
        seen = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
        seen = seen.full_tensor() if hasattr(seen, "full_tensor") else seen
        print(f"rank {rank} step {step} norm {float(seen)!r}", flush=True)
        optimizer.step()
    dist.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize("wrap", [
    "torch.nn.parallel.DistributedDataParallel(Net())",
    # FSDP2: each rank holds a shard of each gradient; the norm is summed over the ranks
    "__import__('torch.distributed.fsdp', fromlist=['fully_shard']).fully_shard(Net())",
])
def test_torchrun_two_ranks_on_cpu_every_rank_measured_and_gathered(tmp_path: Path, wrap: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(DISTRIBUTED).replace("WRAP", wrap))
    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "gradlint", "run", "--steps", "3", "--format", "json", "-o", str(out), str(script)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["world_size"] == 2 and "gather_error" not in report
    [optimizer] = report["optimizers"]
    assert optimizer["ranks"] == 2 and optimizer["rank_spread"] == pytest.approx(0.0, abs=1e-6)
    # the norm the optimizer really sees (after DDP's all-reduce / over all FSDP shards), as the script measured it
    import re

    # two processes share the pipe: a print's text and its newline may interleave with the other rank's
    seen = {int(step): float(value) for step, value in re.findall(r"rank 0 step (\d+) norm ([-+0-9.e]+)", result.stdout)}
    assert optimizer["norms"] == pytest.approx([seen[0], seen[1], seen[2]], rel=1e-5)
    [model] = report["models"]
    assert model["owner"] == "Net" and model["calls"] == 6  # both ranks' calls, pooled
    assert by_code(report)["GL101"]["verdict"] == "not confirmed"
