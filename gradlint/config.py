"""`[tool.gradlint]` settings: loading, validation, rule selection and CLI overrides."""

from __future__ import annotations

import fnmatch
import functools
import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from gradlint.rules import ALL_RULES, RULES_BY_CODE

DEFAULT_EXCLUDE = (
    ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".tox", ".nox", "__pycache__", "build",
    "dist", "node_modules", "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    ".gradlint_cache", ".eggs", "*.egg-info", ".ipynb_checkpoints", "__pypackages__",
    ".direnv", "_build", "buck-out",
)
KNOWN_KEYS = {
    "select", "extend-select", "ignore", "per-file-ignores", "exclude", "extend-exclude",
    "unsafe-fixes", "options",
}


class ConfigError(Exception):
    """A configuration or selection mistake; the CLI prints it on one line and exits 2."""


@dataclass
class Settings:
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    unsafe_fixes: bool = False
    rule_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    root: str = "."
    config_path: str | None = None
    # per-optimizer `max_norm` for the clipping fix, keyed by the step's "real path:line"
    # (`gradlint check --run-report FILE`: measured by `gradlint run`)
    max_norm_at: dict[str, float] = field(default_factory=dict)

    # selection ------------------------------------------------------------------------------

    @property
    def enabled(self) -> frozenset[str]:
        cached = self.__dict__.get("_enabled")
        if cached is None:
            if self.select is None:
                chosen = {r.code for r in ALL_RULES if r.default_enabled}
            else:
                chosen = expand(self.select, "select", explicit=True)
            chosen |= expand(self.extend_select, "extend-select", explicit=True)
            chosen -= expand(self.ignore, "ignore", explicit=True)
            cached = frozenset(chosen)
            self.__dict__["_enabled"] = cached
        return cached

    def is_enabled(self, code: str) -> bool:
        return code in self.enabled

    def enabled_for(self, path: str) -> frozenset[str]:
        codes = self.enabled
        if not self.per_file_ignores:
            return codes
        relative = _relative(path, self.root)
        for pattern, ignored in self.per_file_ignores.items():
            if _glob_match(relative, pattern):
                codes = codes - expand(ignored, "per-file-ignores", explicit=True)
        return codes

    def options_for(self, code: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for selector in sorted(self.rule_options, key=len):  # prefixes first, exact code last
            if code.startswith(selector):
                declared = {o.name for o in RULES_BY_CODE[code].options}
                merged.update({k: v for k, v in self.rule_options[selector].items() if k in declared})
        return merged

    def max_norm_for(self, path: str, line: int) -> float | None:
        """The measured `max_norm` for the optimizer stepped at path:line, if a run report gave one;
        the clipping fix falls back to the rule's `max-norm` option."""
        if not self.max_norm_at:
            return None
        return self.max_norm_at.get(f"{os.path.realpath(path)}:{line}")

    def is_excluded(self, path: str) -> bool:
        """Whether a pattern of `exclude`/`extend-exclude` matches a component of the path, its
        name, or the path relative to the root (`*` also crosses `/`, as in fnmatch)."""
        return self.is_excluded_relative(_relative(path, self.root))

    def relative(self, path: str) -> str:
        """`path` relative to the root, with `/` separators."""
        return _relative(path, self.root)

    def is_excluded_relative(self, relative: str) -> bool:
        parts, names, whole = _exclusion_matchers((*self.exclude, *self.extend_exclude))
        components = relative.split("/")
        return (
            any(parts(part) for part in components)
            or names(components[-1]) is not None
            or whole(relative) is not None
        )

    def fingerprint(self) -> str:
        """What the results of a file depend on, for caches."""
        return repr((sorted(self.enabled), sorted(self.per_file_ignores.items()),
                     sorted((k, sorted(v.items())) for k, v in self.rule_options.items()),
                     sorted(self.max_norm_at.items())))


def expand(selectors: tuple[str, ...] | list[str], where: str, explicit: bool = False) -> set[str]:
    """`ALL`, a full code or a prefix (`GL1`) -> the rule codes it selects."""
    codes: set[str] = set()
    for raw in selectors:
        selector = raw.strip().upper()
        if not selector:
            continue
        if selector == "ALL":
            codes.update(RULES_BY_CODE)
            continue
        matched = {code for code in RULES_BY_CODE if code.startswith(selector)}
        if not matched:
            known = ", ".join(sorted(RULES_BY_CODE))
            raise ConfigError(f"unknown rule code or prefix {raw!r} in {where} (known: ALL, {known})")
        codes |= matched
    return codes


def _relative(path: str, root: str) -> str:
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:  # another drive on Windows
        relative = path
    return relative.replace(os.sep, "/") if os.sep != "/" else relative


@functools.lru_cache(maxsize=8)
def _exclusion_matchers(patterns: tuple[str, ...]):
    """The exclude patterns compiled once into three regexes (fnmatch per path part per pattern
    was most of a warm run's time on a few thousand files)."""
    parts, names, whole = [], [], []
    for pattern in patterns:
        parts.append(fnmatch.translate(pattern))
        stripped = pattern.rstrip("/")
        if "/" not in stripped:
            names.append(fnmatch.translate(stripped))
            whole.append(fnmatch.translate(stripped))
        else:
            whole.extend((fnmatch.translate(stripped), fnmatch.translate(stripped + "/*")))

    def compiled(alternatives: list[str]):
        return re.compile("|".join(f"(?:{a})" for a in alternatives) or r"(?!)").match

    return compiled(parts), compiled(names), compiled(whole)


def _glob_match(relative: str, pattern: str) -> bool:
    pattern = pattern.rstrip("/")
    if "/" not in pattern:
        return fnmatch.fnmatch(Path(relative).name, pattern) or fnmatch.fnmatch(relative, pattern)
    return fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern + "/*")


