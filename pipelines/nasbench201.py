"""DVC stages ``nasbench201_search@<seed>`` and ``nasbench201_query`` (Table 4).

``search --seed N``: SD-DARTS in the NAS-Bench-201 space with the ``nasbench201`` section's
settings; run folder ``runs/nasbench201_search/s<N>``, collected into
``metrics/nasbench201_search/s<N>``.

``query``: looks every seed's genotype up in the benchmark file ``nb201_query.benchmark``
(200-epoch results, ``sd_darts.nb201``) and writes the Table 4 row (mean ± std over the
search seeds) to ``metrics/nasbench201/query.json``.  Without the file it writes
``{"status": "not run", "reason": "benchmark file not provided ..."}`` and says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _common


def search(seed: int) -> int:
    p = _common.params()
    from sd_darts.commands.check_params import nb201_search_config

    cfg = nb201_search_config(p, seed, f"runs/nasbench201_search/s{seed}")
    summary = _common.run_search(cfg, f"nasbench201_search@{seed}", _common.METRICS / "nasbench201_search" / f"s{seed}")
    print(f"nasbench201 search s{seed}: {summary['genotype'].get('arch')}")
    return 0


def query() -> int:
    p = _common.params()
    from sd_darts import files
    from sd_darts.commands.check_params import nb201_query_config

    out = _common.METRICS / "nasbench201" / "query.json"
    cfg = nb201_query_config(p, str(out))
    seeds = p.raw["seeds"]["nasbench201"]
    runs = [_common.METRICS / "nasbench201_search" / f"s{seed}" for seed in seeds]
    benchmark = Path(cfg.benchmark)
    if not benchmark.is_file():
        reason = (
            f"benchmark file not provided: {benchmark} does not exist; download NAS-Bench-201-v1_1-096897.pth "
            "and set nb201_query.benchmark (docs/pipeline.md)"
        )
        files.write_json(out, {"status": "not run", "reason": reason, "searched": [r.name for r in runs]})
        print(f"nasbench201 query: {reason}")
        return 0
    from sd_darts.nb201 import load_benchmark, parse_genotype_arg, table4_row

    genotypes = [parse_genotype_arg(str(r / "genotype.json"))[1] for r in runs]
    bench = load_benchmark(benchmark)
    rows = [{"seed": seed, **bench.query(g)} for seed, g in zip(seeds, genotypes)]
    row = table4_row(rows)
    result = {
        "status": "ok",
        "benchmark": benchmark.name,
        "hp": "200",
        "seeds": seeds,
        "row": {k: v for k, v in row.items() if isinstance(v, dict)},
        "per_seed": rows,
        "std": "population standard deviation over search seeds (ddof=0), as the NAS-Bench-201 baselines",
    }
    if cfg.best:
        result["best"] = bench.best("cifar10_valid")
    files.write_json(out, result)
    print(f"nasbench201 query: {len(rows)} genotypes looked up in {benchmark.name}")
    return 0


@_common.entry_point
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("search")
    s.add_argument("--seed", type=int, required=True)
    sub.add_parser("query")
    args = ap.parse_args()
    return search(args.seed) if args.what == "search" else query()


if __name__ == "__main__":
    main()
