"""``sd-darts check-params``: check a whole params file before any pipeline stage runs.

Reads every section (:mod:`sd_darts.experiment.schema`) and builds the settings of every run
the file describes (:func:`sd_darts.experiment.settings.check_all`): a bad value anywhere fails
in one line naming the key.
"""

from __future__ import annotations

NAME = "check-params"
HELP = "check every section of a params file (params.yaml) against the settings of the runs it makes"


def register(parser) -> None:
    parser.add_argument(
        "params", nargs="?", default="params.yaml", metavar="FILE", help="params file to check (default: params.yaml)"
    )


def run(args) -> int:
    from ..experiment.settings import check_all, summary

    print(summary(check_all(args.params)))
    return 0
