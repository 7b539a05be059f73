"""The settings of every run the pipeline makes, built from the params file and the layout.

A run's settings = its command section of the params file (plus the ablation's or the
selection's overrides) + what the pipeline sets itself (method, seed, dataset, output folder,
genotype).  The settings classes check them (:func:`sd_darts.utils.config.build`); :func:`check_all`
builds every run of the params file, so a bad value anywhere fails in one line, naming the
key, before any stage runs (``sd-darts check-params`` and the ``data`` stage call it).
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..evaluation.recipes import TrainCifarConfig, TrainImageNetConfig
from ..search.config import SearchConfig
from ..spaces.nb201.benchmark import NB201QueryConfig
from ..utils import config
from .layout import ABLATIONS, Layout
from .schema import DataParams, Params, read_params


def _data(p: Params) -> dict[str, Any]:
    """The dataset of a run.  ``data.download`` is only read by the data stage."""
    return {"dataset": p.data.dataset, "data_root": p.data.root}


def command_data(path: str, section: str) -> list[tuple[dict[str, Any], str]]:
    """The dataset settings that a params file's ``data:`` section gives ``sd-darts <command> --params
    FILE`` (its command sections cannot set them: the pipeline does), as a layer under the section;
    none for a file without a ``data:`` section.  ``data.download`` counts here: no data stage runs."""
    raw = config.read_yaml_mapping(path)
    if "data" not in raw:
        return []
    body = raw["data"] if raw["data"] is not None else {}
    if not isinstance(body, dict):
        raise UserError(f"{path}: 'data:' must be a mapping of settings")
    where = f"{path}: data"
    d = config.build(DataParams, [(body, where)])
    if section == "train_imagenet":
        return [({"data_root": d.imagenet_root}, where)]
    return [({"dataset": d.dataset, "data_root": d.root, "download": d.download}, where)]


def _build(cls, p: Params, layers: list[tuple[dict[str, Any], str | None]]):
    return config.build(cls, [(values, where or str(p.path)) for values, where in layers])


def search_settings(
    p: Params, method: str, seed: int, out: str | None = None, overrides: dict | None = None, where: str | None = None
) -> SearchConfig:
    """One DARTS-space search of the pipeline."""
    out = out or str(Layout(p.profile).search(method, seed).run)
    fixed = {**_data(p), "method": method, "seed": seed, "out": out, "space": "darts"}
    return _build(
        SearchConfig, p, [(p.section("search"), p.where("search")), (overrides or {}, where), (fixed, "the pipeline")]
    )


def stacked_search_settings(p: Params, method: str) -> tuple[SearchConfig, list[SearchConfig]]:
    """``pipeline.stack_search_seeds``: one search of all ``seeds.search`` of ``method`` stacked in
    one process, and the settings of each seed's run folder (:func:`sd_darts.search.runs.seed_configs`)."""
    from ..errors import UserError
    from ..search.runs import seed_configs

    out = str(Layout(p.profile).search(method, "{seed}").run)
    group = search_settings(
        p,
        method,
        p.seeds.search[0],
        out=out,
        overrides={"seeds": list(p.seeds.search)},
        where="pipeline.stack_search_seeds",
    )
    needs = {"fast_step": True, "impl": "fused", "hessian_every": 0}
    wrong = [f"search.{k}: {v}" for k, v in needs.items() if getattr(group, k) != v]
    if wrong:
        raise UserError(
            f"{p.path}: pipeline.stack_search_seeds: true trains the seeds on the fused supernet's first-order fast "
            f"step without the Fig. 2 Hessian; set {', '.join(wrong)} or set pipeline.stack_search_seeds: false"
        )
    return group, seed_configs(group)


def nb201_search_settings(p: Params, seed: int) -> SearchConfig:
    """One NAS-Bench-201 search (SD-DARTS, the ``nb201`` section)."""
    fixed = {
        **_data(p),
        "method": "sd-darts",
        "seed": seed,
        "out": str(Layout(p.profile).nb201_search(seed).run),
        "space": "nb201",
    }
    return _build(SearchConfig, p, [(p.section("nb201"), p.where("nb201")), (fixed, "the pipeline")])


def train_cifar_settings(
    p: Params, genotype_file: str, seed: int, out: str, overrides: dict | None = None, where: str | None = None
) -> TrainCifarConfig:
    fixed = {**_data(p), "genotype": genotype_file, "seed": seed, "out": out}
    return _build(
        TrainCifarConfig,
        p,
        [(p.section("train_cifar"), p.where("train_cifar")), (overrides or {}, where), (fixed, "the pipeline")],
    )


