"""The README's commands as a new user runs them: the two set-up commands (the first one for real,
from a fresh clone, with a fresh HOME, on a PEP 668 system Python and on another `python3`),
`.ci/run` running the second one exactly, the CI recipe's install from the repository, one
version everywhere, and the fixtures table against what `gradlint check fixtures/` reports.
(The second set-up command runs the whole suite, so `.ci/run` is its real run.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint import __version__
from gradlint.cli import main
from tests.conftest import FIXTURES, ROOT
from tests.fresh_user import TAG, fresh_environment, git, have_git, published_repository

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

README = (ROOT / "README.md").read_text(encoding="utf-8")
needs_git = pytest.mark.skipif(not have_git(), reason="needs git and a git checkout")


def setup_commands() -> list[str]:
    """The bash block of the README's first screen."""
    return README.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_two_set_up_commands_each_in_its_own_environment_and_ci_runs_the_second() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    for command in commands:  # every install goes into the venv the command makes and activates
        assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && python -m pip install ")
        assert command.count("pip install") == 1
    assert commands[0].endswith(" && gradlint check fixtures/")
    assert commands[1].endswith(" && python -m pytest -q") and "-c constraints.txt" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == commands[1]
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=False).returncode == 0


def test_one_version_in_the_cli_package_changelog_and_snippets() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gradlint.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.findall(r"^## (\S+)", changelog, re.M)[0] == __version__
    assert f"    rev: {TAG} " in section("pre-commit")
    assert f'git+https://github.com/<owner>/gradlint@{TAG}"' in section("CI (GitHub Actions, with code scanning)")
    assert CliRunner().invoke(main, ["--version"]).output.strip() == f"gradlint, version {__version__}"


def fixture_table() -> dict[str, set[str]]:
    """`| files | what | findings |` rows: `a / b` pairs with `codes / codes`, or `a, b` sharing the codes."""
    expected = {}
    for row in section("The fixtures").splitlines():
        if not row.startswith("| `"):
            continue
        files, _, findings = [cell.strip() for cell in row.strip("|").split(" | ")]
        names = [name.strip(" `") for name in re.split(r" / |, ", files)]
        per_file = findings.split(" / ") if " / " in files else [findings] * len(names)
        assert len(per_file) == len(names), row
        for name, codes in zip(names, per_file):
            expected[name] = set() if codes.strip() == "-" else {c.strip() for c in codes.split(",")}
    return expected


def test_the_fixtures_table_says_what_check_reports_for_every_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", "--no-cache", "--format", "json", "fixtures/"])
    reported: dict[str, set[str]] = {str(p.relative_to(FIXTURES)): set() for p in FIXTURES.rglob("*.py")}
    for finding in json.loads(result.stdout):
        reported[finding["filename"].removeprefix("fixtures/")].add(finding["code"])
    assert fixture_table() == reported


# --- the first command, for real, as a new user ---------------------------------------------------

PROBE = ("import importlib.util, json, os, sys, sysconfig; print(json.dumps({'managed': sys.prefix == sys.base_prefix "
         "and os.path.isfile(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')), "
         "'version': sys.version_info[:2], 'site': sorted({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})}))")