# loading ------------------------------------------------------------------------------------


MAX_CONFIG_BYTES = 1_000_000


def _start_directory(start: str) -> Path:
    """The directory to search from: `start` itself or its parent, links resolved where they
    resolve (a symbolic link loop named on the command line is searched from where it lies)."""
    try:
        here = Path(start).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        here = Path(os.path.abspath(start))
    return here if here.is_dir() else here.parent


def _read_text(path: Path) -> str:
    """A config file's text: a regular file of at most 1 MB, UTF-8; ConfigError otherwise."""
    from gradlint.source import SourceError, read_bytes

    try:
        return read_bytes(str(path), MAX_CONFIG_BYTES).decode("utf-8")
    except SourceError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid TOML: nested too deeply") from None


def find_config(start: str) -> Path | None:
    """The nearest `pyproject.toml` with a `[tool.gradlint]` table, or `gradlint.toml`."""
    here = _start_directory(start)
    for directory in (here, *here.parents):
        for name in (".gradlint.toml", "gradlint.toml"):
            if (directory / name).is_file():
                return directory / name
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                text = _read_text(candidate)
            except ConfigError:
                continue  # someone else's unreadable pyproject.toml
            try:
                data = _parse_toml(text, str(candidate))
            except ConfigError:
                if "tool.gradlint" in text:
                    raise
                continue
            tool = data.get("tool", {})
            if isinstance(tool, dict) and "gradlint" in tool:
                return candidate
    return None


def load_table(path: Path) -> dict[str, Any]:
    data = _parse_toml(_read_text(path), str(path))
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("gradlint", {}) if isinstance(tool, dict) else {}
    else:
        table = data
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.gradlint] must be a table")
    return table