def eval_settings(p: Params, genotype: str, seed: int) -> TrainCifarConfig:
    """The CIFAR-10 evaluation of one genotype (``selected`` or ``paper``)."""
    layout = Layout(p.profile)
    return train_cifar_settings(
        p, str(layout.genotype_file(genotype)), seed, str(layout.train_cifar(genotype, seed).run)
    )


def select_retrain_settings(p: Params, seed: int) -> TrainCifarConfig:
    """DARTS's selection protocol: a short training of one search's genotype on held-out data."""
    layout = Layout(p.profile)
    genotype = layout.search(p.pipeline.select_method, seed).metrics / "genotype.json"
    out = str(layout.select_retrain(seed).run)
    return train_cifar_settings(
        p, str(genotype), seed, out, p.pipeline.select_retrain, p.where("pipeline.select_retrain")
    )


def train_imagenet_settings(p: Params, genotype: str, seed: int) -> TrainImageNetConfig:
    layout = Layout(p.profile)
    fixed = {
        "data_root": p.data.imagenet_root,
        "genotype": str(layout.genotype_file(genotype)),
        "seed": seed,
        "out": str(layout.train_imagenet(genotype, seed).run),
    }
    return _build(
        TrainImageNetConfig, p, [(p.section("train_imagenet"), p.where("train_imagenet")), (fixed, "the pipeline")]
    )


def nb201_query_settings(p: Params) -> NB201QueryConfig:
    fixed = {
        "benchmark": p.data.nb201_benchmark,
        "json": True,
        "table4": True,
        "out": str(Layout(p.profile).nb201_query),
    }
    return _build(NB201QueryConfig, p, [(p.section("nb201_query"), p.where("nb201_query")), (fixed, "the pipeline")])


def ablation_values(p: Params, kind: str) -> list[int]:
    return p.ablation.warmup_epochs_values if kind == "warmup" else p.ablation.window_values


def ablation_settings(p: Params, kind: str, value: int, seed: int) -> tuple[SearchConfig, TrainCifarConfig]:
    """(search, train_cifar) settings of one ablation point: Fig. 5 (``warmup``: ξ swept, K fixed)
    or Fig. 6 (``window``: K swept, ξ fixed); an SD-DARTS search, then its genotype's evaluation."""
    ab = p.ablation
    swept = ABLATIONS[kind][1]
    fixed = (
        {"window": ab.window_for_warmup_sweep}
        if kind == "warmup"
        else {"warmup_epochs": ab.warmup_epochs_for_window_sweep}
    )
    run = Layout(p.profile).ablation(kind, value, seed).run
    where = f"{p.path}: ablation ({kind} point {value})"
    scfg = search_settings(p, "sd-darts", seed, str(run / "search"), {**ab.search, swept: value, **fixed}, where)
    tcfg = train_cifar_settings(
        p,
        str(run / "search" / "genotype.json"),
        seed,
        str(run / "eval"),
        ab.train_cifar,
        p.where("ablation.train_cifar"),
    )
    return scfg, tcfg


def check_all(path: str = "params.yaml") -> Params:
    """Read the params file and build the settings of every run it describes."""
    p = read_params(path)
    for method in p.pipeline.search_methods:
        if p.pipeline.stack_search_seeds:
            stacked_search_settings(p, method)
        for seed in p.seeds.search:
            search_settings(p, method, seed)
            if p.pipeline.select_criterion == "retrain" and method == p.pipeline.select_method:
                select_retrain_settings(p, seed)
    for seed in p.seeds.nb201:
        nb201_search_settings(p, seed)
    nb201_query_settings(p)
    for genotype in p.pipeline.eval_genotypes:
        for seed in p.seeds.train_cifar:
            eval_settings(p, genotype, seed)
        for seed in p.seeds.train_imagenet:
            train_imagenet_settings(p, genotype, seed)
    for kind in ABLATIONS:
        for value in ablation_values(p, kind):
            for seed in p.seeds.ablation:
                ablation_settings(p, kind, value, seed)
    return p


def summary(p: Params) -> str:
    n_search = len(p.pipeline.search_methods) * len(p.seeds.search)
    n_eval = len(p.pipeline.eval_genotypes) * len(p.seeds.train_cifar)
    n_ab = (len(p.ablation.warmup_epochs_values) + len(p.ablation.window_values)) * len(p.seeds.ablation)
    imagenet = "on" if p.pipeline.train_imagenet else "off"
    return (
        f"{p.path}: ok (profile {p.profile}; {n_search} searches, {n_eval} CIFAR evaluations, "
        f"{len(p.seeds.nb201)} NAS-Bench-201 searches (benchmark: {p.data.nb201_benchmark}), {n_ab} ablation points, "
        f"ImageNet {imagenet}, selection by {p.pipeline.select_criterion}, runner {p.pipeline.runner})"
    )
