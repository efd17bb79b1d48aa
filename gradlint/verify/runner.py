"""The isolated child process that runs user models: one worker for all models of a run
(torch is imported once), restarted if user code kills it.

Isolation: a scrubbed environment (no tokens, keys, secrets or cloud credentials), a temporary
working directory, no inherited file descriptors, its own process group, a memory limit, and a
wall-clock timeout per model. A crash, hang or out-of-memory in user code becomes an error
reply, never an exception in gradlint.

The memory limit: on the CPU an address-space limit (RLIMIT_AS) of `memory_mb`; on a CUDA
device no address-space limit (the CUDA driver reserves far more virtual address space than any
such limit allows, and fails to initialise under one) but a cap of `memory_mb` on the worker's
GPU memory (torch's caching allocator), so host memory is not limited there.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION|^AWS_|^AZURE_|^GOOGLE_|^GCP_|^GH_|^HF_", re.I)
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_MB = 8192


def scrubbed_environment(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _SECRET.search(k)}
    env["HOME"] = home
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", str(max(1, min(4, os.cpu_count() or 1))))
    return env


class WorkerStartError(RuntimeError):
    pass


class DeviceUnavailableError(WorkerStartError):
    """The worker started but cannot use the requested device (no CUDA, a broken driver)."""


def uses_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


class Worker:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB, device: str = "cpu") -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.device = device
        self.process: subprocess.Popen | None = None
        self.directory: str | None = None
        self.stderr_path: str | None = None
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

    def start(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="gradlint-verify-")
        self.stderr_path = os.path.join(self.directory, "stderr.txt")
        stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gradlint.verify.worker", "--device", str(self.device),
             "--memory-mb", str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            cwd=self.directory, env=scrubbed_environment(self.directory), close_fds=True,
            start_new_session=True, preexec_fn=self._limits if os.name == "posix" else None,
        )
        stderr.close()
        ready = self._read_line(max(120.0, self.timeout))
        if not isinstance(ready, dict) or not ready.get("ready"):
            self.stop()
            if isinstance(ready, dict) and ready.get("device_unavailable"):
                raise DeviceUnavailableError(ready.get("error"))
            raise WorkerStartError(self._start_failure(ready))

    def _start_failure(self, ready) -> str:
        if isinstance(ready, dict) and ready.get("error"):
            return str(ready["error"])
        tail = self._stderr_tail()
        return "the worker did not start" + (f"; last output: {tail}" if tail else "")

    def _stderr_tail(self) -> str:
        if self.stderr_path and os.path.exists(self.stderr_path):
            with open(self.stderr_path, "rb") as handle:
                lines = handle.read().decode(errors="replace").strip().splitlines()
            return lines[-1][:200] if lines else ""
        return ""

    def _read_line(self, timeout: float) -> dict:
        assert self.process is not None and self.process.stdout
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buffer = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {"status": "error", "timeout": True}
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(self.process.stdout.fileno(), 1 << 16)
                if not chunk:
                    return {"status": "error", "eof": True}
                buffer += chunk
                if b"\n" in buffer:
                    return json.loads(buffer.split(b"\n", 1)[0])
        finally:
            selector.close()

    def request(self, payload: dict) -> dict:
        """Send one request; the reply, or an error reply if the worker hangs, dies or fails."""
        if self.process is None or self.process.poll() is not None:
            try:
                self.start()
            except WorkerStartError as exc:
                return {"status": "error", "error": f"the verifier's worker could not start: {exc}"}
        assert self.process is not None and self.process.stdin and self.process.stdout
        self._next += 1
        payload = {**payload, "id": self._next}
        try:
            self.process.stdin.write((json.dumps(payload) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        reply = self._read_line(self.timeout)
        if reply.get("timeout"):
            self.stop()
            return {"status": "error", "error": f"timed out after {self.timeout:g} s (a hang or a very slow model); "
                                                "raise --timeout if the model is just large"}
        if reply.get("eof"):
            return self._died()
        if reply.pop("restart", False):  # e.g. a CUDA error: the context is lost, the next model gets a fresh worker
            self.stop()
        return reply

    def _died(self) -> dict:
        code = self.process.wait(timeout=5) if self.process else None
        tail = self._stderr_tail()
        self.process = None
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            cause = f"was killed by {name}" + (" (out of memory? raise --memory)" if name in ("SIGKILL", "SIGSEGV") else "")
        else:
            cause = f"exited with code {code}"
        memory = " (out of memory: raise --memory)" if "MemoryError" in tail or "alloc" in tail.lower() else ""
        return {"status": "error", "error": f"the model's code ended the worker process: it {cause}{memory}"
                                            + (f"; last output: {tail}" if tail else "")}

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.stop()
        self.process = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
