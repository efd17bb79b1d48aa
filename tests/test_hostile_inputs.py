"""`check` and `--fix` against files a hostile pull request could contain (issue 18): special
files, links out of the tree, read-only files, huge and deeply nested files, control characters
in names, a project module that shadows one of gradlint's imports.

Each case runs `python -m gradlint` in a child process with a generous hang guard (a hang or a
native crash must fail the test, not the suite) and reads that child's own peak memory from
`wait4` (on Linux it counts the test process's pages shared at fork too: an upper bound).
Nothing here depends on speed: the guards are minutes, the memory bounds gigabytes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs, sockets, /dev/zero and wait4 are POSIX")

# a policy-gradient step (advantages in the loss): GL101 at warning level
BAD = "import torch\nfor x in loader:\n    loss = advantages * model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
HANG_GUARD_S = 300


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("gradlint: error: ")]


def gradlint(*args: str, cwd: Path, env: dict | None = None) -> Run:
    """`python -m gradlint ARGS` in `cwd`; killed (and the test failed) if it outlives the guard."""
    process = subprocess.Popen([sys.executable, "-m", "gradlint", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "GRADLINT_NO_CACHE": "1", **(env or {})})
    timer = threading.Timer(HANG_GUARD_S, os.killpg, (process.pid, signal.SIGKILL))
    timer.start()
    chunks: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=n, s=s: chunks.__setitem__(n, s.read()))
               for n, s in (("out", process.stdout), ("err", process.stderr))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    timer.cancel()
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode != -signal.SIGKILL, f"gradlint {args} ran past the {HANG_GUARD_S} s hang guard"
    assert process.returncode >= 0, f"gradlint {args} died of signal {-process.returncode}"
    peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Run(process.returncode, chunks["out"].decode(), chunks["err"].decode(), peak)


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.output, run.output


# --- reading: only regular files, bounded -----------------------------------------------------


def special_files(tree: Path) -> dict[str, str]:
    """Every kind of file that is not a regular file, under a .py name; name -> expected reason."""
    os.mkfifo(tree / "fifo.py")
    (tree / "zero.py").symlink_to("/dev/zero")
    (tree / "null.py").symlink_to("/dev/null")
    (tree / "loop.py").symlink_to(tree / "loop.py")
    (tree / "dangling.py").symlink_to(tree / "missing.py")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tree / "sock.py"))
    listener.close()
    return {
        "fifo.py": "is a named pipe (FIFO), not a regular file; not read",
        "zero.py": "links to a character device, not a regular file; not read",
        "null.py": "links to a character device, not a regular file; not read",
        "loop.py": "is a symbolic link loop; not read",
        "dangling.py": "is a symbolic link to a missing file; not read",
        "sock.py": "is a socket, not a regular file; not read",
    }


def test_special_files_get_one_line_each_and_never_hang(tmp_path: Path) -> None:
    if len(str(tmp_path / "sock.py")) > 100:
        pytest.skip("the temporary path is too long for a Unix socket")
    expected = special_files(tmp_path)
    (tmp_path / "good.py").write_text(BAD)
    # named on the command line (one process, in order), then found by walking the directory
    # together with enough files for the process pool
    named = gradlint("check", *expected, "good.py", cwd=tmp_path)
    for name in range(8):
        (tmp_path / f"pad{name}.py").write_text("x = 1\n")
    walked = gradlint("check", "-j", "2", ".", cwd=tmp_path)
    fixed = gradlint("check", "--fix", *expected, "good.py", cwd=tmp_path)
    for run, prefix in ((named, ""), (walked, "./"), (fixed, "")):
        no_traceback(run)
        assert run.returncode == 2
        assert sorted(run.errors()) == sorted(f"gradlint: error: {prefix}{name}: {why}" for name, why in expected.items())
        assert run.peak_mb < 1000, f"{run.peak_mb:.0f} MB"  # /dev/zero once took 6 GB
    assert "good.py:5:5: GL101" in named.stdout and "./good.py:5:5: GL101" in walked.stdout
    # a link loop as the first path: the config search starts from it (it crashed there once)
    (tmp_path / "other.py").write_text(BAD)
    first = gradlint("check", "loop.py", "other.py", cwd=tmp_path)
    no_traceback(first)
    assert first.errors() == ["gradlint: error: loop.py: is a symbolic link loop; not read"]
    assert first.returncode == 2 and "other.py:5:5: GL101" in first.stdout
    assert "clip_grad_norm_" in (tmp_path / "good.py").read_text()  # the rest of the run completed
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo.py").st_mode) and os.path.islink(tmp_path / "zero.py")


def test_explain_model_reads_only_regular_files_too(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.py")
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    run = gradlint("explain-model", "fifo.py", "zero.py", cwd=tmp_path)
    no_traceback(run)
    assert run.returncode == 2 and len(run.errors()) == 2


def test_files_too_large_are_one_line_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """A 50 MB file a rule wants is refused after reading (the analyses hold about 1 GB per MB);
    a 50 MB file no rule wants is read and passed, as small ones are; one over the read limit
    is refused unread. Once a 58 MB file ran past 300 s at 10.7 GB."""
    line = "loss.backward(); optimizer.step(); layer = nn.Linear(4, 4)  # torch\n"
    (tmp_path / "wanted.py").write_text("import torch\nimport torch.nn as nn\n" + line * (50_000_000 // len(line)))
    (tmp_path / "data.py").write_text("x = [1, 2, 3]\n" * (50_000_000 // 14))
    with open(tmp_path / "huge.py", "wb") as handle:
        handle.truncate(70_000_000)  # sparse: its size alone refuses it
    (tmp_path / "good.py").write_text(BAD)
    run = gradlint("check", "wanted.py", "data.py", "huge.py", "good.py", cwd=tmp_path)
    no_traceback(run)
    assert run.returncode == 2
    assert run.errors() == [
        "gradlint: error: wanted.py: too large to analyse (50.0 million characters of code; the limit is 1 million): "
        "split it or exclude it (extend-exclude)",
        "gradlint: error: huge.py: too large (70.0 MB; the limit is 64 MB): not read; split it or exclude it "
        "(extend-exclude)",
    ]
    assert "good.py:5:5: GL101" in run.stdout
    assert run.peak_mb < 1500, f"{run.peak_mb:.0f} MB"


def test_an_and_chain_that_would_overflow_the_native_parser_is_one_line(tmp_path: Path) -> None:
    """libcst's parser recurses per operand of `a and b and ...` and segfaulted near 8,000."""
    (tmp_path / "chain.py").write_text(BAD + "ok = " + "a and " * 20_000 + "b\n")
    (tmp_path / "short.py").write_text(BAD + "ok = " + "a and " * 50 + "b\n")
    (tmp_path / "words.py").write_text(BAD + "# " + "this and that or " * 2_000 + "\n")  # words in a comment
    run = gradlint("check", "chain.py", "short.py", "words.py", cwd=tmp_path)
    no_traceback(run)
    assert run.errors() == ["gradlint: error: chain.py:6:6: an `and` chain of 20001 operands is more than gradlint "
                            "analyses (1000); split it"]
    assert "short.py:5:5: GL101" in run.stdout and "words.py:5:5: GL101" in run.stdout


