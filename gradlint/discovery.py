"""From the paths on the command line to the files to lint."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gradlint.config import Settings


@dataclass
class Discovered:
    files: list[str]
    missing: list[str]


def discover(paths: list[str], settings: Settings, force_exclude: bool = False) -> Discovered:
    """Python files under `paths`, sorted and without duplicates.

    Directories are walked recursively (symlinked directories are not followed, so loops
    cannot happen) and excluded names are pruned. A file named explicitly is linted whatever
    its name, unless `force_exclude` is set and it matches an exclude (for pre-commit).
    """
    files: list[str] = []
    missing: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.normcase(os.path.abspath(path))  # the same file named twice is linted once
        if key not in seen:
            seen.add(key)
            files.append(path)

    for path in paths:
        if os.path.isdir(path):
            for directory, subdirs, names in os.walk(path):
                base = settings.relative(directory)  # once per directory, not per file
                prefix = "" if base == "." else base + "/"
                subdirs[:] = sorted(
                    d for d in subdirs
                    if not settings.is_excluded_relative(prefix + d)
                    and not os.path.islink(os.path.join(directory, d))
                )
                for name in sorted(names):
                    if name.endswith((".py", ".ipynb")) and not settings.is_excluded_relative(prefix + name):
                        add(os.path.join(directory, name))
        elif os.path.lexists(path):
            if force_exclude and settings.is_excluded(path):
                continue
            add(path)
        else:
            missing.append(path)
    return Discovered(files, missing)
