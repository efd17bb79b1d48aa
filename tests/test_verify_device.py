"""`gradlint verify --device` and the monitor on an accelerator: the device reaches every tensor
the probes make, the worker's memory limit suits the device, the environment keeps what CUDA
needs, an unavailable device is one clear line. Tests that need a GPU are skipped without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_paths
from gradlint.verify.runner import DeviceUnavailableError, Worker, scrubbed_environment
from tests.conftest import FIXTURES, ROOT

torch = pytest.importorskip("torch")

from gradlint.verify import probes, verify_model  # noqa: E402
from gradlint.verify.session import Options, verify_results  # noqa: E402
from gradlint.verify.worker import _arguments, find_inputs  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
MODELS = FIXTURES / "models"


# --- everywhere -----------------------------------------------------------------------------


def test_cuda_unavailable_is_one_line_and_no_traceback(tmp_path: Path) -> None:
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this runs the same with and without one
    path = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-m", "gradlint", "verify", "--device", "cuda",
                          str(MODELS / "deep_plain_relu.py")], check=False, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("gradlint: error: --device cuda: CUDA is not available"), lines[0]
    assert "use --device cpu" in lines[0] and out.stdout.strip() == ""


def test_worker_says_when_its_device_is_unavailable(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    worker = Worker(timeout=60, device="cuda")
    try:
        with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
            worker.start()
        reply = worker.request({"codes": []})  # a later request: an error reply, not an exception
        assert reply["status"] == "error" and "CUDA is not available" in reply["error"]
    finally:
        worker.close()


def test_address_space_limit_on_cpu_only(monkeypatch) -> None:
    import resource

    calls = []
    monkeypatch.setattr(resource, "setrlimit", lambda kind, limits: calls.append((kind, limits)))
    Worker(memory_mb=512, device="cpu")._limits()
    assert calls == [(resource.RLIMIT_AS, (512 << 20, 512 << 20))]
    calls.clear()
    for device in ("cuda", "cuda:1"):  # CUDA reserves more address space than any such limit allows
        Worker(memory_mb=512, device=device)._limits()
    assert calls == []


def test_worker_gets_the_device_and_memory_on_its_command_line() -> None:
    assert _arguments(["--device", "cuda:1", "--memory-mb", "2048"]) == {"device": "cuda:1", "memory_mb": 2048}
    assert _arguments([]) == {"device": "cpu", "memory_mb": None}


def test_scrubbed_environment_keeps_what_cuda_needs(monkeypatch) -> None:
    kept = {"CUDA_VISIBLE_DEVICES": "0", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64", "CUDA_HOME": "/usr/local/cuda",
            "NVIDIA_VISIBLE_DEVICES": "all", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "PATH": "/usr/bin"}
    for name, value in kept.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_TOKEN", "secret")
    env = scrubbed_environment("/tmp/home")
    assert {name: env.get(name) for name in kept} == kept
    assert "HF_TOKEN" not in env


class _Recurrent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(6, 12)
        self.head = torch.nn.Linear(12, 1)

    def init_hidden(self, batch, device="cpu"):
        return torch.zeros(1, batch, 12, device=device)

    def forward(self, x, hidden):
        out, _ = self.rnn(x, hidden)
        return self.head(out)


def test_input_candidates_reach_the_models_device() -> None:
    # the meta device has no data, but a device mismatch still raises there: an honest check
    # that every candidate (and init_hidden's state) is moved to the model's device
    model = torch.nn.Sequential(torch.nn.Linear(17, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).to("meta")
    [x] = find_inputs(model, {}, "meta")
    assert x.device.type == "meta" and list(x.shape) == [8, 17]
    recurrent = _Recurrent().to("meta")
    x, hidden = find_inputs(recurrent, {"hints": {"inputs": ["x", "hidden"]}}, "meta")
    assert x.device.type == hidden.device.type == "meta"
    with pytest.raises(ValueError, match="no input shape worked"):  # the bug: CPU inputs, a model elsewhere
        find_inputs(model, {}, "cpu")


def test_remedy_copies_stay_on_the_models_device() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 1)).to("meta")
    inputs = [torch.randn(2, 4, device="meta")]
    for copy_ in (probes.with_he_init(model), probes.with_layernorm(model, inputs), probes.with_small_output(model, inputs)):
        assert {p.device.type for p in copy_.parameters()} == {"meta"}
        copy_(*inputs)


def test_remedy_initialisation_draws_on_the_cpu() -> None:
    # the same numbers whatever the device: drawn on the CPU, then copied (float64 here)
    model = torch.nn.Linear(16, 16).double()
    torch.manual_seed(3)
    first = probes.with_he_init(model).weight.detach().clone()
    torch.manual_seed(3)
    expected = torch.empty(16, 16)
    torch.nn.init.kaiming_normal_(expected, nonlinearity="relu")
    assert first.dtype == torch.float64 and torch.equal(first, expected.double())


# --- on a GPU --------------------------------------------------------------------------------


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _by_finding(reports) -> dict:
    return {(Path(r.file).name, r.model, v.code): v for r in reports for v in r.verdicts}


@cuda
def test_verify_on_cuda_agrees_with_the_cpu() -> None:
    paths = [MODELS / "deep_plain_relu.py", MODELS / "deep_plain_relu_default_init.py", MODELS / "exploding_rnn.py",
             MODELS / "large_init_variants.py"]
    results = lint_paths([str(p) for p in paths], Settings(select=("ALL",)), jobs=1)
    on_cpu = _by_finding(verify_results(results, Settings(), Options(device="cpu", timeout=300)))
    on_cuda_reports = verify_results(results, Settings(), Options(device="cuda", timeout=300))
    on_cuda = _by_finding(on_cuda_reports)
    assert on_cpu.keys() == on_cuda.keys()
    for key, verdict in on_cpu.items():
        assert on_cuda[key].verdict == verdict.verdict, (key, verdict.reason, on_cuda[key].reason)
    assert all(r.status == "ok" for r in on_cuda_reports if r.model != "(no model class)"), \
        [r.error for r in on_cuda_reports]
    for report in on_cuda_reports:
        assert _plain(report.figures), report.model  # numbers copied to the host, JSON-ready
        json.dumps(report.to_dict())
    deep = on_cuda[("deep_plain_relu.py", "DeepReLUMLP", "GL201")]
    reference = on_cpu[("deep_plain_relu.py", "DeepReLUMLP", "GL201")]
    assert deep.figures["max_he_c"] == pytest.approx(reference.figures["max_he_c"], rel=1e-4)  # the same weights
    rnn = on_cuda[("exploding_rnn.py", "ExplodingReLURNN", "GL202")].figures["grad_first_input_by_T"]
    rnn_cpu = on_cpu[("exploding_rnn.py", "ExplodingReLURNN", "GL202")].figures["grad_first_input_by_T"]
    assert rnn["10"] == pytest.approx(rnn_cpu["10"], rel=1e-3)  # the same unroll inputs


@cuda
def test_in_process_api_on_a_cuda_model() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[m for _ in range(8) for m in (torch.nn.Linear(64, 64), torch.nn.ReLU())],
                                torch.nn.Linear(64, 1))
    result_cpu = verify_model(model, torch.randn(16, 64), codes=("GL201", "GL401"), env_id="MountainCar-v0")
    torch.manual_seed(0)
    result = verify_model(model.cuda(), torch.randn(16, 64).cuda(), codes=("GL201", "GL401"), env_id="MountainCar-v0")
    assert [v["verdict"] for v in result["verdicts"]] == [v["verdict"] for v in result_cpu["verdicts"]]
    assert _plain({k: v for k, v in result["figures"].items()})
    assert result["figures"]["layers"]


@cuda
def test_gpu_memory_cap_is_an_error_reply_and_the_next_model_runs(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import torch.nn as nn

        class Big(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(8192, 16384), nn.ReLU(), nn.Linear(16384, 1))  # 512 MiB of weights

            def forward(self, x):
                return self.net(x)

        class Small(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))

            def forward(self, x):
                return self.net(x)
    """)
    path = tmp_path / "models.py"
    path.write_text(source)
    request = {"file": str(path), "module_name": "gradlint_user_big", "source": source, "sys_path": [str(tmp_path)],
               "codes": ["GL201"], "device": "cuda", "args": [], "kwargs": {}}
    # 256 MiB, the smallest --memory: room for the small model and cuBLAS's workspaces, not for Big
    worker = Worker(timeout=120, memory_mb=256, device="cuda")
    try:
        big = worker.request({**request, "class": "Big"})
        assert big["status"] == "error" and "raise --memory" in big["error"], big
        small = worker.request({**request, "class": "Small"})
        assert small["status"] == "ok", small
    finally:
        worker.close()


@cuda
def test_monitor_on_cuda_matches_the_cpu_and_detects_a_spike(tmp_path: Path) -> None:
    from gradlint.monitor import GradMonitor, read_log

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    norms = {}
    for device in ("cpu", "cuda"):
        copy_ = __import__("copy").deepcopy(model).to(device)
        monitor = GradMonitor(copy_, name=device, log_path=str(tmp_path / f"{device}.jsonl"), on_event=lambda e: None)
        for step in range(30):
            copy_.zero_grad()
            scale = 1000.0 if step == 25 else 1.0  # one blow-up
            torch.nn.functional.mse_loss(copy_(x.to(device) * scale), y.to(device)).backward()
            monitor.record(step, loss=torch.tensor(1.0, device=device))
        monitor.close()
        norms[device] = [r["global_norm"] for r in read_log(str(tmp_path / f"{device}.jsonl"))]
        assert [(e.kind, e.step) for e in monitor.events] == [("spike", 25)]
        assert all(isinstance(v, float) for r in monitor.records for v in r["layers"].values())
    assert norms["cuda"] == pytest.approx(norms["cpu"], rel=1e-4)