# --- writing: never through a link, never a read-only file ------------------------------------


def snapshot(directory: Path) -> dict[str, tuple]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_fix_never_writes_outside_the_tree_or_to_read_only_files(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.py").write_text(BAD)
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "link.py").symlink_to(outside / "victim.py")  # a file link inside the tree
    (tree / "linked_dir").symlink_to(outside, target_is_directory=True)  # a directory link: never walked
    (tree / "readonly.py").write_text(BAD)
    (tree / "readonly.py").chmod(0o444)
    (tree / "pkg" / "ok.py").write_text(BAD)
    before = snapshot(outside)
    readonly = (tree / "readonly.py").read_bytes()

    run = gradlint("check", "--fix", ".", cwd=tree)
    named = gradlint("check", "--fix", "link.py", "readonly.py", cwd=tree)
    for result in (run, named):
        no_traceback(result)
        assert result.returncode == 2
    assert sorted(run.errors()) == [
        "gradlint: error: ./link.py: is a symbolic link; --fix does not write through links (name the file it points to)",
        "gradlint: error: ./readonly.py: is read-only; not written",
    ]
    assert len(named.errors()) == 2
    assert snapshot(outside) == before  # nothing outside the tree written
    assert os.path.islink(tree / "link.py") and (tree / "readonly.py").read_bytes() == readonly
    assert stat.S_IMODE((tree / "readonly.py").stat().st_mode) == 0o444
    assert "clip_grad_norm_" in (tree / "pkg" / "ok.py").read_text()  # the rest of the run was fixed
    assert not [p for p in tree.rglob(".*gradlint-tmp")]
    # the file a link points to is fixed when it is named itself
    assert gradlint("check", "--fix", str(outside / "victim.py"), cwd=tree).returncode == 0
    assert "clip_grad_norm_" in (outside / "victim.py").read_text()


