"""The worker process that runs user models: one worker for all models of a run (torch is
imported once), restarted if it dies.

Containment comes from the operating system (`gradlint.verify.sandbox`): namespaces through
bubblewrap, Landlock, a cgroup where one can be made, an allow-listed environment, and gradlint
non-dumpable while a worker runs. Without a sandbox (`sandbox=False`, the CLI's --no-sandbox) only
the environment allow-list, the per-process limits, the timeout and the audit-hook tripwire remain.

The reply channel: the worker answers each request on a descriptor that the model's code never
holds (on the CPU each model runs in a fork of the worker). Each reply must carry the request's
nonce and follow the schema, within size limits; anything else (garbage, a second line, a reply
to another request) ends the worker and becomes "worker protocol error". The worker's stderr is
drained as it comes and only its tail kept. A crash, hang or out-of-memory in user code becomes
an error reply, never an exception in gradlint.

The memory limit: on the CPU an address-space limit (RLIMIT_AS) of `memory_mb` for each process,
and, in a cgroup, `memory_mb` for the whole process tree; on a CUDA device no address-space
limit (the CUDA driver reserves far more virtual address space than any such limit allows, and
fails to initialise under one) but a cap of `memory_mb` on the worker's GPU memory (torch's
caching allocator), so host memory is not limited there.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import time

from gradlint.verify import sandbox

DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_MB = 8192
REPLY_LIMIT = 32 << 20  # bytes of one reply line
STDERR_TAIL = 64 << 10  # bytes of the worker's stderr kept (the rest is read and dropped)
GRACE = 30.0  # seconds the worker gets beyond a model's timeout to end it and answer itself
_REPLY_KEYS = {"nonce", "id", "status", "figures", "error", "restart"}


def scrubbed_environment(home: str) -> dict[str, str]:
    """The worker's environment: an allow-list (see `sandbox.worker_environment`)."""
    return sandbox.worker_environment(home)


class WorkerStartError(RuntimeError):
    pass


class DeviceUnavailableError(WorkerStartError):
    """The worker started but cannot use the requested device (no CUDA, a broken driver)."""


class SandboxUnavailableError(WorkerStartError):
    """The sandbox was required and this machine cannot make one."""


class ProtocolError(ValueError):
    pass


def uses_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


_holders = 0
_was_dumpable = True


def _hold_non_dumpable() -> None:
    global _holders, _was_dumpable
    if _holders == 0:
        _was_dumpable = sandbox.set_dumpable(False)
    _holders += 1


def _release_non_dumpable() -> None:
    global _holders
    _holders -= 1
    if _holders == 0 and _was_dumpable:
        sandbox.set_dumpable(True)


