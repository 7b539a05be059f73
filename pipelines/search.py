"""DVC stage ``search@<method>-<seed>``: one DARTS-space search (DARTS or SD-DARTS).

Settings: the ``search`` section of params.yaml, the dataset from ``data``, method and seed
from the stage matrix.  Run folder ``runs/search/<method>-s<seed>`` (checkpoints, DVCLive;
persisted, resumed after an interruption); collected into ``metrics/search/<method>-s<seed>``,
its per-epoch curves also into ``metrics/search_curves/<method>-s<seed>.tsv`` (dvc plots).
"""

from __future__ import annotations

import argparse

import _common


@_common.entry_point
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args()
    p = _common.params()
    from sd_darts.commands.check_params import search_config

    name = f"{args.method}-s{args.seed}"
    cfg = search_config(p, args.method, args.seed, f"runs/search/{name}")
    dest = _common.METRICS / "search" / name
    summary = _common.run_search(cfg, f"search@{args.method}-{args.seed}", dest)
    # the same curves, alone in one folder, for `dvc plots show` (plots: in dvc.yaml)
    from sd_darts.files import write_text

    write_text(_common.METRICS / "search_curves" / f"{name}.tsv", (dest / "curves.tsv").read_text())
    print(f"search {name}: final supernet valid acc {summary['final_valid_acc']:.2f}%")
    return 0


if __name__ == "__main__":
    main()
