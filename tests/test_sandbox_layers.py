"""The sandbox's layers one by one: Landlock on its own (C code and other programs included),
the environment allow-list, the reply channel against garbage and forgery (fake workers), what
a project shows, gradlint non-dumpable, the refusal without a sandbox and `--show-sandbox`, and
a gradlint killed mid-run leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.verify import landlock, sandbox
from gradlint.verify.runner import Worker
from tests.conftest import ROOT

needs_landlock = pytest.mark.skipif(landlock.abi() < 1,
                                    reason="the kernel has no Landlock (Linux < 5.13, or not enabled)")


# --- Landlock on its own ----------------------------------------------------------------------


def _in_landlocked_child(policy: landlock.Policy, body) -> dict:
    """Run `body()` in a fork restricted by `policy`; what it returns (a dict, through a pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            landlock.confine(policy)
            os.write(write_end, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@needs_landlock
def test_landlock_confines_python_c_code_and_other_programs(tmp_path: Path) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    canary = outside / "canary.txt"
    canary.write_text("canary\n")
    secret = tmp_path / "unlisted.txt"
    secret.write_text("not readable\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    system = [p for p in ("/usr", "/bin", "/lib", "/lib64", "/etc", "/proc", "/dev") if os.path.exists(p)]
    policy = landlock.Policy(read=[*system, sys.prefix, sys.base_prefix, str(outside)], write=[str(inside)],
                             devices=["/dev/null"])

    def body() -> dict:
        import ctypes

        outcome = {}

        def attempt(name, function):
            try:
                function()
                outcome[name] = "allowed"
            except OSError as exc:
                outcome[name] = exc.errno

        attempt("write inside", lambda: (inside / "ok.txt").write_text("fine"))
        attempt("write outside", lambda: (outside / "new.txt").write_text("x"))
        attempt("overwrite canary", lambda: canary.write_text("x"))
        attempt("rename into outside", lambda: os.rename(inside / "ok.txt", outside / "moved.txt"))
        attempt("link into outside", lambda: os.link(inside / "ok.txt", outside / "linked.txt"))
        attempt("symlink outside", lambda: os.symlink("/etc/passwd", outside / "symlink"))
        attempt("mkfifo outside", lambda: os.mkfifo(outside / "fifo"))
        attempt("read unlisted", lambda: secret.read_text())
        attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=10))
        libc = ctypes.CDLL(None, use_errno=True)
        outcome["libc creat"] = libc.creat(str(outside / "libc.txt").encode(), 0o644) >= 0
        outcome["shell"] = os.system(f"echo x > {outside}/shell.txt 2>/dev/null; echo x >> {canary} 2>/dev/null")
        if landlock.abi() >= 6:
            attempt("signal parent", lambda: os.kill(os.getppid(), 0))
        return outcome

    outcome = _in_landlocked_child(policy, body)
    listener_got = []
    try:
        listener_got.append(listener.accept())
    except BlockingIOError:
        pass
    listener.close()
    assert outcome.pop("write inside") == "allowed"
    assert outcome.pop("libc creat") is False and outcome.pop("shell") != 0
    if landlock.abi() >= 6:
        assert outcome.pop("signal parent") == 1  # EPERM: the scope holds
    connect = outcome.pop("connect")
    assert connect == (13 if landlock.abi() >= 4 else connect)  # EACCES from ABI 4 on
    assert set(outcome.values()) == {13}, outcome  # EACCES for every other attempt
    assert canary.read_text() == "canary\n" and sorted(os.listdir(outside)) == ["canary.txt"]
    assert listener_got == [] or landlock.abi() < 4


# --- the environment --------------------------------------------------------------------------


def test_the_worker_environment_is_an_allow_list(monkeypatch) -> None:
    secrets = {"GITHUB_TOKEN": "s1", "AWS_SECRET_ACCESS_KEY": "s2", "HF_TOKEN": "s3", "DATABASE_URL": "postgres://u:s4@h/db",
               "PIP_INDEX_URL": "https://u:s5@example.invalid/simple", "SOME_RANDOM_SETTING": "s6",
               "TORCH_API_KEY": "s7", "CUDA_AUTH": "s8", "PYTHONPATH": "https://u:s9@h/x"}
    kept = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "2",
            "CUDA_VISIBLE_DEVICES": "0", "TORCH_HOME": "/opt/torch", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
            "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    for name, value in {**secrets, **kept}.items():
        monkeypatch.setenv(name, value)
    env = sandbox.worker_environment("/scratch")
    assert not set(secrets) & set(env), set(secrets) & set(env)
    assert {k: env[k] for k in kept} == kept
    assert env["HOME"] == env["TMPDIR"] == "/scratch"
    assert not any(f"s{i}" in value for value in env.values() for i in range(1, 10))


# --- the reply channel ------------------------------------------------------------------------

FAKE_WORKER = textwrap.dedent("""
    import json, os, sys, time
    mode = sys.argv[1]
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\\n"); out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        good = {"nonce": request["nonce"], "status": "ok", "figures": {"gradients": {"first_last_ratio": 1.0}}}
        if mode == "valid":
            out.write(json.dumps(good) + "\\n")
        elif mode == "garbage":
            out.write("this is not JSON\\n")
        elif mode == "forged":
            out.write(json.dumps({**good, "nonce": "0" * 32}) + "\\n")
        elif mode == "no-nonce":
            out.write(json.dumps({k: v for k, v in good.items() if k != "nonce"}) + "\\n")
        elif mode == "two-lines":
            out.write(json.dumps(good) + "\\n" + json.dumps(good) + "\\n")
        elif mode == "bad-figures":
            out.write(json.dumps({**good, "figures": "lol"}) + "\\n")
        elif mode == "unknown-field":
            out.write(json.dumps({**good, "verdict": "confirmed"}) + "\\n")
        elif mode == "not-an-object":
            out.write("[1, 2, 3]\\n")
        elif mode == "deep":
            out.write("[" * 100000 + "]" * 100000 + "\\n")
        elif mode == "deep-figures":
            out.write(json.dumps({**good, "figures": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}) + "\\n")
        elif mode == "huge":
            chunk = "x" * (1 << 20)
            for _ in range(40):
                out.write(chunk)
            out.write("\\n")
        elif mode == "flood-stderr":
            chunk = "e" * (1 << 20)
            for _ in range(200):
                sys.stderr.write(chunk)
            sys.stderr.write("\\nthe last line\\x1b[31m\\n"); sys.stderr.flush()
            out.write(json.dumps({"nonce": request["nonce"], "status": "error", "error": "boom\\x1b[2J"}) + "\\n")
        elif mode == "silent":
            time.sleep(3600)
        out.flush()
""")


class FakeWorker(Worker):
    """The runner's side as it is; a worker that answers as `mode` says."""

    def __init__(self, mode: str, **options) -> None:
        super().__init__(sandbox=False, fork=False, **options)  # the runner's own timeout, no grace
        self.mode = mode
        self.starts = 0

    def _command(self):
        self.starts += 1
        return [sys.executable, "-c", FAKE_WORKER, self.mode], "/tmp", "/tmp"


@pytest.mark.parametrize("mode, why", [
    ("garbage", "the reply is not JSON"), ("forged", "does not answer this request"),
    ("no-nonce", "does not answer this request"), ("two-lines", "worker protocol error"),
    ("bad-figures", "figures are malformed"), ("unknown-field", "unknown fields"),
    ("not-an-object", "not an object"), ("huge", "worker protocol error"), ("deep", "not JSON"),
    ("deep-figures", "figures are malformed"),
])
def test_garbage_or_forgery_on_the_reply_channel_is_a_protocol_error(mode: str, why: str) -> None:
    worker = FakeWorker(mode, timeout=300)
    try:
        reply = worker.request({"codes": []})
        assert reply["status"] == "error" and reply["error"].startswith("worker protocol error"), reply
        assert why in reply["error"]
        assert worker.process is None  # that worker is ended; the next request gets a new one
        worker.request({"codes": []})
        assert worker.starts == 2
    finally:
        worker.close()


def test_a_valid_reply_passes_and_stderr_is_drained_with_only_its_tail_kept() -> None:
    worker = FakeWorker("valid", timeout=300)
    try:
        assert worker.request({"codes": []}) == {"status": "ok", "figures": {"gradients": {"first_last_ratio": 1.0}}}
        assert worker.request({"codes": []})["status"] == "ok" and worker.starts == 1
    finally:
        worker.close()
    worker = FakeWorker("flood-stderr", timeout=300)
    try:
        reply = worker.request({"codes": []})
        assert reply == {"status": "error", "error": "boom\\x1b[2J"}  # control characters escaped
        assert len(worker._tail) <= 64 << 10 and worker._stderr_tail() == "the last line\\x1b[31m"
    finally:
        worker.close()


def test_a_silent_worker_is_a_timeout_not_a_hang() -> None:
    worker = FakeWorker("silent", timeout=2)  # the fake never answers: the outcome does not depend on speed
    try:
        reply = worker.request({"codes": []})
        assert reply["status"] == "error" and "timed out after 2 s" in reply["error"]
        assert worker.process is None
    finally:
        worker.close()


def test_gradlint_is_non_dumpable_while_a_worker_runs() -> None:
    import ctypes

    libc = ctypes.CDLL(None)
    assert libc.prctl(3, 0, 0, 0, 0) == 1  # PR_GET_DUMPABLE
    worker = FakeWorker("valid", timeout=300)
    try:
        worker.request({"codes": []})
        assert libc.prctl(3, 0, 0, 0, 0) == 0  # /proc/<gradlint>/environ, mem, fd: closed to others
    finally:
        worker.close()
    assert libc.prctl(3, 0, 0, 0, 0) == 1


# --- what the sandbox shows -------------------------------------------------------------------


def test_a_project_at_home_shows_only_its_python_files_and_packages(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("model.py", "notes.txt", ".env", "pkg/__init__.py", "pkg/net.py", "data/x.csv", ".ssh/id_rsa"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    shown = sandbox.read_only_paths([str(tmp_path)])
    assert str(tmp_path) not in shown and "/" not in shown
    assert str(tmp_path / "model.py") in shown and str(tmp_path / "pkg") in shown
    assert not {str(tmp_path / n) for n in ("notes.txt", ".env", "data", ".ssh")} & set(shown)
    project = tmp_path / "work" / "project"
    project.mkdir(parents=True)
    assert str(project) in sandbox.read_only_paths([str(project)])  # below HOME: the whole project


# --- no sandbox: one line, and --no-sandbox ---------------------------------------------------

MODEL = textwrap.dedent("""
    import torch.nn as nn

    class Deep(nn.Module):
        def __init__(self, depth=8):
            super().__init__()
            layers = []
            for _ in range(depth):
                layers += [nn.Linear(16, 16), nn.ReLU()]
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)
""")


def test_verify_refuses_in_one_line_where_there_is_no_sandbox(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "deep.py"
    path.write_text(MODEL)
    none = sandbox.Capabilities(platform="darwin", namespaces_why="the sandbox needs Linux namespaces and "
                                                                   "Landlock; this is darwin")
    monkeypatch.setattr(sandbox, "capabilities", lambda: none)
    result = CliRunner().invoke(main, ["verify", "--select", "GL201", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "this machine cannot sandbox it: the sandbox needs Linux" in lines[0], result.output
    assert "--no-sandbox" in lines[0] and "--show-sandbox" in lines[0]
    shown = CliRunner().invoke(main, ["verify", "--show-sandbox"])
    assert shown.exit_code == 0 and "NOT available" in shown.output
    allowed = CliRunner().invoke(main, ["verify", "--no-sandbox", "--select", "GL201", str(path)])
    assert allowed.exit_code == 0 and "GL201  not confirmed" in allowed.output, allowed.output


def test_verify_refuses_where_the_kernel_allows_no_user_namespace(tmp_path: Path) -> None:
    """A real refusal: gradlint in a user namespace whose limit of further ones is 0."""
    import shutil

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-Ur", "true"], check=False).returncode != 0:
        pytest.skip("this kernel gives no unprivileged user namespace to set the limit in")
    (tmp_path / "deep.py").write_text(MODEL)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = f"echo 0 > /proc/sys/user/max_user_namespaces && exec {sys.executable} -m gradlint verify deep.py"
    result = subprocess.run(["unshare", "-Ur", "sh", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot sandbox it" in lines[0], result.stderr
    assert "user namespaces are disabled (user.max_user_namespaces=0)" in lines[0]


def test_show_sandbox_says_what_this_machine_provides() -> None:
    caps = sandbox.capabilities()
    result = CliRunner().invoke(main, ["verify", "--show-sandbox"])
    assert result.exit_code == 0
    assert ("available" if caps.usable else "NOT available") in result.output.splitlines()[0]
    landlock_line = f"Landlock: ABI {caps.landlock_abi}" if caps.landlock_abi else "Landlock: not available"
    assert landlock_line in result.output
    assert (f"cgroup {caps.cgroup}" if caps.cgroup else "cgroup: none") in result.output


# --- gradlint killed mid-run ------------------------------------------------------------------


def test_nothing_outlives_a_gradlint_killed_mid_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    caps = sandbox.capabilities()
    if not caps.usable:
        if caps.kernel_lacks_namespaces:
            pytest.skip(f"the kernel or OS policy gives no sandbox here: {caps.why}")
        pytest.fail(caps.why)
    marker = f"gradlint-marker-{os.getpid()}-{time.time_ns()}"
    (tmp_path / "sleeper.py").write_text(MODEL.replace(
        "super().__init__()", f"super().__init__()\n        import subprocess, time\n"
        f"        subprocess.Popen(['sh', '-c', 'sleep 3600; : {marker}'], start_new_session=True)\n"
        f"        time.sleep(3600)"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gradlint = subprocess.Popen([sys.executable, "-m", "gradlint", "verify", "--select", "GL201", "sleeper.py"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _marked(marker) and time.monotonic() < deadline:  # wait for the model to be running
            time.sleep(0.2)
        assert _marked(marker), "the model never started"
        gradlint.send_signal(signal.SIGKILL)
        gradlint.wait(60)
        deadline = time.monotonic() + 60
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked(marker) == [], "the model's processes outlived gradlint"
        made = sandbox.TreeLimits.create(None, 8)  # the next run removes the dead run's empty cgroup
        if isinstance(made, sandbox.TreeLimits):
            parents = {os.path.dirname(d) for d in made.directories}
            made.remove()
            assert not [n for p in parents for n in os.listdir(p) if n.startswith(f"gradlint-{gradlint.pid}-")]
    finally:
        gradlint.kill()
        for pid in _marked(marker):
            os.kill(pid, signal.SIGKILL)


def _marked(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found
