"""The package's shape (docs/ARCHITECTURE.md, "The tree"): packages by kind, few modules at the
top, no file over 500 lines, no import circle, no module reaching into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "sd_darts"
MAX_TOP_MODULES = 8
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _runtime_imports(name: str, path: Path) -> set[str]:
    """The sd_darts modules ``name`` imports when it runs (inside functions too; not under
    ``if TYPE_CHECKING``), as module names: ``from a import b`` is ``a.b`` where that is a module."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for n in ast.walk(stmt)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                sub = f"{origin}.{alias.name}"
                found.add(sub if sub in MODULES else origin)
    return {m for m in found if m in MODULES and m != name}


def test_at_most_eight_modules_at_the_top_of_the_package():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def test_no_library_file_is_over_500_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_module_imports_another_modules_private_name():
    """A package-private module (``commands/_training.py``, shared by two commands) may be
    imported by its siblings; an underscore name inside a module may not."""
    private = []
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("sd_darts")):
                origin = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
                origin = ".".join(p for p in (origin, node.module or "") if p)
                private += [
                    f"{name}: {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__") and f"{origin}.{a.name}" not in MODULES
                ]
    assert not private, private


def test_imports_form_no_circle():
    graph = {name: _runtime_imports(name, path) for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not circles, circles


def test_the_search_package_face_needs_no_torch_and_keeps_the_public_names():
    import subprocess
    import sys

    code = (
        "import sys; from sd_darts.search import SearchConfig, METHODS, PARAMS_SECTIONS; "
        "from sd_darts.spaces import get_space; import sd_darts.genotypes; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "from sd_darts.search import run_search, run_search_seeds, SearchResult; "
        "from sd_darts.search.loop import run_search as loop_run; assert run_search is loop_run"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
