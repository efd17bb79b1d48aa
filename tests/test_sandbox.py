"""The verifier's sandbox against hostile model code: one test per attack class of issue 18,
each written as model files handed to `gradlint verify` (code in `__init__`, class bodies,
default arguments, metaclasses, sibling modules, `atexit`, `__del__`, daemon threads).

Every attack test creates its canary files first and checks them after, starts its own
listeners on 127.0.0.1 only, puts fake secrets in gradlint's environment, and looks for
processes left behind. Nothing here depends on speed: timeouts are generous hang guards.
Tests are skipped only where the kernel (or the OS's policy) lacks the feature, with the reason.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import uuid
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_paths
from gradlint.verify import sandbox
from gradlint.verify.report import render_text

torch = pytest.importorskip("torch")

from gradlint.verify.session import Options, verify_results  # noqa: E402

CAPS = sandbox.capabilities()


def _require_sandbox() -> None:
    if CAPS.usable:
        return
    if CAPS.kernel_lacks_namespaces:
        pytest.skip(f"the kernel or OS policy gives no sandbox here: {CAPS.why}")
    pytest.fail(f"the sandbox should work on this kernel but does not: {CAPS.why}")


FAKE = "gradlint-fake-"
SECRETS = {"GITHUB_TOKEN": FAKE + "ghp-1", "AWS_SECRET_ACCESS_KEY": FAKE + "aws-2", "HF_TOKEN": FAKE + "hf-3",
           "DATABASE_URL": f"postgres://admin:{FAKE}db-4@db.internal/prod",
           "PIP_INDEX_URL": f"https://user:{FAKE}pip-5@pypi.internal/simple", "HARMLESS_LOOKING": FAKE + "6"}

MODEL = '''
import torch.nn as nn
{prelude}

class Deep(nn.Module{bases}):
    {class_body}
    def __init__(self, depth=8{default}):
        super().__init__()
        {init}
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(16, 16), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
'''


def model_file(directory: Path, name: str, *, prelude: str = "", class_body: str = "pass", init: str = "pass",
               default: str = "", bases: str = "") -> Path:
    """A default-init deep ReLU stack (GL201: measured "not confirmed") with hostile code placed."""
    path = directory / name
    path.write_text(MODEL.format(prelude=textwrap.dedent(prelude), class_body=class_body, init=init,
                                 default=default, bases=bases))
    return path


class Scene:
    """Canaries, listeners and a process marker, set up before the attack and checked after."""

    def __init__(self, project: Path, outside: Path) -> None:
        self.project, self.outside = project, outside
        self.marker = "gradlint-marker-" + uuid.uuid4().hex
        self.canaries = {project / "canary.txt": "project canary\n", outside / "canary.txt": "outside canary\n"}
        for path, text in self.canaries.items():
            path.write_text(text)
        self.snapshot()
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)

    def snapshot(self) -> None:
        """The directories' listings as they are now (the model files written)."""
        self.before = {p: sorted(os.listdir(p)) for p in (self.project, self.outside)}

    def names(self) -> dict:
        return {"P": str(self.project / "canary.txt"), "O": str(self.outside / "canary.txt"), "PD": str(self.project),
                "OD": str(self.outside), "TCP": self.tcp.getsockname()[1], "UDP": self.udp.getsockname()[1],
                "MARK": self.marker}

    def canaries_intact(self) -> None:
        for path, text in self.canaries.items():
            assert path.read_text() == text, f"{path} was changed"
        for directory, names in self.before.items():
            assert sorted(os.listdir(directory)) == names, f"new files in {directory}"

    def no_connection(self) -> None:
        with pytest.raises(BlockingIOError):
            self.tcp.accept()  # no connection reached the listener
        with pytest.raises(BlockingIOError):
            self.udp.recvfrom(100)  # no datagram either

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


def leftovers(marker: str) -> list[int]:
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


