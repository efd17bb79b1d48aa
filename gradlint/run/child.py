"""The process that runs the user's script for `gradlint run`:

    python -m gradlint.run.child CONFIG_JSON

runs CONFIG's script as `python SCRIPT ARGS` would (as `__main__`, its directory first on
sys.path, the same working directory and argv), with the recorder's hooks installed, and writes
the measurements as JSON to CONFIG's output path: on a normal end, on `--steps`/`--time-limit`,
on an exception, on `sys.exit`, on Ctrl-C, and every few seconds on the way (so a process killed
outright still leaves figures). The script's stdout and stderr are the terminal's.

Under `torchrun` every rank runs one of these; each sends its measurements to rank 0 through
the process group's rendezvous store (no collective: ranks that stopped at different points
cannot deadlock), and rank 0 writes them all.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
import traceback

GATHER_TIMEOUT = 120.0  # seconds rank 0 waits for the other ranks' measurements
EXIT_GRACE = 30.0  # seconds for the script's threads and atexit handlers once it has stopped


def _write(path: str, data: dict) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, default=_plain)
    os.replace(temporary, path)


def _plain(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _user_modules(script_dir: str) -> list[str]:
    """The project's own modules the script imported: files under its directory or the working
    directory, not in an installed package."""
    roots = tuple(os.path.realpath(r) + os.sep for r in {script_dir, os.getcwd()})
    prefix = os.path.realpath(sys.prefix) + os.sep
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py") or not os.path.isabs(path) or not os.path.isfile(path):
            continue
        real = os.path.realpath(path)
        if real.startswith(roots) and not real.startswith(prefix) and "site-packages" not in real:
            found.append(real)
    return sorted(set(found))


def _exception(exc: BaseException, script: str) -> dict:
    """Where the script raised: the innermost frame in the project's own files."""
    frames = traceback.extract_tb(exc.__traceback__)
    script_dir = os.path.dirname(script) + os.sep
    mine = [f for f in frames if os.path.abspath(f.filename).startswith(script_dir)]
    where = mine[-1] if mine else (frames[-1] if frames else None)
    return {"type": type(exc).__name__, "message": str(exc)[:500],
            "file": os.path.abspath(where.filename) if where else None, "line": where.lineno if where else None}


def _print_traceback(exc: BaseException, script: str) -> None:
    """As `python SCRIPT` prints it: from the script's first frame on, not from runpy's."""
    tb = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != script:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)


def _gather(recorder, data: dict) -> dict:
    """Under torchrun: rank 0 collects every rank's measurements through the store."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    data["rank"], data["world_size"] = rank, world
    if world <= 1:
        return data
    store = recorder.store
    if not store:
        data["gather_error"] = "the script did not initialise torch.distributed: each rank reports alone"
        return data
    import datetime

    key = "gradlint_run/{}"
    try:
        store.set(key.format(rank), json.dumps(data, default=_plain))
        if rank != 0:
            return data
        store.wait([key.format(r) for r in range(world)], datetime.timedelta(seconds=GATHER_TIMEOUT))
        ranks = [json.loads(store.get(key.format(r))) for r in range(world)]
    except Exception as exc:  # noqa: BLE001 - a rank that died: report what we have
        data["gather_error"] = f"could not gather the other ranks' figures: {type(exc).__name__}: {exc}"[:300]
        return data
    return {**data, "ranks": ranks}


def main() -> None:
    config = json.loads(sys.argv[1])
    script = os.path.abspath(config["script"])
    output = config["output"]
    sys.argv = [config["script"], *config.get("args", [])]
    sys.path[0] = os.path.dirname(script)  # `python -m` put the working directory there

    from gradlint.run.recorder import Recorder, StopRun

    def snapshot(measurements: dict) -> None:
        _write(output, {**measurements, "status": "running", "script": script, "argv": sys.argv})

    recorder = Recorder(config.get("steps", 200), config.get("time_limit"),
                        progress=config.get("progress", False) and sys.stderr.isatty(), snapshot=snapshot)
    outcome: dict = {}
    recorder.install()
    try:
        runpy.run_path(script, run_name="__main__")
        outcome = {"status": "completed", "exit_code": 0}
    except StopRun as stop:
        outcome = {"status": "stopped", "exit_code": 0, "reason": stop.reason}
    except SystemExit as exc:
        code = exc.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
        outcome = {"status": "exited", "exit_code": code if isinstance(code, int) else (0 if code is None else 1)}
    except KeyboardInterrupt:
        if recorder.stop_reason:  # the time limit interrupted a script that stopped stepping
            outcome = {"status": "stopped", "exit_code": 0, "reason": recorder.stop_reason}
        else:
            outcome = {"status": "interrupted", "exit_code": 130}
    except BaseException as exc:  # noqa: BLE001 - the script's own error: shown as python shows it, and reported
        _print_traceback(exc, script)
        outcome = {"status": "exception", "exit_code": 1, "exception": _exception(exc, script)}
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not lose the report
        recorder.uninstall()
        recorder.clear_progress()
    data = {**recorder.measurements(), **outcome, "script": script, "argv": sys.argv, "cwd": os.getcwd(),
            "modules": _user_modules(os.path.dirname(script))}
    data = _gather(recorder, data)
    _write(output, data)
    code = outcome.get("exit_code", 0)
    # exit as python would (atexit handlers, flushed streams), but never hang on a thread the
    # stopped script left running
    watchdog = threading.Timer(EXIT_GRACE, os._exit, (code,))
    watchdog.daemon = True
    watchdog.start()
    sys.exit(code)


if __name__ == "__main__":
    main()
