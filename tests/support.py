"""Paths the tests read, independent of where a test file sits under tests/."""

from __future__ import annotations

from pathlib import Path

#: The repository root.
ROOT = Path(__file__).resolve().parents[1]
#: tests/fixtures: committed inputs (the report's metrics folder, ...).
FIXTURES = ROOT / "tests" / "fixtures"