# Everything a hostile model tried in the red-team pass (issue 18), as one function. `N` holds
# the scene's names; each attempt may fail, the next one still runs; at the end it raises what it
# could read that looks like a secret, and how many processes it can see.
ATTACK = r'''
def attack(N, tag):
    import ctypes, gc, os, shutil, signal, socket, subprocess, sys, threading
    from pathlib import Path

    def attempt(function, *args, **kwargs):
        try:
            function(*args, **kwargs)
        except BaseException:
            pass

    P, O, PD, OD = N["P"], N["O"], N["PD"], N["OD"]
    visible = [p for p in os.listdir("/proc") if p.isdigit()]  # before it starts any process itself
    # the audit hook switched off from Python: its view of paths, its event sets, its code
    attempt(lambda: setattr(os.path, "realpath", lambda p: "/tmp/x"))
    worker = sys.modules.get("gradlint.verify.worker")
    attempt(lambda: worker._NETWORK_EVENTS.clear())
    attempt(lambda: worker._PATH_EVENTS.clear())
    for candidate in gc.get_objects():
        attempt(lambda: getattr(candidate, "__name__", "") == "hook" and
                setattr(candidate, "__code__", (lambda event, args: None).__code__))
    # other programs (no audit hook there): writes and a connection
    shell = f"echo pwned > {OD}/system; echo pwned >> {O}; echo pwned >> {P}"
    attempt(os.system, shell)
    attempt(subprocess.run, ["sh", "-c", shell], timeout=20)
    attempt(os.posix_spawn, "/bin/sh", ["sh", "-c", f"echo pwned > {OD}/spawn"], dict(os.environ))
    connect = f"import socket; socket.create_connection(('127.0.0.1', {N['TCP']}), timeout=5)"
    attempt(subprocess.run, [sys.executable, "-c", connect], timeout=20)
    attempt(subprocess.run, [sys.executable, "-c", f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                                                   f"s.sendto(b'x', ('127.0.0.1', {N['UDP']}))"], timeout=20)
    pid = os.fork()
    if pid == 0:
        attempt(os.execv, "/bin/sh", ["sh", "-c", f"echo pwned > {OD}/forkexec"])
        os._exit(0)
    attempt(os.waitpid, pid, 0)
    def pty_child():
        import pty
        child, _ = pty.fork()
        if child == 0:
            attempt(os.execv, "/bin/sh", ["sh", "-c", f"echo pwned > {OD}/pty"])
            os._exit(0)
        os.waitpid(child, 0)
    attempt(pty_child)
    # writes outside without C code
    for target_dir in (PD, OD):
        moved = os.path.join("/tmp", f"moved-{tag}")
        attempt(Path(moved).write_text, "x")
        attempt(os.rename, moved, os.path.join(target_dir, "renamed"))
        attempt(os.replace, moved, os.path.join(target_dir, "replaced"))
        attempt(shutil.move, moved, os.path.join(target_dir, "moved"))
        attempt(Path(moved).rename, os.path.join(target_dir, "path_renamed"))
        attempt(os.replace, moved, os.path.join(target_dir, "canary.txt"))
        def with_dir_fd():
            fd = os.open(target_dir, os.O_RDONLY)
            attempt(lambda: os.write(os.open("dirfd", os.O_WRONLY | os.O_CREAT, dir_fd=fd), b"x"))
            attempt(os.remove, "canary.txt", dir_fd=fd)
            attempt(os.mkdir, "made", dir_fd=fd)
            attempt(os.chmod, "canary.txt", 0o777, dir_fd=fd)
            attempt(os.mkfifo, "fifo", dir_fd=fd)
        attempt(with_dir_fd)
        attempt(os.link, moved, os.path.join(target_dir, "linked"))
        attempt(os.symlink, "/etc/passwd", os.path.join(target_dir, "symlinked"))
        attempt(os.utime, os.path.join(target_dir, "canary.txt"), (0, 0))
        attempt(os.setxattr, os.path.join(target_dir, "canary.txt"), "user.pwned", b"1")
        attempt(os.truncate, os.path.join(target_dir, "canary.txt"), 0)
        attempt(os.remove, os.path.join(target_dir, "canary.txt"))
        import torch
        attempt(torch.save, {"x": 1}, os.path.join(target_dir, "saved.pt"))
        libc = ctypes.CDLL(None)
        attempt(lambda: libc.creat(os.path.join(target_dir, "libc").encode(), 0o644))
        attempt(lambda: libc.unlink(os.path.join(target_dir, "canary.txt").encode()))
    # processes that outlive the model: a setsid grandchild, forty sleepers, a double fork
    attempt(subprocess.Popen, ["sh", "-c", f"sleep 3600; : {N['MARK']}"], start_new_session=True)
    for _ in range(40):
        attempt(subprocess.Popen, ["sh", "-c", f"sleep 3600; : {N['MARK']}"])
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sh", ["sh", "-c", f"sleep 3; echo late > {OD}/late; sleep 3600; : {N['MARK']}"])
        os._exit(0)
    # gradlint itself
    attempt(os.kill, os.getppid(), signal.SIGKILL)
    # secrets: the environment, every /proc entry it can read
    found = [v for v in os.environ.values() if "gradlint-fake-" in v]
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    for p in pids + ["self", str(os.getppid())]:
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{p}/{part}", "rb") as handle:
                    found += [w.decode() for w in handle.read().split(b"\0") if b"gradlint-fake-" in w]
            except OSError:
                pass
    interfaces = [name for _, name in socket.if_nameindex()]
    raise RuntimeError(f"ATTEMPTED {tag}: found={found} pids={len(visible)} interfaces={interfaces} "
                       f"resolv={os.path.exists('/etc/resolv.conf')}")
'''


