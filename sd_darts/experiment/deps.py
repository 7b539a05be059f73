"""The code a pipeline stage depends on: the import closure of its module inside ``sd_darts``.

One list serves two purposes, so they cannot disagree: ``dvc.yaml`` declares it as the stage's
``deps`` (a test compares the two, ``tests/test_experiment.py``), and the identity of a
persisted run folder includes its hash (:mod:`sd_darts.experiment.runs`), so code that a stage
does not import never invalidates its runs, and code it does import always does.

The closure is found statically by reading the sources (``ast``): every ``import`` statement
(inside functions too) and every string literal naming an ``sd_darts`` module (lazy registries
such as :data:`sd_darts.spaces._REGISTRY`), following packages' ``__init__`` modules.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

PACKAGE = "sd_darts"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO = PACKAGE_DIR.parent
_MODULE_STRING = re.compile(r"sd_darts(\.[A-Za-z_][A-Za-z0-9_]*)+")


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``sd_darts.x.y``), or None outside the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Names of the ``sd_darts`` modules that ``path`` imports (or may import, for ``from X import y``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)  # submodules imported by name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.fullmatch(node.value):
            found.add(node.value)
    out = set()
    for name in found:
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if module_file(prefix) is not None:
                out.add(prefix)
    return out


@functools.cache
def closure(module: str) -> tuple[Path, ...]:
    """Every source file of ``sd_darts`` that importing ``module`` can execute (sorted)."""
    start = module_file(module)
    if start is None:
        raise ValueError(f"{module} is not a module of {PACKAGE}")
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name)
        if path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        todo.extend(_imports(path))
    return tuple(sorted(set(seen.values())))


def closure_paths(module: str) -> list[str]:
    """:func:`closure` as repository-relative POSIX paths (what ``dvc.yaml`` lists)."""
    return [p.relative_to(REPO).as_posix() for p in closure(module)]


def code_hash(module: str) -> str:
    """Hash of the contents of :func:`closure` (part of a run's identity)."""
    h = hashlib.sha256()
    for path in closure(module):
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
