"""Output formats. Each module turns the same results into one format."""

from __future__ import annotations

FORMATS = ("text", "concise", "full", "json", "json-lines", "sarif", "github")