def test_a_file_replaced_by_a_link_after_reading_is_not_written_through(tmp_path: Path, monkeypatch) -> None:
    """The write checks the path itself at write time (lstat through the directory's fd), not
    what was read earlier."""
    from gradlint.fixing import write_atomically
    from gradlint.source import read_source

    outside = tmp_path / "outside.py"
    outside.write_text("keep me\n")
    path = tmp_path / "train.py"
    path.write_text(BAD)
    source = read_source(str(path))
    path.unlink()
    path.symlink_to(outside)
    assert write_atomically(source, b"new\n").startswith("is a symbolic link")
    assert outside.read_text() == "keep me\n" and path.is_symlink()


# --- configuration numbers ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e400", "-1e400", "nan", "inf", "0", "-1.0", "0.0"])
def test_config_numbers_must_be_finite_and_positive(tmp_path: Path, value: str) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    (tmp_path / "train.py").write_text(BAD)
    (tmp_path / "gradlint.toml").write_text(f"[options.GL101]\nmax-norm = {value}\n")
    result = CliRunner().invoke(main, ["check", "--no-cache", "--fix", str(tmp_path / "train.py")])
    assert result.exit_code == 2
    assert "options.GL101.max-norm must be a finite number above 0" in result.output
    assert (tmp_path / "train.py").read_text() == BAD  # and nothing was written
    (tmp_path / "gradlint.toml").write_text("[options.GL201]\nmin-depth = 0\n")
    result = CliRunner().invoke(main, ["check", "--no-cache", str(tmp_path / "train.py")])
    assert result.exit_code == 2 and "options.GL201.min-depth must be a finite number above 0" in result.output
    (tmp_path / "gradlint.toml").write_text("[options.GL101]\nmax-norm = 1e300\n")  # large, finite: allowed
    result = CliRunner().invoke(main, ["check", "--no-cache", "--fix", str(tmp_path / "train.py")])
    assert result.exit_code == 0 and "max_norm=1e+300" in (tmp_path / "train.py").read_text()


def test_config_files_are_read_like_sources(tmp_path: Path) -> None:
    """A config that is a FIFO, a link to /dev/zero or 100k-deep TOML is one line, not a hang."""
    (tmp_path / "train.py").write_text(BAD)
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    for config, reason in (("deep.toml", "invalid TOML: nested too deeply"),
                           ("zero.toml", "links to a character device"), ("fifo.toml", "is a named pipe")):
        run = gradlint("check", "--config", config, "train.py", cwd=tmp_path)
        no_traceback(run)
        assert run.returncode == 2 and reason in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr


# --- control characters in names and messages ---------------------------------------------


FORGED = "evil\n::error file=x.py,line=1::forged\x1b[2J\x1b]0;title\x07\u202eyp.py"


def test_control_characters_in_names_are_escaped_in_every_format(tmp_path: Path) -> None:
    """A newline in a file name must not start a line of its own (in CI, a forged `::error`
    workflow command), and no escape sequence may reach the terminal, in any format."""
    (tmp_path / FORGED).write_text(BAD)
    (tmp_path / "broken\x1b[31m.py").write_text("def (:\n")  # an error line with an escape in its name
    os.mkfifo(tmp_path / "pipe\n::error::x.py")
    shown = "evil\\n::error file=x.py,line=1::forged\\x1b[2J\\x1b]0;title\\x07\\u202eyp.py"
    for fmt in ("text", "concise", "full", "github", "json", "json-lines", "sarif"):
        run = gradlint("check", "--format", fmt, ".", cwd=tmp_path)
        no_traceback(run)
        for line in run.stdout.splitlines() + run.stderr.splitlines():
            assert not line.startswith("::error file=x.py"), (fmt, line)
            if fmt != "github":
                assert not line.startswith("::"), (fmt, line)
        assert not any(c in run.output for c in "\x1b\x07\u202e"), fmt
        assert len(run.errors()) == 2, (fmt, run.stderr)
        if fmt in ("text", "concise", "full"):
            assert f"./{shown}:5:5: GL101" in run.stdout, run.stdout
        if fmt == "github":
            [finding] = [line for line in run.stdout.splitlines() if "GL101" in line]
            assert finding.startswith("::warning title=gradlint (GL101),file=./evil%0A%3A%3Aerror file=x.py%2Cline=1")
        if fmt in ("json", "sarif"):
            json.loads(run.stdout)  # the real name, escaped by JSON
    for args in (("--diff",), ("--statistics",), ("--fix", "--show-fixes")):
        run = gradlint("check", *args, ".", cwd=tmp_path)
        no_traceback(run)
        assert not any(c in run.output for c in "\x1b\x07\u202e"), args
        assert not [line for line in run.output.splitlines() if line.startswith("::")], args
        if args == ("--diff",):
            assert f"--- a/./{shown}\n+++ b/./{shown}\n@@ " in run.stdout, run.stdout


