"""DVC stage ``nb201_query``: look every NAS-Bench-201 search's genotype up in the benchmark
(200-epoch results, :mod:`sd_darts.spaces.nb201.benchmark`) and write the Table 4 row (mean ± std over the
search seeds).  The benchmark file is checked against ``data.nb201_benchmark_sha256`` (when
recorded) before it is loaded.  Without the file the stage writes
``{"status": "not run", "reason": "benchmark file not provided ..."}`` and says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...data.checksums import sha256_file, verify
from ...spaces.nb201.benchmark import load_benchmark, parse_genotype_arg, table4_row
from ...utils import files
from .. import headline
from ..layout import Layout
from ..settings import nb201_query_settings
from ..stage import stage


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    cfg = nb201_query_settings(p)
    runs = [layout.nb201_search(seed) for seed in p.seeds.nb201]
    benchmark_file = Path(cfg.benchmark)
    if not benchmark_file.is_file():
        reason = (
            f"benchmark file not provided: {benchmark_file} does not exist; download NAS-Bench-201-v1_1-096897.pth "
            "and set data.nb201_benchmark (docs/pipeline.md)"
        )
        files.write_json(
            layout.nb201_query,
            {"status": "not run", "reason": reason, "profile": p.profile, "searched": [r.name for r in runs]},
        )
        files.write_json(layout.headline / "nb201_query.json", {})
        print(f"nb201_query: {reason}")
        return 0
    genotypes = [parse_genotype_arg(str(r.metrics / "genotype.json"))[1] for r in runs]
    sha256 = verify(
        sha256_file(benchmark_file),
        p.data.nb201_benchmark_sha256,
        f"benchmark file {benchmark_file}",
        "data.nb201_benchmark_sha256",
    )
    benchmark = load_benchmark(benchmark_file)
    rows = [{"seed": seed, **benchmark.query(g)} for seed, g in zip(p.seeds.nb201, genotypes)]
    result = {
        "status": "ok",
        "profile": p.profile,
        "benchmark": benchmark_file.name,
        "benchmark_sha256": sha256,
        "hp": "200",
        "seeds": p.seeds.nb201,
        "row": {k: v for k, v in table4_row(rows).items() if isinstance(v, dict)},
        "per_seed": rows,
        "std": "population standard deviation over search seeds (ddof=0), as the NAS-Bench-201 baselines",
    }
    if cfg.best:
        result["best"] = benchmark.best("cifar10_valid")
    files.write_json(layout.nb201_query, result)
    files.write_json(layout.headline / "nb201_query.json", headline.nb201_headline(result))
    print(f"nb201_query: {len(rows)} genotypes looked up in {benchmark_file.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