def _placements(scene: Scene, directory: Path) -> dict[str, Path]:
    """The attack in each place model code can run (the sibling module's class body for the last)."""
    names = json.dumps(scene.names())
    prelude = ATTACK + f"\ndef names():\n    return {names}\n\nRESULT = []\n"
    files = {
        "init": model_file(directory, "m_init.py", prelude=prelude, init="attack(names(), 'init')"),
        "class_body": model_file(directory, "m_class.py", prelude=prelude, class_body="attack(names(), 'class_body')"),
        "default": model_file(directory, "m_default.py", prelude=prelude + "\ndef value():\n    attack(names(), 'default')\n",
                              default=", unused=value()"),
        "metaclass": model_file(directory, "m_meta.py", prelude=prelude + textwrap.dedent("""
            class Meta(type(nn.Module)):
                def __new__(mcs, name, bases, namespace):
                    attack(names(), "metaclass")
                    return super().__new__(mcs, name, bases, namespace)
            """), bases=", metaclass=Meta"),
        "daemon": model_file(directory, "m_daemon.py", prelude=prelude + textwrap.dedent("""
            import threading
            def in_thread():
                try:
                    attack(names(), "daemon")
                except RuntimeError as exc:
                    RESULT.append(str(exc))
            """), init="t = threading.Thread(target=in_thread, daemon=True); t.start(); t.join(240); "
                       "threading.Thread(target=in_thread, daemon=True).start(); raise RuntimeError(RESULT[0])"),
        "del": model_file(directory, "m_del.py", prelude=prelude + textwrap.dedent("""
            class Bomb:
                def __del__(self):
                    try:
                        attack(names(), "del")
                    except RuntimeError as exc:
                        RESULT.append(str(exc))
            """), init="Bomb(); self.keep = Bomb(); raise RuntimeError(RESULT[0])"),  # one now, one at exit
        "atexit": model_file(directory, "m_atexit.py", prelude=prelude + "\nimport atexit\n",
                             init="atexit.register(attack, names(), 'atexit')"),
    }
    (directory / "hostile_helpers.py").write_text(prelude + textwrap.dedent("""
        class Base:
            try:
                attack(names(), "sibling")
            except RuntimeError as exc:
                RESULT.append(str(exc))
        """))
    files["sibling"] = model_file(directory, "m_sibling.py", prelude="from hostile_helpers import Base, RESULT",
                                  init="raise RuntimeError(RESULT[0])")
    files["after"] = model_file(directory, "m_after.py")  # a plain model after all that: measured as usual
    return files


