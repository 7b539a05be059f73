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
from pathlib import Path

from ..errors import UserError
from ..spaces.nb201.benchmark import (
    BENCHMARK_FILES,
    PARAMS_SECTION,
    NB201QueryConfig,
    format_table,
    load_benchmark,
    parse_genotype_arg,
    table4_row,
)
from ..utils import config
from ..utils.files import check_writable_dir, write_json

NAME = "nb201-query"
HELP = "query NAS-Bench-201 genotypes in the benchmark file at 200 epochs (paper Table 4)"


def register(parser) -> None:
    parser.add_argument(
        "genotypes",
        nargs="+",
        metavar="GENOTYPE_JSON_OR_ARCH",
        help="NB201 arch string, genotype.json or search run folder (several: one load, one row each)",
    )
    config.add_arguments(parser, NB201QueryConfig, f"'{PARAMS_SECTION}:'")


def run(args) -> int:
    cfg = config.resolve(NB201QueryConfig, PARAMS_SECTION, args)
    # Parse every genotype and check the output before the (long) benchmark load.
    parsed = [parse_genotype_arg(a) for a in args.genotypes]
    if cfg.out:
        if Path(cfg.out).is_dir():
            raise UserError(
                f"--out {cfg.out} is a folder; name the JSON file to write (e.g. {Path(cfg.out) / 'query.json'})"
            )
        check_writable_dir(Path(cfg.out).parent, "--out", tree=False)
    benchmark = load_benchmark(cfg.benchmark)
    rows = []
    for source, genotype in parsed:
        row = benchmark.query(genotype)
        # A row is named by its genotype file or run folder, an arch string's by its benchmark index.
        rows.append({"source": source or f"benchmark index {row['index']}", **row})
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
