"""The search (paper §3.3–3.4, Algorithms 1–2): settings, loop, run folders, steps, the
architect, self-distillation, the Hessian's dominant eigenvalue, stacked seeds.

The settings import without torch (the command line builds its flags from them); the rest is
imported on first use: ``from sd_darts.search import run_search`` works as before.
"""

from __future__ import annotations

import importlib

from .config import METHODS, PARAMS_SECTIONS, SearchConfig

_LAZY = {
    "run_search": "loop",
    "run_search_seeds": "loop",
    "Search": "loop",
    "SearchResult": "runs",
    "SearchObjective": "distill",
    "reference_step": "step",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHODS", "PARAMS_SECTIONS", "SearchConfig", *_LAZY]