def test_control_characters_in_messages_and_source_lines_are_escaped() -> None:
    from gradlint.diagnostics import Diagnostic
    from gradlint.engine import FileResult, FixMode
    from gradlint.output import machine, text

    result = FileResult("a.py")
    result.diagnostics = [Diagnostic("a.py", 1, 1, 1, 5, "GL101", "quoted `x = '\x1b[2J'`\n::error::x")]
    for rendered in (text.render([result], FixMode(), False, False), machine.render_github([result])):
        assert "\x1b" not in rendered and "\n::error" not in rendered
    source_line = text.format_diagnostic(result.diagnostics[0], FixMode(), "s = '\x1b[2J'; step()", False)
    assert "\x1b" not in source_line and "s = '\\x1b[2J'; step()" in source_line
    assert source_line.splitlines()[3] == "  | ^^^^", source_line  # the caret still under `s = '`


def test_explain_model_escapes_names(tmp_path: Path) -> None:
    name = "model\x1b[2J\n::error::x.py"
    (tmp_path / name).write_text("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
                                 "        super().__init__()\n        self.fc = nn.Linear(4, 4)\n"
                                 "    def forward(self, x):\n        return self.fc(x)\n")
    run = gradlint("explain-model", name, cwd=tmp_path)
    assert run.returncode == 0 and "Net (module)" in run.stdout
    assert "\x1b" not in run.output and not [line for line in run.output.splitlines() if line.startswith("::")]


# --- python -m gradlint imports nothing from the current directory ----------------------------


def test_python_dash_m_does_not_import_the_projects_modules(tmp_path: Path) -> None:
    canary = tmp_path / "IMPORTED"
    for module in ("tomllib", "click", "libcst", "json", "hashlib", "hmac", "difflib", "concurrent"):
        (tmp_path / f"{module}.py").write_text(f"open({str(canary)!r}, 'a').write({module!r} + '\\n')\n")
    (tmp_path / "train.py").write_text(BAD)
    run = gradlint("check", "--fix", "train.py", cwd=tmp_path)
    assert not canary.exists(), canary.read_text()
    assert run.returncode == 0 and "clip_grad_norm_" in (tmp_path / "train.py").read_text()
    for index in range(8):  # the process pool's workers
        (tmp_path / f"more{index}.py").write_text(BAD)
    run = gradlint("check", "-j", "2", ".", cwd=tmp_path)
    assert not canary.exists() and run.returncode == 1


def test_verify_reports_escape_the_models_own_text() -> None:
    # a model's exception text reaches the report: no escape sequence reaches the terminal
    from gradlint.verify import ModelReport
    from gradlint.verify.report import render_text
    from gradlint.verify.verdict import NOT_VERIFIED, Verdict

    evil = "boom\x1b[2J\x1b]0;pwned\x07\nfake line"
    report = ModelReport("m\x1b[31m.py", "Net", 3, "error", evil, verdicts=[Verdict("GL201", NOT_VERIFIED, evil)])
    text = render_text([report], colour=False)
    assert "\x1b" not in text and "\x07" not in text and "\nfake line" not in text


def test_run_reports_escape_the_scripts_own_text() -> None:
    # the script's exception text and a finding's reason reach `gradlint run`'s text report
    from gradlint.run.report import render_text

    evil = "boom\x1b[2J\x1b]0;pwned\x07\nfake line"
    report = {"cwd": "/tmp", "script": "/tmp/train.py", "argv": ["train.py"], "status": "exception", "steps": 3,
              "exception": {"type": "ValueError", "message": evil, "file": "/tmp/train.py", "line": 4},
              "optimizers": [], "models": [],
              "findings": [{"path": "/tmp/train\x1b[31m.py", "line": 4, "code": "GL101", "verdict": "not verified",
                            "reason": evil, "figures": {}}]}
    text = render_text(report, colour=False)
    assert "\x1b" not in text and "\x07" not in text and "\nfake line" not in text
    assert "ValueError" in text and "GL101" in text
