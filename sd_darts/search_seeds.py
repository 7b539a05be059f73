"""``sd-darts search --seeds``: S seeds stacked in one process, run by the one search loop."""

from .search import run_search_seeds
from .search_runs import check_distinct_folders, seed_configs, template_problem

__all__ = ["run_search_seeds", "seed_configs", "template_problem", "check_distinct_folders"]
