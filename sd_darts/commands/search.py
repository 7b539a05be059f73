"""``sd-darts search``: run (or resume) a DARTS / SD-DARTS search."""

from __future__ import annotations

import json

from .. import config

NAME = "search"
HELP = "search a cell with DARTS or SD-DARTS (paper §3.3-3.4); rerun the same command to resume"


def register(parser) -> None:
    from ..search import SearchConfig

    config.add_arguments(parser, SearchConfig, "search")


def run(args) -> int:
    from ..search import SearchConfig, run_search

    cfg = config.resolve(SearchConfig, "search", args)
    result = run_search(cfg)
    print(f"genotype: {json.dumps(result.summary['genotype'])}")
    print(f"outputs: {result.out}")
    return 0
