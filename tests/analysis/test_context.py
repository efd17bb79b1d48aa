"""The file context: parsing once, sibling model files, and a lint path that never loads libcst."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gradlint.config import Settings
from gradlint.context import FileContext
from gradlint.source import SourceError, SourceFile
from tests.conftest import FIXTURES, ROOT


def test_parse_gives_cpythons_syntax_error_with_its_position() -> None:
    with pytest.raises(SourceError) as error:
        FileContext.parse(SourceFile("bad.py", "x = (1,\ny = 2\n"), Settings())
    assert error.value.message.startswith("SyntaxError:") and error.value.line == 1


def test_project_model_file_finds_the_sibling_that_defines_an_imported_model(tmp_path) -> None:
    from gradlint.analysis import project

    (tmp_path / "nets.py").write_text("import torch.nn as nn\n\nclass Net(nn.Module):\n"
                                      "    def forward(self, x):\n        return x / 255.0\n")
    (tmp_path / "utils.py").write_text("class Helper:\n    pass\n")
    text = "import torch\nfrom nets import Net\nfrom utils import Helper\nimport nets\n"
    project._CACHE.clear()
    ctx = FileContext.parse(SourceFile(str(tmp_path / "train.py"), text), Settings(root=str(tmp_path)))
    assert ctx.project_model_file("Net") == str(tmp_path / "nets.py")
    assert ctx.project_model_file("nets.Net") == str(tmp_path / "nets.py")
    assert ctx.project_model_file("Helper") is None  # not a model
    assert ctx.project_model_file("Other") is None


@pytest.mark.parametrize("fix", [False, True])
def test_check_never_imports_libcst(fix: bool, tmp_path) -> None:
    # every analysis reads Python's ast; fixes are text edits: libcst is for the verifier's source
    # transforms only (and its 0.3 s import is then not paid by a pre-commit hook); the rules'
    # verdicts import the verifier's and the run's modules only when asked for a verdict
    target = tmp_path / "fixtures"
    subprocess.run(["cp", "-r", str(FIXTURES), str(target)], check=True)
    argv = ["gradlint", "check", "--no-cache", "-j", "1", "--select", "ALL", str(target)]
    argv += ["--fix", "--unsafe-fixes"] if fix else []
    code = ("import sys\nfrom gradlint.cli import main\n"
            f"sys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'libcst' not in sys.modules, 'libcst was imported'\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(('gradlint.verify', "
            "'gradlint.run.')) or m == 'gradlint.run']\n"
            "assert not loaded, loaded\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]
