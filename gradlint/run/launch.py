"""`gradlint run`'s parent process: start the child that runs the script, wait for it (Ctrl-C
reaches the child from the terminal; the parent waits for its report), and read its
measurements. No torch here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile

import gradlint

_BOOTSTRAP = ("import sys; sys.path.append({root!r}); "
              "from gradlint.run.child import main; main()")


def run_script(script: str, args: list[str], steps: int = 200, time_limit: float | None = None,
               progress: bool = False) -> dict:
    """Run `python SCRIPT ARGS` under the recorder for at most `steps` optimizer steps; the
    measurements (see gradlint.run.recorder) with the script's outcome."""
    handle, output = tempfile.mkstemp(prefix="gradlint-run-", suffix=".json")
    os.close(handle)
    config = {"script": script, "args": list(args), "output": output, "steps": steps, "time_limit": time_limit,
              "progress": progress}
    # gradlint is appended to the path (never put first): the script's own modules keep priority
    root = os.path.dirname(os.path.dirname(os.path.abspath(gradlint.__file__)))
    command = [sys.executable, "-c", _BOOTSTRAP.format(root=root), json.dumps(config)]
    process = subprocess.Popen(command)
    forward = lambda signum, _frame: process.send_signal(signum)  # noqa: E731
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: None),  # the terminal sent it to the child too
                signal.SIGTERM: signal.signal(signal.SIGTERM, forward)}
    try:
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    try:
        with open(output, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        data = {}
    finally:
        try:
            os.unlink(output)
        except OSError:
            pass
    if not data or data.get("status") == "running":  # the child died before writing its final report
        data = {**data, "status": "killed", "exit_code": code}
        if code < 0:
            try:
                data["signal"] = signal.Signals(-code).name
            except ValueError:
                data["signal"] = str(-code)
    data.setdefault("script", os.path.abspath(script))
    data.setdefault("argv", [script, *args])
    return data
