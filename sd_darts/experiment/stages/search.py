"""DVC stages ``search@<method>-<seed>`` (DARTS space, Tables 1-2, Fig. 2) and
``nb201_search@<seed>`` (NAS-Bench-201 space, Table 4).

The run folder is persisted and resumed after an interruption; with ``pipeline.stack_search_seeds``
the first stage of a method trains all its seeds at once and the others reuse their folders.
"""

from __future__ import annotations

import sys

from ..execute import publish_curves, search_once, search_stacked_once
from ..layout import Layout
from ..settings import nb201_search_settings, search_settings
from ..stage import stage


def configure(ap) -> None:
    ap.add_argument("--space", default="darts", choices=("darts", "nb201"))
    ap.add_argument("--method", help="darts or sd-darts (DARTS space)")
    ap.add_argument("--seed", type=int, required=True)


@stage(configure)
def main(p, args) -> int:
    layout = Layout(p.profile)
    if args.space == "nb201":
        cfg, paths = nb201_search_settings(p, args.seed), layout.nb201_search(args.seed)
        summary = search_once(p, cfg, paths, f"nb201_search@{args.seed}")
        publish_curves(p, paths)
        print(f"nb201_search {paths.name}: {summary['genotype'].get('arch')}")
        return 0
    stage_name, paths = f"search@{args.method}-{args.seed}", layout.search(args.method, args.seed)
    if p.pipeline.stack_search_seeds:
        summary = search_stacked_once(p, args.method, args.seed, stage_name)
    else:
        summary = search_once(p, search_settings(p, args.method, args.seed), paths, stage_name)
    publish_curves(p, paths)
    print(f"search {paths.name}: supernet valid acc {summary['supernet_valid_acc']:.2f}% (eval mode, alpha half)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
