"""Modules imported on first use.

`import libcst` costs about 0.3 s, as much as a warm run with the cache answering every file.
The linter's modules bind `cst = lazy_module("libcst")`: importing them (for the rule registry,
the CLI, the cache) loads nothing, and libcst is loaded the first time a file is analysed.
After that first attribute access the module object is the real module (importlib's
LazyLoader swaps its class), so hot loops pay nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """`name`, imported now if it is already loaded, otherwise on its first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