class Worker:
    """`sandbox`: run the worker in the OS sandbox (refuse to start where there is none);
    `project`: directories the models' code may read (more are added when a request needs them);
    `fork`: each model in a fork of the worker (the default on the CPU; a CUDA context cannot
    cross a fork, so on CUDA the models run in the worker itself)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB, device: str = "cpu",
                 sandbox: bool = True, project: list[str] | tuple[str, ...] = (), fork: bool | None = None) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.device = device
        self.sandboxed = sandbox
        self.project = [os.path.abspath(p) for p in project]
        self.forking = not uses_cuda(device) and hasattr(os, "fork") if fork is None else fork
        self.process: subprocess.Popen | None = None
        self.directory: str | None = None  # the scratch directory without a sandbox
        self.layout: sandbox.Layout | None = None
        self.limits: sandbox.TreeLimits | None = None
        self.ready: dict = {}
        self._holding = False
        self._tail = bytearray()
        self._next = 0

    def _limits(self) -> None:  # runs in the child, before exec
        if uses_cuda(self.device):  # CUDA cannot initialise under an address-space limit; the worker caps GPU memory
            return
        try:
            import resource

            limit = self.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass

    def _before_exec(self) -> None:  # runs in the child, before exec (POSIX only)
        import resource

        self._limits()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        size = sandbox.SCRATCH_MB << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        if self.limits is not None:
            self.limits.join()

    def _command(self) -> tuple[list[str], str, str]:
        """The worker's command line, its HOME and its working directory."""
        worker = ["-m", "gradlint.verify.worker", "--device", str(self.device), "--memory-mb", str(self.memory_mb),
                  *([] if self.forking else ["--in-process"])]
        if not self.sandboxed:
            self.directory = self.directory or tempfile.mkdtemp(prefix="gradlint-verify-")
            confinement = {"scratch": self.directory, "sandboxed": False, "landlock": None}
            return [*sandbox.python_command(), *worker, "--confine", json.dumps(confinement)], self.directory, \
                self.directory
        caps = sandbox.capabilities()
        if not caps.usable:
            raise SandboxUnavailableError(f"no sandbox on this machine: {caps.why}")
        self.layout = sandbox.Layout.for_project(self.project, cuda=uses_cuda(self.device))
        limits = sandbox.TreeLimits.create(None if uses_cuda(self.device) else self.memory_mb << 20, sandbox.TASKS)
        self.limits = limits if isinstance(limits, sandbox.TreeLimits) else None
        confinement = {"scratch": sandbox.SCRATCH, "sandboxed": True,
                       "landlock": self.layout.landlock_policy() if caps.landlock_abi else None}
        command = sandbox.sandbox_command(caps, self.layout, [*sandbox.python_command(), *worker, "--confine",
                                                              json.dumps(confinement)])
        return command, sandbox.SCRATCH, "/"

    def start(self) -> None:
        command, home, cwd = self._command()
        if not self._holding:
            _hold_non_dumpable()
            self._holding = True
        self._tail = bytearray()
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                env=sandbox.worker_environment(home, sandbox.user_site_paths()), close_fds=True,
                start_new_session=True, preexec_fn=self._before_exec if os.name == "posix" else None)
        except OSError as exc:
            self.stop()
            raise WorkerStartError(f"cannot start the worker: {exc}") from None
        for stream in (self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
        try:
            ready = self._ready(self._read_line(max(120.0, self.timeout)))
        except ProtocolError as exc:
            self.stop()
            raise WorkerStartError(f"worker protocol error: {exc}") from None
        if not ready.get("ready"):
            self.stop()
            if ready.get("device_unavailable"):
                raise DeviceUnavailableError(ready.get("error"))
            raise WorkerStartError(self._start_failure(ready))
        self.ready = ready

    @staticmethod
    def _ready(line: bytes | str) -> dict:
        if isinstance(line, str):
            return {"ready": False, line: True}
        try:
            ready = json.loads(line)
        except (ValueError, RecursionError):
            raise ProtocolError("its first line is not JSON") from None
        if not isinstance(ready, dict) or not isinstance(ready.get("ready"), bool):
            raise ProtocolError("its first line is not a ready line")
        return ready

    def _start_failure(self, ready: dict) -> str:
        if isinstance(ready.get("error"), str):
            return _printable(ready["error"])
        tail = self._stderr_tail()
        return "the worker did not start" + (f"; last output: {tail}" if tail else "")

    def _stderr_tail(self) -> str:
        lines = bytes(self._tail).decode(errors="replace").strip().splitlines()
        return _printable(lines[-1][:200]) if lines else ""

    def _read_line(self, timeout: float) -> bytes | str:
        """One line from the worker's stdout (its stderr drained meanwhile, the tail kept), or
        "timeout", "eof", "overflow" or "extra" (more than one line)."""
        assert self.process is not None and self.process.stdout and self.process.stderr
        out, err = self.process.stdout.fileno(), self.process.stderr.fileno()
        selector = selectors.DefaultSelector()
        selector.register(out, selectors.EVENT_READ)
        selector.register(err, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "timeout"
                for key, _ in selector.select(timeout=remaining):
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if key.fd == err:
                        if not chunk:
                            selector.unregister(err)
                        self._tail += chunk
                        del self._tail[:-STDERR_TAIL]
                        continue
                    if not chunk:
                        return "eof"
                    buffer += chunk
                    if b"\n" in buffer:
                        line, rest = bytes(buffer).split(b"\n", 1)
                        return "extra" if rest.strip() else line
                    if len(buffer) > REPLY_LIMIT:
                        return "overflow"
        finally:
            selector.close()

    def _drain_stderr(self, timeout: float) -> None:
        """What is left on the worker's stderr once it has ended (its tail kept)."""
        assert self.process is not None and self.process.stderr
        fd, deadline = self.process.stderr.fileno(), time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline and selector.select(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                self._tail += chunk
                del self._tail[:-STDERR_TAIL]

    def _covers(self, payload: dict) -> bool:
        wanted = [os.path.abspath(p) for p in payload.get("sys_path", []) if p]
        if payload.get("file"):
            wanted.append(os.path.dirname(os.path.abspath(payload["file"])))
        new = [p for p in wanted if p not in self.project]
        self.project += new
        return not new or self.layout is None or self.layout.covers(new)

    def request(self, payload: dict) -> dict:
        """Send one request; the reply, or an error reply if the worker hangs, dies or fails."""
        if self.sandboxed and not self._covers(payload) and self.process is not None:
            self.stop()  # the sandbox must show this model's directories: a new one will
        if self.process is None or self.process.poll() is not None:
            try:
                self.start()
            except WorkerStartError as exc:
                return {"status": "error", "error": f"the verifier's worker could not start: {exc}"}
        assert self.process is not None and self.process.stdin
        self._next += 1
        nonce = secrets.token_hex(16)
        self._tail = bytearray()
        try:
            self.process.stdin.write((json.dumps({**payload, "id": self._next, "nonce": nonce,
                                                  "timeout": self.timeout}) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        line = self._read_line(self.timeout + GRACE if self.forking else self.timeout)
        if line == "timeout":
            self.stop()
            return {"status": "error", "error": f"timed out after {self.timeout:g} s (a hang or a very slow model); "
                                                "raise --timeout if the model is just large"}
        if line == "eof":
            return self._died()
        try:
            reply = _validated(line, nonce)
        except ProtocolError as exc:
            self.stop()
            return {"status": "error", "error": f"worker protocol error: {exc}"}
        if reply.pop("restart", False):  # e.g. a CUDA error: the context is lost, the next model gets a fresh worker
            self.stop()
        if reply["status"] == "error" and "ended its process" in reply["error"]:
            tail = self._stderr_tail()
            reply["error"] += f"; last output: {tail}" if tail else ""
        return reply

    def _died(self) -> dict:
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._drain_stderr(1.0)
        tail = self._stderr_tail()
        self.stop()
        if code is not None and self.sandboxed and code > 128:  # bwrap reports a signal as 128 + its number
            code = -(code - 128)
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            cause = f"was killed by {name}" + (" (out of memory? raise --memory)" if name in ("SIGKILL", "SIGSEGV") else "")
        else:
            cause = f"exited with code {code}"
        memory = " (out of memory: raise --memory)" if "MemoryError" in tail or "alloc" in tail.lower() else ""
        return {"status": "error", "error": f"the model's code ended the worker process: it {cause}{memory}"
                                            + (f"; last output: {tail}" if tail else "")}

    def stop(self) -> None:
        """End the worker and everything it started, now."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # bwrap's monitor: the sandbox dies with it
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                try:
                    stream.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            self.process = None
        if self.limits is not None:
            self.limits.remove()  # whatever is left in the cgroup is killed first
            self.limits = None
        if self._holding:
            _release_non_dumpable()
            self._holding = False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _validated(line: bytes, nonce: str) -> dict:
    """The reply in `line` if it answers the request sent with `nonce` and follows the schema."""
    try:
        reply = json.loads(line)
    except (ValueError, RecursionError):
        raise ProtocolError("the reply is not JSON (or nested past Python's limit)") from None
    if not isinstance(reply, dict):
        raise ProtocolError("the reply is not an object")
    if not isinstance(reply.get("nonce"), str) or not hmac.compare_digest(reply["nonce"], nonce):
        raise ProtocolError("the reply does not answer this request")
    if set(reply) - _REPLY_KEYS:
        raise ProtocolError("the reply has unknown fields")
    status = reply.get("status")
    if status == "ok":
        if not isinstance(reply.get("figures"), dict) or not _plain(reply["figures"]):
            raise ProtocolError("the reply's figures are malformed")
        reply["figures"] = _cleaned(reply["figures"])
    elif status == "error":
        if not isinstance(reply.get("error"), str):
            raise ProtocolError("an error reply without its error")
        reply["error"] = _printable(reply["error"][:2000])
    else:
        raise ProtocolError("the reply has no valid status")
    if not isinstance(reply.get("restart", False), bool):
        raise ProtocolError("the reply's restart flag is not a boolean")
    reply.pop("nonce")
    reply.pop("id", None)
    return reply


def _plain(value, depth: int = 0) -> bool:
    """JSON objects with string keys, lists, numbers, strings, booleans and null, 32 levels deep at most."""
    if depth > 32:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _cleaned(value):
    """`value` with control characters escaped in every string (keys too)."""
    if isinstance(value, dict):
        return {_printable(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return _printable(value) if isinstance(value, str) else value


def _printable(text: str) -> str:
    """Control characters escaped: what the worker says reaches terminals and CI logs."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
