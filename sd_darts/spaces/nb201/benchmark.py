"""NAS-Bench-201 benchmark queries behind the paper's Table 4 (§4.4): the found cell looked up
in the benchmark (Dong & Yang, ICLR 2020) through its official API (``nas_201_api``), 200-epoch
results averaged over the benchmark's seeds, as NAS-Bench-201's own tables report them.

The file is loaded with ``torch.load(weights_only=True)`` (a tampered file cannot run code;
:mod:`sd_darts.spaces.nb201.benchmark_file`) and the API object is built without the
constructor's deep copy (one copy in memory).  Which API, what is queried, safe loading and
memory: docs/nb201.md, "Benchmark query".
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...genotypes import SHIPPED_GENOTYPES, NB201Genotype, load_genotype
from ...utils import config
from ...utils.config import setting
from ...utils.files import open_regular
from .benchmark_file import BENCHMARK_FILES, BENCHMARK_SOURCE, check_layout, first_line, torch_load_safely

log = logging.getLogger("sd_darts.spaces.nb201.benchmark")

#: Training schedule queried: the 200-epoch results.
HP = "200"

#: The section of a params file that ``sd-darts nb201-query --params FILE`` reads.
PARAMS_SECTION = "nb201_query"


@dataclass
class NB201QueryConfig:
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
        config.require(self.benchmark.strip() != "", "benchmark", "must name the benchmark file")
        config.require(self.out is None or self.out.strip() != "", "out", "is empty; name a file or leave it out")


@dataclass(frozen=True)
class Column:
    """One accuracy column of Table 4: ``key`` in results, benchmark dataset and split."""

    key: str
    dataset: str
    split: str
    label: str


#: The six columns of Table 4, in the paper's order.
COLUMNS: tuple[Column, ...] = (
    Column("cifar10_valid", "cifar10-valid", "x-valid", "CIFAR-10 valid"),
    Column("cifar10_test", "cifar10", "ori-test", "CIFAR-10 test"),
    Column("cifar100_valid", "cifar100", "x-valid", "CIFAR-100 valid"),
    Column("cifar100_test", "cifar100", "x-test", "CIFAR-100 test"),
    Column("imagenet16_valid", "ImageNet16-120", "x-valid", "ImageNet16-120 valid"),
    Column("imagenet16_test", "ImageNet16-120", "x-test", "ImageNet16-120 test"),
)

#: Key of ``NASBench201API.get_more_info``'s answer holding each column's accuracy.
_INFO_KEY = {
    ("cifar10-valid", "x-valid"): "valid-accuracy",
    ("cifar10", "ori-test"): "test-accuracy",
    ("cifar100", "x-valid"): "valid-accuracy",
    ("cifar100", "x-test"): "test-accuracy",
    ("ImageNet16-120", "x-valid"): "valid-accuracy",
    ("ImageNet16-120", "x-test"): "test-accuracy",
}


def _require_api():
    try:
        import nas_201_api
    except ImportError:
        raise UserError(
            "the NAS-Bench-201 API is not installed; install it with: pip install 'sd-darts[nb201]' "
            "(or pip install nas-bench-201==2.1)"
        ) from None
    return nas_201_api


#: What the API raises on malformed results: it checks its inputs with ``assert`` too.
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError, AssertionError)


class Benchmark:
    """A loaded NAS-Bench-201 benchmark: the official API object plus where it came from.

    Build with :func:`load_benchmark`.  ``api`` is a ``nas_201_api.NASBench201API``.
    """

    def __init__(self, api: Any, path: Path):
        self.api = api
        self.path = path

    @property
    def num_archs(self) -> int:
        return len(self.api)

    def index_of(self, genotype: NB201Genotype) -> int:
        index = self.api.query_index_by_arch(genotype.arch_str)
        if index >= 0 and index not in self.api.arch2infos_dict:
            raise UserError(
                f"architecture {genotype.arch_str} (index {index}) is listed but has no results in benchmark "
                f"file {self.path}; use the full {BENCHMARK_FILES[0]}"
            )
        if index < 0:
            raise UserError(
                f"architecture {genotype.arch_str} is not in benchmark file {self.path} "
                f"({self.num_archs} architectures); is it the full NAS-Bench-201 file?"
            )
        return index

    def _malformed(self, index: int, exc: BaseException) -> UserError:
        return UserError(
            f"benchmark file {self.path} has malformed results for architecture {index} ({first_line(exc)}); "
            f"download it again from {BENCHMARK_SOURCE}"
        )

    def row(self, index: int) -> dict[str, Any]:
        """Table 4 columns of architecture ``index``: 200-epoch accuracies (%) averaged over seeds."""
        try:
            return self._row(index)
        except UserError:
            raise
        except _MALFORMED as exc:
            raise self._malformed(index, exc) from None

    def _row(self, index: int) -> dict[str, Any]:
        archres = self.api.arch2infos_dict[index][HP]
        row: dict[str, Any] = {"arch": self.api.meta_archs[index], "index": int(index)}
        seeds: dict[str, int] = {}
        infos: dict[str, dict] = {}
        for col in COLUMNS:
            if col.dataset not in archres.get_dataset_names():
                raise UserError(
                    f"benchmark file {self.path} has no {HP}-epoch results on {col.dataset} for architecture {index}"
                )
            if col.dataset not in infos:
                infos[col.dataset] = self.api.get_more_info(index, col.dataset, iepoch=None, hp=HP, is_random=False)
                seeds[col.dataset] = len(archres.get_dataset_seeds(col.dataset))
            value = infos[col.dataset].get(_INFO_KEY[(col.dataset, col.split)])
            if value is None:
                raise UserError(
                    f"benchmark file {self.path} has no {col.dataset} {col.split} result for architecture {index}"
                )
            row[col.key] = float(value)
        row["benchmark_seeds"] = seeds
        return row

    def query(self, genotype: NB201Genotype) -> dict[str, Any]:
        """The Table 4 row of ``genotype``."""
        return self.row(self.index_of(genotype))

    def best(self, column: str = "cifar10_valid") -> dict[str, Any]:
        """The benchmark's best architecture by ``column`` (default: CIFAR-10 valid), with its row.

        Scans every evaluated architecture with the API's own averaging
        (``ArchResults.get_metrics(..., is_random=False)`` at ``hp='200'``); ties go to the
        lower index.  CIFAR-10 valid is the oracle choice for a search run on CIFAR-10.
        """
        col = next((c for c in COLUMNS if c.key == column), None)
        if col is None:
            raise ValueError(f"unknown column {column!r}; known: {', '.join(c.key for c in COLUMNS)}")
        best_index, best_acc = -1, -math.inf
        for index in self.api.evaluated_indexes:
            try:
                archres = self.api.arch2infos_dict[index][HP]
                if col.dataset not in archres.get_dataset_names():
                    continue
                acc = float(archres.get_metrics(col.dataset, col.split, iepoch=None, is_random=False)["accuracy"])
            except _MALFORMED as exc:
                raise self._malformed(index, exc) from None
            if acc > best_acc:
                best_index, best_acc = index, acc
        if best_index < 0:
            raise UserError(f"benchmark file {self.path} has no {HP}-epoch {col.dataset} {col.split} results")
        return {"by": col.key, **self.row(best_index)}

    def __repr__(self) -> str:
        return f"Benchmark({self.path}, {self.num_archs} architectures)"


def load_benchmark(path: str | os.PathLike) -> Benchmark:
    """Load the NAS-Bench-201 file at ``path`` safely and wrap it in the official API.

    A missing, unreadable, tampered or foreign file raises a one-line :class:`UserError`.
    """
    _require_api()
    from nas_201_api import ArchResults, NASBench201API

    path = Path(path)
    if path.is_dir():
        raise UserError(f"NAS-Bench-201 benchmark file {path} is a folder; give the path of the .pth file inside it")
    if not path.exists() and not path.is_symlink():
        raise UserError(
            f"NAS-Bench-201 benchmark file {path} does not exist; download {BENCHMARK_FILES[0]} "
            f"(several GB) from {BENCHMARK_SOURCE} and give its path with --benchmark "
            "(or 'benchmark:' in the 'nb201_query:' section of the params file)"
        )
    open_regular(path, "NAS-Bench-201 benchmark file").close()  # a device, FIFO or dangling link: one line
    log.info("loading NAS-Bench-201 benchmark %s (%.1f MB)", path, path.stat().st_size / 2**20)
    data = torch_load_safely(path)
    check_layout(data, path)
    # The API's constructor deep-copies a dictionary argument; give it only the small parts
    # and attach the results as its constructor (and its reload()) do, without copying.
    api = NASBench201API(
        {"meta_archs": data["meta_archs"], "arch2infos": {}, "evaluated_indexes": data["evaluated_indexes"]},
        verbose=False,
    )
    api.filename = path.name
    infos = data.pop("arch2infos")
    del data
    for index in sorted(infos):
        info = infos.pop(index)
        try:
            api.arch2infos_dict[index] = OrderedDict(
                [
                    ("12", ArchResults.create_from_state_dict(info["less"])),
                    ("200", ArchResults.create_from_state_dict(info["full"])),
                ]
            )
        except _MALFORMED as exc:
            raise UserError(
                f"benchmark file {path} has malformed results for architecture {index} ({first_line(exc)}); "
                f"download it again from {BENCHMARK_SOURCE}"
            ) from None
    return Benchmark(api, path)


#: What ``nb201-query`` takes for a genotype, for its messages.
GENOTYPE_FORMS = (
    "an arch string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', a genotype.json written by "
    "sd-darts search --space nb201, or its run folder"
)


def parse_genotype_arg(arg: str) -> tuple[str | None, NB201Genotype]:
    """``(source, genotype)`` from an arch string (source ``None``), a ``genotype.json`` or a run folder."""
    text = str(arg).strip()
    if text.startswith("|"):
        return None, NB201Genotype.from_arch_str(text)
    path = Path(text)
    if text not in SHIPPED_GENOTYPES and not (path / "genotype.json" if path.is_dir() else path).exists():
        what = f"folder {text} has no genotype.json" if path.is_dir() else f"{text!r} is not an existing file or folder"
        raise UserError(f"genotype {what}; nb201-query takes {GENOTYPE_FORMS}")
    genotype = load_genotype(text)
    if not isinstance(genotype, NB201Genotype):
        raise UserError(
            f"genotype {text} is a DARTS-space genotype; nb201-query takes {GENOTYPE_FORMS} "
            '(a genotype.json with "space": "nb201")'
        )
    return text, genotype


def query(benchmark: Benchmark, genotypes: Iterable[NB201Genotype | str]) -> list[dict[str, Any]]:
    """Table 4 rows of several genotypes (or arch strings) from one loaded benchmark."""
    rows = []
    for g in genotypes:
        genotype = g if isinstance(g, NB201Genotype) else NB201Genotype.from_arch_str(g)
        rows.append(benchmark.query(genotype))
    return rows


def table4_row(results: Sequence[dict[str, Any]], ddof: int = 0) -> dict[str, Any]:
    """The Table 4 row of a method: mean ± std over search seeds (one result per seed).

    ``results`` are rows from :meth:`Benchmark.query` (one per search seed).  Returns
    ``{"n": k, "archs": [arch of each seed, in order], "<column>": {"mean", "std"}, ...}``.
    ``std`` is the population standard deviation (``ddof=0``, numpy's default), the
    convention of the NB201 baselines' ``mean ± std`` rows; pass ``ddof=1`` for the sample
    standard deviation.  With a single seed the std is 0 (``ddof=0``).
    """
    import numpy as np

    if not results:
        raise ValueError("table4_row needs at least one result")
    if not 0 <= ddof < len(results):
        raise ValueError(f"ddof={ddof} needs more than {ddof} results, got {len(results)}")
    out: dict[str, Any] = {"n": len(results), "archs": [r["arch"] for r in results]}
    for col in COLUMNS:
        values = np.asarray([float(r[col.key]) for r in results], dtype=np.float64)
        out[col.key] = {"mean": float(values.mean()), "std": float(values.std(ddof=ddof))}
    return out


def format_table(
    rows: Sequence[dict[str, Any]],
    sources: Sequence[str] | None = None,
    summary: dict[str, Any] | None = None,
    best: dict[str, Any] | None = None,
) -> str:
    """Plain-text table of query rows (accuracies in %), the mean ± std row and the best row."""
    from tabulate import tabulate

    headers = ["genotype", "arch"] + [c.label for c in COLUMNS]
    body = []
    for i, r in enumerate(rows):
        name = sources[i] if sources is not None else f"#{i}"
        body.append([name, r["arch"]] + [f"{r[c.key]:.2f}" for c in COLUMNS])
    if summary is not None:
        body.append(
            [f"mean ± std (n={summary['n']})", ""]
            + [f"{summary[c.key]['mean']:.2f} ± {summary[c.key]['std']:.2f}" for c in COLUMNS]
        )
    if best is not None:
        label = next(c.label for c in COLUMNS if c.key == best["by"])
        body.append([f"benchmark best (by {label})", best["arch"]] + [f"{best[c.key]:.2f}" for c in COLUMNS])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


__all__ = [
    "BENCHMARK_FILES",
    "BENCHMARK_SOURCE",
    "HP",
    "COLUMNS",
    "Column",
    "Benchmark",
    "load_benchmark",
    "parse_genotype_arg",
    "query",
    "table4_row",
    "format_table",
]