FORGE = """
    import os, signal
    LINE = {line!r}
    def forge():
        for fd in range(3, 256):  # whatever descriptor it holds, the pipe to the worker included
            try:
                os.write(fd, LINE)
                os.write(fd, b"garbage, not JSON\\n")
            except OSError:
                pass
        for pid in ("1", "self", str(os.getppid())):
            for fd in range(0, 64):
                try:
                    with open(f"/proc/{{pid}}/fd/{{fd}}", "wb") as handle:
                        handle.write(LINE)
                except OSError:
                    pass
        try:
            os.kill(os.getppid(), signal.SIGKILL)
        except OSError:
            pass
"""

RESOURCES = """
    import os, sys, time
    def bomb():
        forked = 0
        for _ in range(600):  # bounded, so that a broken sandbox cannot take the machine down
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(3600)
                os._exit(0)
            forked += 1
        raise RuntimeError(f"FORKED {forked}")
    def fill():
        with open("big", "wb") as handle:  # in its working directory, in the scratch space
            for _ in range(2048):
                handle.write(b"x" * (1 << 20))  # 2 GiB, past the scratch space's size
    def shout():
        for _ in range(300):
            sys.stderr.write("y" * (1 << 20))  # 300 MiB to stderr: drained, only the tail kept
        raise RuntimeError("SHOUTED")
"""


class Attacked:
    """One `gradlint verify` run (one worker) over every hostile model, and what it left."""

    def __init__(self, scene: Scene, reports: list, rss_growth: int | None) -> None:
        self.scene, self.rss_growth = scene, rss_growth
        self.reports = {Path(r.file.split(" -> ")[-1]).name: r for r in reports}
        self.output = json.dumps([r.to_dict() for r in reports]) + render_text(reports, False)

    def error(self, name: str) -> str:
        return self.reports[name].error or ""

    def verdict(self, name: str) -> str:
        return self.reports[name].verdicts[0].verdict


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    _require_sandbox()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        project = tmp_path_factory.mktemp("attacked") / "project"
        project.mkdir()
        patch.chdir(project)
        scene = Scene(project, tmp_path_factory.mktemp("outside"))
        files = list(_placements(scene, project).values())
        forged = json.dumps({"nonce": "0" * 32, "status": "ok", "figures": {"gradients": {"nonfinite": True}}})
        files += [model_file(project, "forger.py", prelude=FORGE.format(line=(forged + "\n").encode()), init="forge()"),
                  model_file(project, "bomb.py", prelude=RESOURCES, init="bomb()"),
                  model_file(project, "fill.py", prelude=RESOURCES, init="fill()"),
                  model_file(project, "shout.py", prelude=RESOURCES, init="shout()"),
                  model_file(project, "nested.py", init="import os\n        for fd in range(3, 256):\n"
                             "            try:\n                os.write(fd, b'[' * 100000 + b']' * 100000 + b'\\n')\n"
                             "            except OSError:\n                pass\n        os._exit(0)"),
                  model_file(project, "poisoner.py", init="import torch; torch.nn.Linear.forward = "
                                                          "lambda self, x: x * 1e6; torch.manual_seed = print"),
                  model_file(project, "z_after.py")]  # a plain model after all that: measured as usual
        resident = _rss()
        reset = _rss_peak_reset()  # the peak set to what is resident now
        reports = _verify(files, scene)
        peak = _rss_peak_reset()
        try:
            yield Attacked(scene, reports, peak - resident if reset is not None and peak is not None else None)
        finally:
            scene.close()
            for pid in leftovers(scene.marker):  # never leave a stray process on a failure either
                os.kill(pid, 9)


