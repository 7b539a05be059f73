"""``sd-darts search``: run (or resume) a DARTS / SD-DARTS search."""

from __future__ import annotations

import json

from ..search.config import PARAMS_SECTIONS, SearchConfig
from ..utils import config

NAME = "search"
HELP = "search a cell with DARTS or SD-DARTS (paper §3.3-3.4); rerun the same command to resume"


def register(parser) -> None:
    sections = " / ".join(f"'{sec}:' (--space {space})" for space, sec in PARAMS_SECTIONS.items())
    config.add_arguments(parser, SearchConfig, sections)


def run(args) -> int:
    from ..experiment.settings import command_data
    from ..search.loop import run_search, run_search_seeds

    section = PARAMS_SECTIONS.get(args.space or "darts", "search")
    base = command_data(args.params, section) if args.params else []
    cfg = config.resolve(SearchConfig, section, args, base)
    results = run_search_seeds(cfg) if cfg.seeds else [run_search(cfg)]
    for result in results:
        print(f"genotype: {json.dumps(result.summary['genotype'])}")
        print(f"outputs: {result.out}")
    return 0
