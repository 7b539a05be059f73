"""The package's metadata agrees with itself: one minimum Python, the versions CI tries."""

from __future__ import annotations

import re
import tomllib

from support import ROOT

META = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _minimum() -> tuple[int, int]:
    m = re.fullmatch(r">=\s*3\.(\d+)", META["project"]["requires-python"])
    assert m, "requires-python must be a plain lower bound, >=3.N"
    return 3, int(m.group(1))


def test_ruff_targets_the_oldest_supported_python():
    major, minor = _minimum()
    assert META["tool"]["ruff"]["target-version"] == f"py{major}{minor}"


def test_classifiers_list_exactly_the_pythons_that_ci_tries():
    listed = {
        tuple(map(int, c.rsplit(" ", 1)[1].split(".")))
        for c in META["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    tried = {(3, int(v)) for v in re.findall(r"\b3\.(\d+)\b", _versions_line())}
    assert min(listed) == _minimum()
    assert listed == tried | {_minimum()}, "pyproject's classifiers and scripts/python_versions.sh disagree"


def _versions_line() -> str:
    text = (ROOT / "scripts" / "python_versions.sh").read_text()
    m = re.search(r"^VERSIONS=\$\{SD_DARTS_PYTHONS:-([^}]*)\}", text, re.M)
    assert m, "scripts/python_versions.sh sets VERSIONS=${SD_DARTS_PYTHONS:-...}"
    return m.group(1)
