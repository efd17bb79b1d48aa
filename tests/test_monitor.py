"""GradMonitor on real (tiny, CPU) training loops, and the plot command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main

torch = pytest.importorskip("torch")

from gradlint.monitor import GradientExplosion, GradMonitor, read_log  # noqa: E402


def mlp(depth: int = 3, width: int = 32, std: float | None = None) -> torch.nn.Module:
    layers: list[torch.nn.Module] = [torch.nn.Linear(4, width), torch.nn.ReLU()]
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, 1))
    model = torch.nn.Sequential(*layers)
    if std is not None:
        for module in model:
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=std)
    return model


def train(model, monitor, steps=60, lr=1e-3, blow_up_at=None):
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    for step in range(steps):
        if step == blow_up_at:
            y = y * 1e4  # a batch with enormous targets, as a rare huge reward gives
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        monitor.record(step, loss=loss.item())
        optimizer.step()
        if step == blow_up_at:
            y = y / 1e4


def test_stable_training_gives_no_event(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with GradMonitor(model, log_path=str(tmp_path / "log.jsonl")) as monitor:
            train(model, monitor)
    assert monitor.events == []
    records = read_log(str(tmp_path / "log.jsonl"))
    assert len(records) == 60 and records[0]["layers"].keys() == {"0", "2", "4", "6", "8"}
    assert all(r["grad_norm"] > 0 for r in records) and "loss" in records[0]


def test_a_blow_up_is_detected_at_the_step_it_happens() -> None:
    torch.manual_seed(0)
    model = mlp()
    monitor = GradMonitor(model, on_event="warn")
    with pytest.warns(RuntimeWarning, match=r"\[model\] step 40: gradient norm .* running median"):
        train(model, monitor, blow_up_at=40)
    assert [e.step for e in monitor.events] == [40]  # one event for the excursion, not one per step
    assert monitor.events[0].top_layers  # names the layers contributing most


def test_a_deep_large_init_network_explodes_to_non_finite_and_raises() -> None:
    torch.manual_seed(0)
    model = mlp(depth=12, width=256, std=1.0)  # c = 128 per layer
    monitor = GradMonitor(model, on_event="raise")
    with pytest.raises(GradientExplosion, match="step 0: non-finite gradient norm"):
        train(model, monitor, lr=1.0)


def test_every_k_steps_callback_and_clip_norm() -> None:
    torch.manual_seed(0)
    model = mlp()
    seen = []
    monitor = GradMonitor(model, every=10, on_event=seen.append)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(8, 4)
    for step in range(30):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        monitor.record(step, pre_clip_norm=total)
        optimizer.step()
    assert [r["step"] for r in monitor.records] == [0, 10, 20]
    for record in monitor.records:  # recorded after clipping: the fields say which norm is which
        assert "grad_norm" not in record and record["post_clip_norm"] == pytest.approx(1e-3, rel=1e-3)
        assert record["pre_clip_norm"] > 2e-3


def test_a_blow_up_is_detected_from_the_pre_clip_norm_when_recorded_after_clipping() -> None:
    # the README's loop: clip, then record(clipped_norm=total); the clipped gradients stay at
    # the threshold, so detection must look at the pre-clip norm clip_grad_norm_ returned
    torch.manual_seed(0)
    model = mlp()
    monitor = GradMonitor(model, on_event="raise")
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    with pytest.raises(GradientExplosion, match=r"step 30: gradient norm"):
        for step in range(40):
            model.zero_grad()
            torch.nn.functional.mse_loss(model(x), y * (1e4 if step == 30 else 1.0)).backward()
            total = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            monitor.record(step, pre_clip_norm=total)
    assert monitor.records[-1]["post_clip_norm"] <= 0.5 + 1e-6 < monitor.records[-1]["pre_clip_norm"]


def test_attach_records_before_each_optimizer_step_for_several_models() -> None:
    torch.manual_seed(0)
    actor, critic = mlp(), mlp()
    actor_opt = torch.optim.Adam(actor.parameters())
    critic_opt = torch.optim.Adam(critic.parameters())
    monitors = [GradMonitor(actor, name="actor").attach(actor_opt), GradMonitor(critic, name="critic").attach(critic_opt)]
    x = torch.randn(8, 4)
    for _ in range(5):
        for model, opt in ((actor, actor_opt), (critic, critic_opt)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    assert [len(m.records) for m in monitors] == [5, 5]
    assert {r["name"] for m in monitors for r in m.records} == {"actor", "critic"}


def test_amp_grad_scaler_norms_are_unscaled() -> None:
    torch.manual_seed(0)
    model = mlp()
    reference = GradMonitor(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaled = GradMonitor(model, scaler=scaler)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(8, 4)
    optimizer.zero_grad()
    scaler.scale(model(x).pow(2).mean()).backward()
    seen_scaled = scaled.record(0)["grad_norm"]
    scaler.unscale_(optimizer)
    true_norm = reference.record(0)["grad_norm"]
    assert seen_scaled == pytest.approx(true_norm, rel=1e-4)
    assert scaled.record(1, unscaled=True)["grad_norm"] == pytest.approx(true_norm, rel=1e-4)


def test_plot_command_draws_the_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    model = mlp()
    log = tmp_path / "grads.jsonl"
    with GradMonitor(model, log_path=str(log), on_event=lambda e: None) as monitor:
        train(model, monitor, blow_up_at=40)
    out = tmp_path / "report.png"
    result = CliRunner().invoke(main, ["plot", str(log), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 panels: Global gradient norm per update; model: per-layer gradient norm (log10); loss" in result.output
    import matplotlib.image

    image = matplotlib.image.imread(str(out))
    height, width = image.shape[:2]
    assert width == 1000 and height > 800  # three stacked panels
    # every panel has drawn content, not a blank band
    for band in range(3):
        rows = image[int(height * (band + 0.2) / 3): int(height * (band + 0.8) / 3), 100:900, :3]
        assert rows.std() > 0.02


def test_csv_log_round_trip(tmp_path: Path) -> None:
    model = mlp()
    path = tmp_path / "grads.csv"
    with GradMonitor(model, log_path=str(path)) as monitor:
        model(torch.randn(4, 4)).sum().backward()
        monitor.record(0, reward=1.5)
    [record] = read_log(str(path))
    assert record["reward"] == 1.5 and record["layers"] and json.dumps(record)


# --- the detection rule: warm-up, excursions, where warnings point, logs per run -------------------


def _grads_of_norm(model, norm: float) -> None:
    for param in model.parameters():
        param.grad = torch.full_like(param, norm / sum(p.numel() for p in model.parameters()) ** 0.5)


def test_a_blow_up_at_step_zero_is_an_event_without_warm_up() -> None:
    model = torch.nn.Linear(4, 1)
    monitor = GradMonitor(model, on_event=lambda e: None)
    _grads_of_norm(model, 6e18)
    monitor.record(0)
    assert [(e.kind, e.step) for e in monitor.events] == [("ceiling", 0)]
    quiet = GradMonitor(model, on_event=lambda e: None, ceiling=None)  # the ceiling off: the warm-up hides it
    quiet.record(0)
    assert quiet.events == []
    nan = GradMonitor(model, on_event=lambda e: None)
    _grads_of_norm(model, float("nan"))
    nan.record(0)
    assert [(e.kind, e.step) for e in nan.events] == [("nonfinite", 0)]


def test_one_event_per_excursion_non_finite_included() -> None:
    model = torch.nn.Linear(4, 1)
    monitor = GradMonitor(model, on_event=lambda e: None)
    norms = [1.0] * 20 + [50.0] * 3 + [float("nan")] * 59 + [1.0] * 5 + [float("inf")] * 2
    for step, norm in enumerate(norms):
        _grads_of_norm(model, norm)
        monitor.record(step)
    # a spike, its escalation to NaN (59 steps: one event), back to normal, a second excursion
    assert [(e.kind, e.step) for e in monitor.events] == [("spike", 20), ("nonfinite", 23), ("nonfinite", 87)]


def test_look_alike_a_steady_large_norm_is_no_event() -> None:
    model = torch.nn.Linear(4, 1)
    monitor = GradMonitor(model, on_event=lambda e: None)
    for step in range(40):
        _grads_of_norm(model, 5e5 * (1 + 0.5 * (step % 3)))  # large but steady, under the ceiling
        monitor.record(step)
    assert monitor.events == []


def test_warnings_point_at_the_users_line_from_record_and_from_attach() -> None:
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    monitor = GradMonitor(model).attach(optimizer)
    _grads_of_norm(model, float("nan"))
    with pytest.warns(RuntimeWarning, match="non-finite") as caught:
        optimizer.step()  # the hook records and warns
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name], [w.filename for w in caught]
    direct = GradMonitor(model)
    with pytest.warns(RuntimeWarning) as caught:
        direct.record(0)
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


def test_a_new_log_per_run_unless_appending_is_asked(tmp_path: Path, monkeypatch) -> None:
    import gradlint.monitor as monitor_module

    model = torch.nn.Linear(4, 1)
    model(torch.randn(2, 4)).sum().backward()
    for path in (tmp_path / "grads.jsonl", tmp_path / "grads.csv"):
        for _ in range(2):  # two runs (processes), each with two monitors sharing the log
            monkeypatch.setattr(monitor_module, "_OPENED", set())
            actor, critic = GradMonitor(model, name="actor", log_path=str(path)), GradMonitor(model, name="critic", log_path=str(path))
            actor.record(0)
            critic.record(0)
            actor.close()
            critic.close()
        assert sorted(r["name"] for r in read_log(str(path))) == ["actor", "critic"]
        monkeypatch.setattr(monitor_module, "_OPENED", set())
        with GradMonitor(model, log_path=str(path), append=True) as monitor:
            monitor.record(1)
        assert [r["step"] for r in read_log(str(path))] == [0, 0, 1]


def test_logs_of_the_old_field_names_are_read(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"name": "m", "step": 0, "global_norm": 0.5, "clipped_norm": 3.0}) + "\n"
                    + json.dumps({"name": "m", "step": 1, "global_norm": 0.7}) + "\n")
    first, second = read_log(str(path))
    assert (first["pre_clip_norm"], first["post_clip_norm"], second["grad_norm"]) == (3.0, 0.5, 0.7)
    model = torch.nn.Linear(4, 1)
    model(torch.randn(2, 4)).sum().backward()
    with pytest.warns(DeprecationWarning, match="pre_clip_norm"):
        record = GradMonitor(model).record(0, clipped_norm=2.0)
    assert record["pre_clip_norm"] == 2.0
