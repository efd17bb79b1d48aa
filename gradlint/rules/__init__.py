"""The rule registry. Rules are discovered, not listed: every module of this package named
`gl<code>_<name>.py` is imported and the `Rule` subclasses it defines are registered, so adding a
rule is one file (plus its tests)."""

from __future__ import annotations

import importlib
import pkgutil
import re

from gradlint.rules.base import Rule

_RULE_MODULE = re.compile(r"gl\d{3}_\w+")


def _discover() -> tuple[type[Rule], ...]:
    found: list[type[Rule]] = []
    for module_info in pkgutil.iter_modules(__path__):
        if not _RULE_MODULE.fullmatch(module_info.name):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found.extend(value for value in vars(module).values()
                     if isinstance(value, type) and issubclass(value, Rule) and value is not Rule
                     and value.__module__ == module.__name__)
    return tuple(sorted(found, key=lambda rule: rule.code))


ALL_RULES: tuple[type[Rule], ...] = _discover()

RULES_BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in ALL_RULES}

__all__ = ["ALL_RULES", "RULES_BY_CODE", "Rule"]
