"""A file's trees and analyses are freed when its lint ends, by reference counting alone.

If they were left in reference cycles, only Python's cyclic collector could free them, and its
full collections would walk them again and again (that cost 15 % of a run before)."""

from __future__ import annotations

import gc

import libcst as cst
import pytest

from gradlint.config import Settings
from gradlint.engine import lint_source
from gradlint.source import SourceError, SourceFile, read_source
from tests.conftest import FIXTURES


def test_linting_leaves_no_tree_for_the_cyclic_collector() -> None:
    files = [p for p in sorted(FIXTURES.rglob("*.py")) if "backward" in p.read_text()][:6]
    assert files
    settings = Settings(select=("ALL",))
    lint_source(read_source(str(files[0])), settings)  # one-time imports make garbage of their own
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        findings = sum(len(lint_source(read_source(str(path)), settings)) for path in files)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, cst.CSTNode) or type(o).__module__.startswith("gradlint")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
    assert findings > 0  # the files were analysed, not skipped
    assert left == []


def test_the_collector_is_running_again_after_a_file_with_a_syntax_error_or_a_finding() -> None:
    assert gc.isenabled()
    with pytest.raises(SourceError):
        lint_source(SourceFile("bad.py", "import torch\nloss.backward(\noptimizer.step()\n"), Settings())
    assert gc.isenabled()
    assert lint_source(SourceFile("ok.py", "import torch\nloss.backward()\noptimizer.step()\n"), Settings())
    assert gc.isenabled()