def _verify(paths: list[Path], scene: Scene | None = None, **options) -> list:
    if scene is not None:
        scene.snapshot()
    results = lint_paths([str(p) for p in paths], Settings(select=("GL201",)), jobs=1)
    return verify_results(results, Settings(root="."), Options(**{"timeout": 300, **options}))


PLACEMENTS = ("init", "class_body", "default", "metaclass", "del", "daemon", "sibling")
FILES = {"init": "m_init.py", "class_body": "m_class.py", "default": "m_default.py", "metaclass": "m_meta.py",
         "del": "m_del.py", "daemon": "m_daemon.py", "sibling": "m_sibling.py"}


def test_the_hostile_code_ran_in_each_placement_inside_the_sandbox(attacked: Attacked) -> None:
    for placement in PLACEMENTS:
        error = attacked.error(FILES[placement])
        assert f"ATTEMPTED {placement}" in error, (placement, error)
    # registered, never run: the model's process ends without exit handlers (and atexit's code
    # would meet the same walls)
    assert attacked.reports["m_atexit.py"].status == "ok" and attacked.verdict("m_atexit.py") == "not confirmed"
    # the poisoner's own figures may lie (its code runs where it is measured); the next model's do not
    assert attacked.verdict("z_after.py") == "not confirmed", attacked.error("z_after.py")
    assert attacked.reports["z_after.py"].figures == attacked.reports["m_atexit.py"].figures
    assert attacked.reports["poisoner.py"].figures != attacked.reports["z_after.py"].figures  # the poison worked


def test_other_programs_and_python_write_nothing_outside_the_scratch_space(attacked: Attacked) -> None:
    # os.system, subprocess, posix_spawn, fork+exec, pty.fork; rename/replace/move/link/symlink
    # into the tree, dir_fd calls, utime, setxattr, mkfifo, chmod, truncate, torch.save, libc
    # through ctypes; after switching the audit hook off three ways
    attacked.scene.canaries_intact()


def test_no_connection_is_made_dns_and_udp_included(attacked: Attacked) -> None:
    attacked.scene.no_connection()  # TCP and UDP, from Python and from another program
    for placement in PLACEMENTS:
        error = attacked.error(FILES[placement])
        assert "interfaces=['lo']" in error and "resolv=False" in error, error  # no route to any resolver


def test_no_secret_reaches_the_worker_or_any_output(attacked: Attacked) -> None:
    assert FAKE not in attacked.output, "a secret reached gradlint's output"
    for placement in PLACEMENTS:
        error = attacked.error(FILES[placement])
        assert "found=[]" in error, error  # not in its environment, nor in any /proc/<pid>/environ it can read
        pids = int(error.split("pids=")[1].split()[0])
        assert pids <= 4, f"the model sees {pids} processes: its /proc is not the sandbox's own"


def test_no_process_outlives_its_model(attacked: Attacked) -> None:
    # a setsid grandchild, forty sleepers, a double fork; the fork bomb's sleepers (forks of the
    # worker: their command line names the project)
    assert leftovers(attacked.scene.marker) == []
    assert leftovers(str(attacked.scene.project)) == []


def test_a_forged_reply_and_a_signal_to_gradlint_change_nothing(attacked: Attacked) -> None:
    verdict = attacked.reports["forger.py"].verdicts[0]
    # its own result is measured or a protocol error (it wrote into its own pipe); never the forgery
    assert verdict.verdict == "not confirmed" or "worker protocol error" in verdict.reason, verdict.reason
    nested = attacked.reports["nested.py"].verdicts[0].reason  # 100,000 brackets into its own pipe, then exit
    assert "worker protocol error" in nested, nested
    assert attacked.verdict("z_after.py") == "not confirmed"  # gradlint and its worker carried on