def describe(python: str) -> dict | None:
    try:
        out = subprocess.run([python, "-c", PROBE], check=True, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    info = json.loads(out.stdout)
    return info if tuple(info["version"]) >= (3, 10) else None


def new_user_python() -> tuple[str | None, str]:
    """The interpreter a new user's `python3` is: a PEP 668 system Python where this machine has
    one (pip refuses to install into it: the case that failed), else the base Python of this
    test run (pip would install into its global site-packages)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/opt/homebrew/bin/python3"):
        if (info := describe(candidate)) and info["managed"]:
            return candidate, "a PEP 668 system Python"
    base = str(Path(sys.base_prefix) / "bin" / "python3")
    return (base, "another python3 first on PATH") if describe(base) else (None, "no Python >= 3.10 found")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return published_repository(tmp_path_factory.mktemp("published"))


def listing(folders: list[str]) -> dict[str, list[str]]:
    return {f: sorted(os.listdir(f)) if os.path.isdir(f) else [] for f in folders}


@pytest.fixture(scope="module")
def first_command(published: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's first command, run once as written in a fresh clone with a fresh HOME."""
    python, kind = new_user_python()
    if python is None:
        pytest.skip(kind)
    home = tmp_path_factory.mktemp("user")
    clone = home / "gradlint"
    git(home, "clone", "-q", str(published), str(clone))
    env = fresh_environment(home / "home", python)
    info = describe(python)
    premise = None
    if info["managed"]:  # the README's old command, `python3 -m pip install .`, fails here
        premise = subprocess.run(["bash", "-c", "python3 -m pip install ."], cwd=clone, env=env, capture_output=True,
                                 text=True, timeout=300)
    before = listing(info["site"])
    run = subprocess.run(["bash", "-c", setup_commands()[0]], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=600)
    if "ensurepip is not available" in run.stdout + run.stderr:
        pytest.skip("this Python's venv lacks ensurepip (Debian: apt install python3-venv, as the README says)")
    return {"run": run, "premise": premise, "clone": clone, "env": env, "kind": kind, "site_before": before,
            "site_after": listing(info["site"])}


@needs_git
@pytest.mark.slow
def test_first_command_from_a_fresh_clone(first_command: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    if first_command["premise"] is not None:
        premise = first_command["premise"]
        assert premise.returncode != 0 and "externally-managed-environment" in premise.stdout + premise.stderr
    run = first_command["run"]
    monkeypatch.chdir(ROOT)
    expected = CliRunner().invoke(main, ["check", "--no-cache", "fixtures/"])
    assert run.returncode == 1, first_command["kind"] + run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stdout.endswith(expected.stdout), run.stdout[-2000:]  # the same findings, the summary last
    venv = first_command["clone"] / ".venv"
    shown = subprocess.run([str(venv / "bin" / "gradlint"), "--version"], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == f"gradlint, version {__version__}"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import gradlint, importlib.metadata as m; "
                            "print(gradlint.__file__); print(m.version('gradlint'))"],
                           capture_output=True, text=True, timeout=60, cwd=venv).stdout.split()
    assert Path(where[0]).resolve().is_relative_to(venv.resolve()) and where[1] == __version__
    assert first_command["site_after"] == first_command["site_before"]  # nothing in the interpreter's own site


@needs_git
@pytest.mark.slow
def test_ci_recipe_installs_the_pinned_release_from_the_repository(first_command: dict, published: Path,
                                                                      tmp_path: Path) -> None:
    [install] = [line.split("- run: ", 1)[1] for line in section("CI (GitHub Actions, with code scanning)").splitlines()
                 if "- run: " in line and "pip install" in line]
    # (a host in the URL: pip's requirement parser refuses `git+file:///path`; git takes both)
    install = install.replace("git+https://github.com/<owner>/gradlint", f"git+file://localhost{published}")
    # the runner's Python: the first command's environment with gradlint taken out again (its
    # dependencies stay, which spares installing them twice)
    env = dict(first_command["env"])
    venv = first_command["clone"] / ".venv"
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    subprocess.run(["python", "-m", "pip", "uninstall", "-q", "-y", "gradlint"], env=env, check=True, timeout=120,
                   capture_output=True)
    done = subprocess.run(["bash", "-c", install], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    direct = subprocess.run(["python", "-c", "import importlib.metadata as m; "
                             "print(m.distribution('gradlint').read_text('direct_url.json'))"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    vcs = json.loads(direct.stdout)["vcs_info"]
    assert vcs["requested_revision"] == TAG and vcs["commit_id"] == git(published, "rev-parse", f"{TAG}^{{commit}}")
    (tmp_path / "train.py").write_text("import torch\nfor x in loader:\n    (model(x) * advantages).sum().backward()\n"
                                       "    optimizer.step()\n")  # a warning: a one-off step would be info
    annotate = subprocess.run(["bash", "-c", "gradlint check --format github ."], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert annotate.returncode == 1 and annotate.stdout.startswith("::warning title=gradlint (GL101)"), annotate.stdout


def test_every_test_the_guarantees_table_names_exists() -> None:
    # "a guarantee is a test": each row's `tests/...py::name` (and `::name` continuing the same file)
    import re

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Guarantees"):readme.index("## How it works")]
    named = 0
    for row in table.splitlines()[4:]:
        if not row.startswith("| "):
            continue
        checked_by = row.rsplit("|", 2)[-2]
        current = None
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", checked_by):
            if path:
                current = ROOT / path
                assert current.exists(), path
            if name:
                assert current is not None and re.search(rf"^def {name}\(", current.read_text(), re.M), (current, name)
                named += 1
    assert named > 40
