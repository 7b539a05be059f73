"""The code a pipeline stage depends on: the import closure of its module inside ``sd_darts``.

One list serves ``dvc.yaml``'s ``deps`` (compared by ``tests/experiment/test_experiment.py``) and a run
folder's identity (:func:`source_identity`), so the two cannot disagree.  The closure is read
statically (``ast``): every import, and every string literal naming an ``sd_darts`` module
(lazy registries such as :data:`sd_darts.spaces._REGISTRY`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Iterable
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


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:] or [ast.Pass()]
    return body


def _internal(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] == PACKAGE
    return all(alias.name.split(".")[0] == PACKAGE for alias in node.names)


def _meaning(path: Path) -> tuple[list[str], set[str]]:
    """What one module executes: its top-level statements as AST dumps without docstrings
    (comments are not in the AST), and apart from them its imports of other libraries.
    Imports inside the package are wiring, and ``__all__`` lists re-exports: both follow moves."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.body = _without_docstring(node.body)
    statements, imports = [], set()
    for node in _without_docstring(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if not _internal(node):
                imports.add(ast.dump(node, annotate_fields=False))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            continue
        elif not isinstance(node, ast.Pass):
            statements.append(ast.dump(node, annotate_fields=False))
    return statements, imports


def source_identity(paths: Iterable[Path]) -> str:
    """Hash of what the sources in ``paths`` execute (:func:`_meaning` of each, as one sorted
    multiset of statements and one set of library imports): a documentation edit or a move of
    a definition between these files keeps it, any change to executed code changes it."""
    statements, imports = [], set()
    for path in paths:
        s, i = _meaning(path)
        statements += s
        imports |= i
    h = hashlib.sha256()
    for item in [*sorted(imports), "", *sorted(statements)]:
        h.update(item.encode() + b"\0")
    return h.hexdigest()[:16]


def code_hash(module: str) -> str:
    """:func:`source_identity` of :func:`closure` (part of a run's identity)."""
    return source_identity(closure(module))
