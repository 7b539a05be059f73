"""``sd-darts nb201-query``: look NAS-Bench-201 genotypes up in the benchmark (paper Table 4).

    sd-darts nb201-query --benchmark PATH GENOTYPE_JSON_OR_ARCH... [--json] [--table4]

Each GENOTYPE_JSON_OR_ARCH is an arch string ``'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'``, a
``genotype.json`` written by ``sd-darts search --space nb201`` or a search run folder holding
one.  The benchmark is loaded once for all of them.  Reported: the 200-epoch accuracies (%),
averaged over the benchmark's seeds, on CIFAR-10 valid/test, CIFAR-100 valid/test and
ImageNet16-120 valid/test, and the benchmark's best architecture by CIFAR-10 valid.
``--table4`` adds the mean ± std row over the given genotypes (one per search seed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import config
from ..config import setting

NAME = "nb201-query"
HELP = "query NAS-Bench-201 genotypes in the benchmark file at 200 epochs (paper Table 4)"
SECTION = "nb201_query"


@dataclass
class Nb201QueryConfig:
    """Settings of ``sd-darts nb201-query`` (section ``nb201_query:`` of a params file)."""

    benchmark: str = setting(
        "data/NAS-Bench-201-v1_1-096897.pth",
        "NAS-Bench-201 benchmark file you downloaded (NAS-Bench-201-v1_1-096897.pth)",
        metavar="PATH",
    )
    json: bool = setting(False, "print the result as JSON instead of a table")
    table4: bool = setting(False, "add the Table 4 row: mean ± std over the genotypes (one per search seed)")
    best: bool = setting(True, "also report the benchmark's best architecture by CIFAR-10 valid")
    out: str | None = setting(None, "also write the JSON result to this file", metavar="FILE")

    def validate(self) -> None:
        config.require(bool(self.benchmark), "benchmark", "must name the benchmark file")


def register(parser) -> None:
    parser.add_argument(
        "genotypes",
        nargs="+",
        metavar="GENOTYPE_JSON_OR_ARCH",
        help="NB201 arch string, genotype.json or search run folder (several: one load, one row each)",
    )
    config.add_arguments(parser, Nb201QueryConfig, f"'{SECTION}:'")


def run(args) -> int:
    from ..files import check_writable_dir, write_json
    from ..nb201 import BENCHMARK_FILES, format_table, load_benchmark, parse_genotype_arg, table4_row

    cfg = config.resolve(Nb201QueryConfig, SECTION, args)
    # Parse every genotype and check the output before the (long) benchmark load.
    parsed = [parse_genotype_arg(a) for a in args.genotypes]
    if cfg.out:
        from pathlib import Path

        check_writable_dir(Path(cfg.out).parent, "--out")
    benchmark = load_benchmark(cfg.benchmark)
    rows = []
    for source, genotype in parsed:
        rows.append({"source": source, **benchmark.query(genotype)})
    result = {
        "benchmark": str(benchmark.path),
        "benchmark_file": benchmark.path.name,
        "official_file_name": benchmark.path.name in BENCHMARK_FILES,
        "hp": "200",
        "results": rows,
    }
    summary = table4_row(rows) if cfg.table4 else None
    best = benchmark.best("cifar10_valid") if cfg.best else None
    if summary is not None:
        result["table4"] = summary
    if best is not None:
        result["best"] = best
    if cfg.out:
        write_json(cfg.out, result)
    if cfg.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"NAS-Bench-201 ({benchmark.path.name}, 200-epoch results, mean over the benchmark's seeds, accuracy %)")
        print(format_table(rows, sources=[r["source"] for r in rows], summary=summary, best=best))
    return 0