def settings_from_table(table: dict[str, Any], where: str, base: Settings | None = None) -> Settings:
    """Validate a `[tool.gradlint]` table and apply it on top of `base`."""
    settings = base or Settings()
    unknown = set(table) - KNOWN_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {sorted(unknown)[0]!r} in [tool.gradlint] "
            f"(known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    changes: dict[str, Any] = {}
    for key, attr in (("select", "select"), ("extend-select", "extend_select"), ("ignore", "ignore"),
                      ("exclude", "exclude"), ("extend-exclude", "extend_exclude")):
        if key in table:
            value = _string_list(table[key], key, where)
            if key in {"select", "extend-select", "ignore"}:
                expand(value, f"{where} {key}")
            changes[attr] = tuple(value)
    if "per-file-ignores" in table:
        raw = table["per-file-ignores"]
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: per-file-ignores must be a table of glob = [codes]")
        pfi = {}
        for pattern, codes in raw.items():
            value = _string_list(codes, f"per-file-ignores {pattern!r}", where)
            expand(value, f"{where} per-file-ignores")
            pfi[pattern] = tuple(value)
        changes["per_file_ignores"] = pfi
    if "unsafe-fixes" in table:
        if not isinstance(table["unsafe-fixes"], bool):
            raise ConfigError(f"{where}: unsafe-fixes must be true or false")
        changes["unsafe_fixes"] = table["unsafe-fixes"]
    if "options" in table:
        changes["rule_options"] = {**settings.rule_options, **_rule_options(table["options"], where)}
    return replace(settings, **changes)


def _string_list(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return value


def _rule_options(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: options must be a table of [options.<CODE>] tables")
    result = {}
    for selector, values in raw.items():
        codes = expand([selector], f"{where} options")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: options.{selector} must be a table")
        declared = {o.name: o for code in codes for o in RULES_BY_CODE[code].options}
        for name, value in values.items():
            option = declared.get(name)
            if option is None:
                known = ", ".join(sorted(declared)) or "none"
                raise ConfigError(f"{where}: unknown option {name!r} for {selector} (known: {known})")
            if option.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, option.type) or isinstance(value, bool) and option.type is not bool:
                raise ConfigError(f"{where}: options.{selector}.{name} must be a {option.type.__name__}")
            if option.type in (int, float) and not (math.isfinite(value) and value > 0):
                # TOML reads 1e400 as inf: `max_norm=inf` would reach the user's code as a NameError
                raise ConfigError(f"{where}: options.{selector}.{name} must be a finite number above 0 (got {value!r})")
        result[selector.upper()] = dict(values)
    return result


def load_settings(paths: list[str], config: tuple[str, ...] = (), isolated: bool = False) -> Settings:
    """Settings for a run: the nearest config file (or `--config FILE`), then inline
    `--config "key = value"` overrides."""
    settings = Settings()
    files = [c for c in config if "=" not in c]
    inline = [c for c in config if "=" in c]
    if len(files) > 1:
        raise ConfigError("--config FILE given more than once")
    path: Path | None = None
    if files:
        path = Path(files[0])
        if not os.path.lexists(path):
            raise ConfigError(f"--config {files[0]}: no such file")  # anything else: load_table says what it is
    elif not isolated:
        path = find_config(paths[0] if paths else ".")
    if path is not None:
        table = load_table(path)  # first: a link loop or a FIFO is one line from here
        settings = replace(settings, root=str(path.resolve().parent), config_path=str(path))
        settings = settings_from_table(table, str(path), settings)
    for override in inline:
        try:
            table = tomllib.loads(override)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config {override!r}: not a file and not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"--config {override!r}: not valid TOML (nested too deeply)") from None
        settings = settings_from_table(table, f"--config {override!r}", settings)
    return settings


def max_norms_from_run_report(path: str) -> dict[str, float]:
    """`gradlint run --format json`'s measured `max_norm` per unclipped optimizer, keyed by each
    line that stepped it ("real path:line"), for the clipping fix."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"--run-report {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--run-report {path}: not JSON ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("optimizers"), list):
        raise ConfigError(f"--run-report {path}: not a `gradlint run --format json` report")
    found: dict[str, float] = {}
    for optimizer in report["optimizers"]:
        value = (optimizer.get("recommendation") or {}).get("max_norm") if isinstance(optimizer, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            continue
        for site in optimizer.get("step_sites") or []:
            if isinstance(site, dict) and isinstance(site.get("file"), str) and isinstance(site.get("line"), int):
                found[f"{os.path.realpath(site['file'])}:{site['line']}"] = float(value)
    return found