def test_fork_bombs_the_disk_and_stderr_floods_are_bounded(attacked: Attacked) -> None:
    forked = int(attacked.error("bomb.py").split("FORKED ")[1].split()[0])
    if CAPS.cgroup or os.geteuid() != 0:
        assert forked < sandbox.TASKS, attacked.error("bomb.py")
    else:
        assert forked == 600  # root without a cgroup: the documented gap (all of them end with the model)
    fill = attacked.error("fill.py")
    assert "No space left" in fill or "File too large" in fill, fill
    assert "SHOUTED" in attacked.error("shout.py")
    if attacked.rss_growth is not None:
        assert attacked.rss_growth < 100 << 20, "gradlint kept the worker's stderr in memory"


def _rss() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) << 10 for line in handle if line.startswith("VmRSS:"))


def _rss_peak_reset() -> int | None:
    """This process's peak RSS since the last call (bytes), or None where it cannot be reset."""
    try:
        with open("/proc/self/status") as handle:
            peak = next(int(line.split()[1]) << 10 for line in handle if line.startswith("VmHWM:"))
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return peak
    except (OSError, StopIteration):
        return None


def test_memory_is_limited_across_the_models_processes(tmp_path: Path, monkeypatch) -> None:
    _require_sandbox()
    if not CAPS.cgroup:
        pytest.skip(f"no cgroup can be made here ({CAPS.cgroup_why}): --memory limits each process only "
                    "(the documented gap)")
    hog = """
        import os, time
        def hog():
            alive = []
            for _ in range(6):
                read, write = os.pipe()
                pid = os.fork()
                if pid == 0:
                    block = bytearray(200 << 20)
                    for i in range(0, len(block), 4096):
                        block[i] = 1  # touched: resident
                    os.write(write, b"x")
                    time.sleep(3600)
                    os._exit(0)
                os.close(write)
                if os.read(read, 1):
                    alive.append(pid)
            time.sleep(0.5)
            living = sum(1 for pid in alive if os.waitpid(pid, os.WNOHANG) == (0, 0))
            raise RuntimeError(f"LIVING {living}")
        """
    monkeypatch.chdir(tmp_path)
    reports = _verify([model_file(tmp_path, "hog.py", prelude=hog, init="hog()")], memory_mb=1000)
    error = reports[0].error or ""
    assert "LIVING" in error or "killed by SIGKILL" in error, error
    if "LIVING" in error:
        assert int(error.split("LIVING ")[1].split()[0]) * 200 < 1000, error  # 6 x 200 MiB never held at once
    assert leftovers(str(tmp_path)) == []


def test_models_run_in_the_worker_itself_as_on_cuda_are_contained_too(tmp_path: Path, monkeypatch) -> None:
    """On CUDA the models run one after the other in the worker (no fork): the sandbox still
    holds; what is lost is each model's own process (see the README)."""
    _require_sandbox()
    from gradlint.verify.runner import Worker

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.txt").write_text("canary\n")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    writes = f"import os; os.system('echo x > {outside}/canary.txt; echo x > {project}/new.txt')"
    files = [model_file(project, "writes.py", init=writes), model_file(project, "exits.py", init="import os; os._exit(3)"),
             model_file(project, "after.py")]
    results = lint_paths([str(p) for p in files], Settings(select=("GL201",)), jobs=1)
    worker = Worker(timeout=300, project=[str(project)], fork=False)
    from gradlint.verify import session

    monkeypatch.setattr(session, "Worker", lambda *args, **kwargs: worker)
    reports = {Path(r.file).name: r for r in verify_results(results, Settings(root="."), Options(timeout=300))}
    assert worker.ready["isolation"] == "in-process"
    assert reports["writes.py"].verdicts[0].verdict == "not confirmed"  # os.system ran, and wrote nothing
    assert "exited with code 3" in reports["exits.py"].error
    assert reports["after.py"].verdicts[0].verdict == "not confirmed"  # a fresh worker took over
    assert (outside / "canary.txt").read_text() == "canary\n" and sorted(os.listdir(project)) == sorted(
        p.name for p in files)
