"""``sd-darts check-params``: validate a whole params file before any pipeline stage runs.

``params.yaml`` holds one section per pipeline stage.  The sections that configure a command
are that command's settings, keys = flag names with underscores, and are checked by the
command's own settings dataclass (:func:`sd_darts.config.from_mapping`):

=================  ===============================================================
``search``         :class:`~sd_darts.search.SearchConfig` (``sd-darts search``), DARTS space
``nasbench201``    :class:`~sd_darts.search.SearchConfig` for the NAS-Bench-201 space
``train_cifar``    :class:`~sd_darts.train.TrainCifarConfig` (``sd-darts train-cifar``)
``train_imagenet`` :class:`~sd_darts.train.TrainImageNetConfig` (``sd-darts train-imagenet``)
``nb201_query``    ``Nb201QueryConfig`` (``sd-darts nb201-query``): the benchmark file
=================  ===============================================================

and the pipeline's own sections are checked here (:data:`PIPELINE_SCHEMA`): ``profile``,
``seeds``, ``data``, ``pipeline``, ``ablation``, ``report``.  The settings the pipeline sets
itself for every run (method, seed, output folder, dataset and its folder, genotype) are
refused in the command sections, so that a value in params.yaml is never silently ignored.

Every setting of every run the pipeline will start (each method × seed, each ablation point)
is built and validated, so a bad value fails here, in one line naming the key, before any
stage runs.  The pipeline entry points (``pipelines/``) use :func:`load_params` and the
``*_config`` builders below, so the checked configuration is the one that runs.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from .. import config as cfgmod
from ..errors import UserError

NAME = "check-params"
HELP = "validate every section of a params file (params.yaml) against the settings of the stage that reads it"

#: Genotypes the pipeline can evaluate: the one selected from its own searches, and the
#: paper's Fig. 4 cells (shipped as ``SD_DARTS``).
EVAL_GENOTYPES = ("selected", "paper")
SELECT_CRITERIA = ("final_valid_acc", "best_valid_acc")

#: Keys the pipeline sets itself, per command section (from the matrix / the data section).
RESERVED = {
    "search": ("method", "seed", "out", "dataset", "data_root", "download", "space"),
    "nasbench201": ("method", "seed", "out", "dataset", "data_root", "download", "space"),
    "train_cifar": ("genotype", "seed", "out", "dataset", "data_root", "download"),
    "train_imagenet": ("genotype", "seed", "out", "data_root"),
    "nb201_query": ("json", "table4", "out"),
}
_RESERVED_FROM = {
    "method": "pipeline.search_methods",
    "seed": "seeds",
    "out": "the stage",
    "dataset": "data.dataset",
    "data_root": "data.root",
    "download": "data.download (the data stage)",
    "space": "the stage",
    "genotype": "pipeline.eval_genotypes",
    "json": "the stage",
    "table4": "the stage",
}


# --------------------------------------------------------------------------------------------
# A tiny typed schema for the pipeline's own sections
# --------------------------------------------------------------------------------------------


class _T:
    """Field types of :data:`PIPELINE_SCHEMA`."""

    def __init__(
        self,
        kind: str,
        choices: tuple | None = None,
        minimum: int | None = None,
        optional: bool = False,
        nonempty: bool = True,
    ):
        self.kind, self.choices, self.minimum, self.optional, self.nonempty = kind, choices, minimum, optional, nonempty

    def check(self, value: Any, where: str) -> Any:
        if value is None:
            if self.optional:
                return None
            raise UserError(f"{where} must be set (got null)")
        if self.kind == "int":
            return self._int(value, where)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise UserError(f"{where} must be true or false, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or not value:
                raise UserError(f"{where} must be a non-empty string, got {value!r}")
            return self._choice(value, where)
        if self.kind == "mapping":
            if not isinstance(value, dict):
                raise UserError(f"{where} must be a mapping of settings, got {value!r}")
            return value
        if self.kind in ("int_list", "str_list"):
            if not isinstance(value, list) or (self.nonempty and not value):
                raise UserError(f"{where} must be a non-empty list, got {value!r}")
            items = [
                self._int(v, f"{where}[{i}]") if self.kind == "int_list" else self._str(v, f"{where}[{i}]")
                for i, v in enumerate(value)
            ]
            if len(set(items)) != len(items):
                raise UserError(f"{where} has duplicate values {value!r}")
            return items
        raise TypeError(self.kind)

    def _int(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where} must be an integer, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise UserError(f"{where} must be at least {self.minimum}, got {value}")
        return value

    def _str(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise UserError(f"{where} must be a string, got {value!r}")
        return self._choice(value, where)

    def _choice(self, value: str, where: str) -> str:
        if self.choices is not None and value not in self.choices:
            raise UserError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
        return value


def _methods() -> tuple[str, ...]:
    from ..search import METHODS

    return METHODS


PIPELINE_SCHEMA: dict[str, dict[str, _T]] = {
    "seeds": {
        "search": _T("int_list", minimum=0),
        "train_cifar": _T("int_list", minimum=0),
        "train_imagenet": _T("int_list", minimum=0),
        "nasbench201": _T("int_list", minimum=0),
        "ablation": _T("int_list", minimum=0),
    },
    "data": {
        "dataset": _T("str", choices=("cifar10", "digits")),
        "root": _T("str"),
        "download": _T("bool"),
        "imagenet_root": _T("str"),
    },
    "pipeline": {
        "search_methods": _T("str_list", choices=("darts", "sd-darts")),
        "select_method": _T("str", choices=("darts", "sd-darts")),
        "select_criterion": _T("str", choices=SELECT_CRITERIA),
        "eval_genotypes": _T("str_list", choices=EVAL_GENOTYPES),
        "train_imagenet": _T("bool"),
        "imagenet_nproc": _T("int", minimum=1),
    },
    "ablation": {
        "warmup_epochs": _T("int_list", minimum=0),
        "warmup_window": _T("int", minimum=1),
        "window": _T("int_list", minimum=1),
        "window_warmup_epochs": _T("int", minimum=0),
        "search": _T("mapping"),
        "train_cifar": _T("mapping"),
    },
    "report": {
        "title": _T("str"),
    },
}

COMMAND_SECTIONS = ("search", "nasbench201", "train_cifar", "train_imagenet", "nb201_query")
SECTIONS = ("profile",) + tuple(PIPELINE_SCHEMA) + COMMAND_SECTIONS


# --------------------------------------------------------------------------------------------
# Loading and validating
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Params:
    """A validated params file: ``raw`` sections as written, ``path`` for messages."""

    path: Path
    raw: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.raw[name] or {})

    @property
    def profile(self) -> str:
        return str(self.raw["profile"])


def _check_section_keys(path: Path, name: str, body: dict[str, Any]) -> None:
    schema = PIPELINE_SCHEMA[name]
    for key in body:
        if key not in schema:
            raise UserError(f"{path}: {name}.{key} is not a known setting (known: {', '.join(sorted(schema))})")
    for key, typ in schema.items():
        if key not in body:
            raise UserError(f"{path}: {name}.{key} is missing; add it (see docs/pipeline.md)")
        body[key] = typ.check(body[key], f"{path}: {name}.{key}")


def _check_reserved(path: Path, section: str, body: dict[str, Any], where: str | None = None) -> None:
    for key in RESERVED[section]:
        if key in body:
            raise UserError(
                f"{path}: {where or section}.{key} is set by the pipeline (from {_RESERVED_FROM[key]}); remove it"
            )


def _build(cls, values: dict[str, Any], where: str):
    """``from_mapping`` with the validation errors prefixed by where the values come from."""
    try:
        return cfgmod.from_mapping(cls, values, where)
    except UserError as exc:
        text = str(exc)
        if text.startswith(where):
            raise
        raise UserError(f"{where}: {text}") from None


def _data_values(params: Params) -> dict[str, Any]:
    """The dataset of a run (``data.dataset``, ``data.root``).  ``data.download`` is only read
    by the data stage, which prepares the dataset before any run needs it."""
    data = params.raw["data"]
    return {"dataset": data["dataset"], "data_root": data["root"]}


def search_config(
    params: Params, method: str, seed: int, out: str, overrides: dict[str, Any] | None = None, where: str | None = None
):
    """The :class:`SearchConfig` of one DARTS-space search run of the pipeline."""
    from ..search import SearchConfig

    values = {
        **params.section("search"),
        **(overrides or {}),
        **_data_values(params),
        "method": method,
        "seed": seed,
        "out": out,
        "space": "darts",
    }
    return _build(SearchConfig, values, where or f"{params.path}: search")


def nb201_search_config(params: Params, seed: int, out: str):
    """The :class:`SearchConfig` of one NAS-Bench-201 search run (method from the section's default: SD-DARTS)."""
    from ..search import SearchConfig

    values = {
        **params.section("nasbench201"),
        **_data_values(params),
        "method": "sd-darts",
        "seed": seed,
        "out": out,
        "space": "nb201",
    }
    return _build(SearchConfig, values, f"{params.path}: nasbench201")


def train_cifar_config(
    params: Params,
    genotype: str,
    seed: int,
    out: str,
    overrides: dict[str, Any] | None = None,
    where: str | None = None,
):
    from ..train import TrainCifarConfig

    values = {
        **params.section("train_cifar"),
        **(overrides or {}),
        **_data_values(params),
        "genotype": genotype,
        "seed": seed,
        "out": out,
    }
    return _build(TrainCifarConfig, values, where or f"{params.path}: train_cifar")


def train_imagenet_config(params: Params, genotype: str, seed: int, out: str):
    from ..train import TrainImageNetConfig

    values = {
        **params.section("train_imagenet"),
        "data_root": params.raw["data"]["imagenet_root"],
        "genotype": genotype,
        "seed": seed,
        "out": out,
    }
    return _build(TrainImageNetConfig, values, f"{params.path}: train_imagenet")


def nb201_query_config(params: Params, out: str):
    """Settings of the NAS-Bench-201 query (``sd-darts nb201-query``), Table 4 row included."""
    from .nb201_query import Nb201QueryConfig

    values = {**params.section("nb201_query"), "json": True, "table4": True, "out": out}
    return _build(Nb201QueryConfig, values, f"{params.path}: nb201_query")


ABLATIONS = {
    # kind: (list key, fixed key, search setting swept, search setting fixed)
    "warmup": ("warmup_epochs", "warmup_window", "warmup_epochs", "window"),
    "window": ("window", "window_warmup_epochs", "window", "warmup_epochs"),
}


def ablation_configs(params: Params, kind: str, value: int, seed: int, out_dir: str):
    """(search, train_cifar) settings of one ablation point: Fig. 5 (``warmup``: ξ swept, K fixed)
    or Fig. 6 (``window``: K swept, ξ fixed); SD-DARTS search, then evaluation of its genotype."""
    if kind not in ABLATIONS:
        raise UserError(f"unknown ablation {kind!r}; use warmup or window")
    ab = params.section("ablation")
    list_key, fixed_key, swept, fixed = ABLATIONS[kind]
    overrides = {**ab["search"], swept: value, fixed: ab[fixed_key]}
    where = f"{params.path}: ablation ({kind} point {value})"
    scfg = search_config(params, "sd-darts", seed, f"{out_dir}/search", overrides, where=where)
    tcfg = train_cifar_config(
        params,
        f"{out_dir}/search/genotype.json",
        seed,
        f"{out_dir}/eval",
        ab["train_cifar"],
        where=f"{params.path}: ablation.train_cifar",
    )
    return scfg, tcfg


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file; any problem is one :class:`UserError` line."""
    path = Path(path)
    raw = cfgmod.read_yaml_mapping(path)
    for name in raw:
        if name not in SECTIONS:
            raise UserError(f"{path}: {name} is not a known section (known: {', '.join(SECTIONS)})")
    for name in SECTIONS:
        if name not in raw:
            raise UserError(f"{path}: section '{name}:' is missing; add it (see docs/pipeline.md)")
    if not isinstance(raw["profile"], str) or not raw["profile"]:
        raise UserError(f"{path}: profile must be a non-empty name (paper, smoke, ...), got {raw['profile']!r}")
    for names, check in ((PIPELINE_SCHEMA, _check_section_keys), (COMMAND_SECTIONS, _check_reserved)):
        for name in names:
            body = raw[name] if raw[name] is not None else {}
            if not isinstance(body, dict):
                raise UserError(f"{path}: '{name}:' must be a mapping of settings")
            check(path, name, body)
            raw[name] = body
    for key, section in (("search", "search"), ("train_cifar", "train_cifar")):
        _check_reserved(path, section, raw["ablation"][key], where=f"ablation.{key}")
    for key in ("warmup_epochs", "window"):
        if key in raw["ablation"]["search"]:
            raise UserError(
                f"{path}: ablation.search.{key} is set by the ablation itself (ablation.warmup_epochs / "
                "warmup_window, ablation.window / window_warmup_epochs); remove it"
            )
    params = Params(path=path, raw=raw)
    pipe = raw["pipeline"]
    if pipe["select_method"] not in pipe["search_methods"]:
        raise UserError(
            f"{path}: pipeline.select_method {pipe['select_method']!r} is not in pipeline.search_methods "
            f"{pipe['search_methods']}; add it there or select from another method"
        )

    # Build every configuration the pipeline will run: any bad value fails now.
    for method in pipe["search_methods"]:
        for seed in raw["seeds"]["search"]:
            search_config(params, method, seed, f"runs/search/{method}-s{seed}")
    for seed in raw["seeds"]["nasbench201"]:
        nb201_search_config(params, seed, f"runs/nasbench201_search/s{seed}")
    nb201_query_config(params, "metrics/nasbench201/query.json")
    for genotype in pipe["eval_genotypes"]:
        for seed in raw["seeds"]["train_cifar"]:
            train_cifar_config(params, "SD_DARTS", seed, f"runs/train_cifar/{genotype}-s{seed}")
        for seed in raw["seeds"]["train_imagenet"]:
            train_imagenet_config(params, "SD_DARTS", seed, f"runs/train_imagenet/{genotype}-s{seed}")
    for kind, (list_key, *_rest) in ABLATIONS.items():
        for value in raw["ablation"][list_key]:
            for seed in raw["seeds"]["ablation"]:
                ablation_configs(params, kind, value, seed, f"runs/ablation_{kind}/p{value}-s{seed}")
    return params


def summary(params: Params) -> str:
    raw = params.raw
    n_search = len(raw["pipeline"]["search_methods"]) * len(raw["seeds"]["search"])
    n_eval = len(raw["pipeline"]["eval_genotypes"]) * len(raw["seeds"]["train_cifar"])
    n_ab = (len(raw["ablation"]["warmup_epochs"]) + len(raw["ablation"]["window"])) * len(raw["seeds"]["ablation"])
    imagenet = "on" if raw["pipeline"]["train_imagenet"] else "off"
    bench = raw["nb201_query"].get("benchmark", "default path")
    return (
        f"{params.path}: ok (profile {params.profile}; {n_search} searches, {n_eval} CIFAR evaluations, "
        f"{len(raw['seeds']['nasbench201'])} NAS-Bench-201 searches (benchmark: {bench}), "
        f"{n_ab} ablation points, ImageNet {imagenet})"
    )


def register(parser) -> None:
    parser.add_argument(
        "params", nargs="?", default="params.yaml", metavar="FILE", help="params file to check (default: params.yaml)"
    )


def run(args) -> int:
    print(summary(load_params(args.params)))
    return 0
