"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gradlint import __version__
from gradlint.diagnostics import Severity
from gradlint.engine import FileResult
from gradlint.rules import ALL_RULES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(path: str) -> str:
    relative = os.path.relpath(os.path.abspath(path))
    if relative.startswith(".."):
        return Path(os.path.abspath(path)).as_uri()
    return Path(relative).as_posix()


def render_sarif(results: list[FileResult]) -> str:
    rules = [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.rationale},
            "help": {
                "text": f"{rule.rationale}\n\nExample:\n{rule.bad_example}\nUse instead:\n{rule.good_example}",
                "markdown": (
                    f"{rule.rationale}\n\n**Example**\n```python\n{rule.bad_example}```\n"
                    f"**Use instead**\n```python\n{rule.good_example}```"
                ),
            },
            "defaultConfiguration": {"level": _LEVELS[rule.severity], "enabled": rule.default_enabled},
            "properties": {"tags": ["gradients", "pytorch"], "fix": rule.fix_applicability.value if rule.fix_applicability else "none"},
        }
        for rule in ALL_RULES
    ]
    index = {rule.code: i for i, rule in enumerate(ALL_RULES)}
    sarif_results = []
    notifications = []
    for result in results:
        for d in result.diagnostics:
            sarif_results.append(
                {
                    "ruleId": d.code,
                    "ruleIndex": index[d.code],
                    "level": _LEVELS[d.severity],
                    "message": {"text": d.message},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": _uri(d.path), "uriBaseId": "%SRCROOT%"},
                                "region": {
                                    "startLine": d.line,
                                    "startColumn": d.column,
                                    "endLine": d.end_line,
                                    "endColumn": d.end_column,
                                },
                            }
                        }
                    ],
                }
            )
        if result.error:
            location = {"physicalLocation": {"artifactLocation": {"uri": _uri(result.error.path)}}}
            if result.error.line:
                location["physicalLocation"]["region"] = {"startLine": result.error.line}
            notifications.append({"level": "error", "message": {"text": str(result.error)}, "locations": [location]})
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gradlint",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {"executionSuccessful": not notifications, "toolExecutionNotifications": notifications}
                ],
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(os.getcwd()).as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": sarif_results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
