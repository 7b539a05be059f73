"""The params file (``params.yaml``, ``params-smoke.yaml``): its sections and their checks.

The pipeline's own sections are settings dataclasses here; a command section is checked by its
command's dataclass, and the keys the pipeline sets itself are refused there (:data:`RESERVED`),
so no value in the file is silently ignored (docs/pipeline.md, "params.yaml").
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets import DATASETS
from ..errors import UserError
from ..utils import config, files
from ..utils.config import require, setting

PROFILE_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SEED_BOUNDS = {"ge": 0, "le": 2**32 - 1}
METHODS = ("darts", "sd-darts")
#: Genotypes the pipeline evaluates: the one selected from its searches, the paper's Fig. 4 cells,
#: and the DARTS baseline's (the best plain-DARTS search by the same supernet criterion).
EVAL_GENOTYPES = ("selected", "paper", "darts")
#: How the genotype stage picks the search to evaluate (docs/pipeline.md).
SELECT_CRITERIA = ("supernet_valid_acc", "retrain")
RUNNERS = ("local", "docker", "slurm")
#: sd_darts.data.fashion_mnist.SHA256's values, here without importing torch (a test ties them)
FASHION_MNIST_SHA256 = (
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
)
#: The stages ``runner: slurm`` submits as batch jobs, each kind with its own resources
#: (``pipeline.slurm.<kind>``); the other stages (data, genotype, nb201_query, curves, report) are light
#: and run where ``dvc repro`` runs.
SLURM_STAGE_KINDS = ("search", "select_retrain", "train_cifar", "train_imagenet", "nb201", "ablation")
#: sbatch flags the runner sets itself: the key of pipeline.slurm that holds each, or why it is refused.
SLURM_OWN_FLAGS = {
    "--partition": "pipeline.slurm.partition",
    "-p": "pipeline.slurm.partition",
    "--account": "pipeline.slurm.account",
    "-A": "pipeline.slurm.account",
    "--qos": "pipeline.slurm.qos",
    "-q": "pipeline.slurm.qos",
    "--time": "pipeline.slurm.<kind>.time_minutes",
    "-t": "pipeline.slurm.<kind>.time_minutes",
    "--gres": "pipeline.slurm.<kind>.gpus",
    "--gpus": "pipeline.slurm.<kind>.gpus",
    "-G": "pipeline.slurm.<kind>.gpus",
    "--cpus-per-task": "pipeline.slurm.<kind>.cpus",
    "-c": "pipeline.slurm.<kind>.cpus",
    "--mem": "pipeline.slurm.<kind>.mem_gb",
    "--signal": "pipeline.slurm.signal_seconds",
    "--output": "the runner (the job log under runs/<profile>/slurm/)",
    "-o": "the runner (the job log)",
    "--error": "the runner (the job log)",
    "-e": "the runner (the job log)",
    "--open-mode": "the runner (the log is appended across requeues)",
    "--job-name": "the runner (the DVC stage name)",
    "-J": "the runner (the DVC stage name)",
    "--chdir": "the runner (the repository root)",
    "-D": "the runner (the repository root)",
    "--requeue": "the runner (always set)",
    "--no-requeue": "the runner (jobs are requeued on preemption)",
    "--wait": "the runner (it polls the job)",
    "-W": "the runner (it polls the job)",
    "--parsable": "the runner",
    "--array": "the runner (one job per stage)",
    "-a": "the runner (one job per stage)",
}


@dataclass
class SeedsParams:
    """``seeds:``: the seeds of every run matrix."""

    search: list[int] = setting(
        [0, 1, 2, 3], "DARTS protocol: 4 searches per method, the best is evaluated", **SEED_BOUNDS
    )
    train_cifar: list[int] = setting(
        [0, 1, 2, 3], "evaluation seeds of each genotype (paper: mean ± std)", **SEED_BOUNDS
    )
    train_imagenet: list[int] = setting([0], "ImageNet evaluation seeds", **SEED_BOUNDS)
    nb201: list[int] = setting([0, 1, 2], "Table 4: mean ± std over NAS-Bench-201 search seeds", **SEED_BOUNDS)
    ablation: list[int] = setting([0], "seeds per point of Figs. 5 and 6", **SEED_BOUNDS)


@dataclass
class DataParams:
    """``data:``: what the runs read, and the checksums that pin it."""

    dataset: str = setting(
        "cifar10", "cifar10 (paper), fashion-mnist (real, offline) or digits (offline smoke runs)", choices=DATASETS
    )
    root: str = setting("data/cifar10", "dataset folder (prepared and checked by the data stage)")
    download: bool = setting(True, "let the data stage download CIFAR-10")
    imagenet_root: str = setting("data/imagenet", "ILSVRC2012 folder (train/<wnid>/, val/<wnid>/), yours to provide")
    imagenet_listing_sha256: str | None = setting(
        None, "sha256 of the ImageNet folder listing (sd-darts checksum --imagenet DIR); null = record only"
    )
    fashion_mnist_source: str = setting(
        "/usr/share/datasets/fashion-mnist", "folder with the four Fashion-MNIST idx files, .gz or not (Debian's)"
    )
    fashion_mnist_sha256: list[str] = setting(
        list(FASHION_MNIST_SHA256),
        "sha256 of the decompressed train images, train labels, t10k images, t10k labels (sd-darts checksum --gunzip)",
        max_len=4,
    )
    nb201_benchmark: str = setting("data/NAS-Bench-201-v1_1-096897.pth", "the NAS-Bench-201 file, yours to download")
    nb201_benchmark_sha256: str | None = setting(
        None, "sha256 of the NAS-Bench-201 file (sd-darts checksum FILE); null = record only"
    )

    def validate(self) -> None:
        for key in ("imagenet_listing_sha256", "nb201_benchmark_sha256"):
            value = getattr(self, key)
            require(
                value is None or re.fullmatch(r"[0-9a-f]{64}", value) is not None,
                key,
                "must be 64 lowercase hex digits (a sha256) or null",
            )
        require(
            len(self.fashion_mnist_sha256) == 4
            and all(re.fullmatch(r"[0-9a-f]{64}", v) is not None for v in self.fashion_mnist_sha256),
            "fashion_mnist_sha256",
            "must list 4 sha256s (64 lowercase hex digits each), in the order of its help",
        )
        for key in ("root", "imagenet_root", "nb201_benchmark", "fashion_mnist_source"):
            require(getattr(self, key).strip() != "", key, "must name a path")


_SLURM_NAME = re.compile(r"[A-Za-z0-9_.+:-]+(,[A-Za-z0-9_.+:-]+)*")


@dataclass
class SlurmResources:
    """``pipeline.slurm.<kind>``: what one job of a stage kind asks for."""

    time_minutes: int = setting(1440, "time limit (--time); a longer run continues across requeues", ge=1, le=525_600)
    gpus: int = setting(1, "GPUs (--gres=gpu:N); 0: none", ge=0, le=64)
    cpus: int = setting(8, "CPUs of the job's one task (--cpus-per-task)", ge=1, le=1024)
    mem_gb: int | None = setting(32, "memory in GB (--mem=NG); null: the site's default", ge=1, le=100_000)


@dataclass
class SlurmParams:
    """``pipeline.slurm``: the jobs of ``runner: slurm`` (one batch job per heavy stage)."""

    partition: str | None = setting(None, "--partition (null: the site's default)")
    account: str | None = setting(None, "--account (null: your default account)")
    qos: str | None = setting(None, "--qos (null: the default QOS)")
    extra_flags: list[str] = setting(
        [], "more sbatch flags, one --flag=value per item (e.g. --constraint=a100)", empty_ok=True
    )
    command_prefix: str | None = setting(
        None, "wraps the job's command, e.g. 'apptainer exec --nv sd-darts.sif' (then python is the image's)"
    )
    signal_seconds: int = setting(
        120, "SIGUSR2 this many seconds before the time limit: checkpoint, then requeue", ge=1, le=3600
    )
    poll_seconds: float = setting(30.0, "how often the waiting stage asks SLURM about its job", gt=0, le=3600)
    imagenet_tasks_per_node: int = setting(
        1,
        "torchrun nodes per SLURM node of a multi-node ImageNet job: 1 on a cluster, 2 tests it on one machine",
        ge=1,
        le=64,
    )
    search: dict = setting({}, "resources of the search stages (SlurmResources)")
    select_retrain: dict = setting({}, "resources of the select_retrain stages")
    train_cifar: dict = setting({}, "resources of the train_cifar stages")
    train_imagenet: dict = setting({}, "resources of the train_imagenet stage")
    nb201: dict = setting({}, "resources of the nb201_search stages")
    ablation: dict = setting({}, "resources of the ablation stages")

    def validate(self) -> None:
        for key in ("partition", "account", "qos"):
            value = getattr(self, key)
            require(
                value is None or _SLURM_NAME.fullmatch(value) is not None,
                key,
                f"{files.bounded(value)} is not a SLURM name (letters, digits, _.+:- ; a comma-separated list); or null",
            )
        for item in self.extra_flags:
            name = item.split("=", 1)[0]
            require(
                item.startswith("-") and not any(c.isspace() for c in item),
                "extra_flags",
                f"{files.bounded(item)}: write each flag as one item --flag=value, without spaces",
            )
            require(
                name not in SLURM_OWN_FLAGS,
                "extra_flags",
                f"{name} is set by {SLURM_OWN_FLAGS.get(name)}; remove it from extra_flags",
            )
        if self.command_prefix is not None:
            try:
                words = shlex.split(self.command_prefix)
            except ValueError as exc:
                words, problem = [], f"does not parse as a command line ({exc})"
            else:
                problem = "must name a command (or be null)"
            require(bool(words), "command_prefix", problem)


#: Stage kinds whose jobs need more than SlurmResources' defaults: ImageNet on 3 GPUs (§4.3).
SLURM_KIND_RESOURCES = {"train_imagenet": {"gpus": 3, "cpus": 24, "mem_gb": 96}}


def _slurm_default() -> dict:
    """``pipeline.slurm``'s default, from SlurmParams' and SlurmResources' own defaults."""
    site = {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(SlurmParams)
        if f.name not in SLURM_STAGE_KINDS
    }
    one = {f.name: f.default for f in dataclasses.fields(SlurmResources)}
    return {**site, **{kind: {**one, **SLURM_KIND_RESOURCES.get(kind, {})} for kind in SLURM_STAGE_KINDS}}


@dataclass
class PipelineParams:
    """``pipeline:``: which runs the pipeline makes, how it selects, where stages run."""

    search_methods: list[str] = setting(
        ["darts", "sd-darts"], "methods searched (Fig. 2 compares them), each for every seeds.search", choices=METHODS
    )
    select_method: str = setting(
        "sd-darts", "the genotype stage evaluates the genotype of this method's best search", choices=METHODS
    )
    select_criterion: str = setting(
        "supernet_valid_acc",
        "best search by the final supernet's eval-mode accuracy on the alpha half, or retrain (DARTS §3.2: short training from scratch, held-out data)",
        choices=SELECT_CRITERIA,
    )
    select_retrain: dict = setting(
        {"epochs": 100, "holdout_portion": 0.5}, "train_cifar overrides of the retrain criterion's short trainings"
    )
    eval_genotypes: list[str] = setting(
        ["selected", "paper"],
        "selected = from the searches above; paper = the paper's Fig. 4 cells; darts = the best darts search's (baseline)",
        choices=EVAL_GENOTYPES,
    )
    stack_search_seeds: bool = setting(
        False,
        "train the seeds.search of a method as one stacked supernet in one process (first order, search.fast_step "
        "and impl fused, no Fig. 2 Hessian; docs/speed.md)",
    )
    train_imagenet: bool = setting(False, "switch: true needs ImageNet in data.imagenet_root (3 GPU-days on 3 GPUs)")
    imagenet_nproc: int = setting(1, "processes (GPUs) per ImageNet run: > 1 launches torchrun (paper: 3)", ge=1, le=64)
    imagenet_nodes: int = setting(
        1,
        "nodes per ImageNet run: > 1 runs one torchrun per node through srun (SLURM jobs only; docs/cluster.md)",
        ge=1,
        le=1024,
    )
    runner: str = setting(
        "local",
        "run each stage here, inside the image (pipeline.image) through the Docker SDK, or as a SLURM batch job "
        "(pipeline.slurm; docs/cluster.md)",
        choices=RUNNERS,
    )
    image: str = setting("sd-darts:latest", "image of the docker runner (sd-darts container build)")
    gpus: str | None = setting("all", "GPUs the docker runner requests (all, N or 0,1; null: none)")
    slurm: dict = setting(
        _slurm_default(),
        "the slurm runner's jobs: site flags, command prefix, resources per stage kind (SlurmParams; docs/cluster.md)",
    )

    def validate(self) -> None:
        require(
            self.select_method in self.search_methods,
            "select_method",
            f"{self.select_method!r} is not in pipeline.search_methods {self.search_methods}; add it there or select from another method",
        )
        require(
            "darts" not in self.eval_genotypes or "darts" in self.search_methods,
            "eval_genotypes",
            "darts (the DARTS baseline's genotype) needs darts in pipeline.search_methods; add it there or remove it here",
        )


def slurm_settings(raw: Any, where: str) -> tuple[SlurmParams, dict[str, SlurmResources]]:
    """``pipeline.slurm`` checked: its settings and the resources of each stage kind."""
    defaults = dataclasses.fields(PipelineParams)
    default = next(f for f in defaults if f.name == "slurm").default_factory()
    s = config.build(SlurmParams, [(default, where), (raw, where)])
    resources = {
        kind: config.build(SlurmResources, [(default[kind], f"{where}.{kind}"), (getattr(s, kind), f"{where}.{kind}")])
        for kind in SLURM_STAGE_KINDS
    }
    return s, resources


@dataclass
class AblationParams:
    """``ablation:``: the points of Fig. 5 (ξ swept) and Fig. 6 (K swept)."""

    warmup_epochs_values: list[int] = setting(
        [0, 5, 10, 15, 20, 25, 30, 35, 40], "Fig. 5: values of ξ", ge=0, le=10_000
    )
    window_for_warmup_sweep: int = setting(1, "Fig. 5: the K used while sweeping ξ", ge=1, le=10_000)
    window_values: list[int] = setting([1, 2, 3, 4, 5, 6], "Fig. 6: values of K", ge=1, le=10_000)
    warmup_epochs_for_window_sweep: int = setting(25, "Fig. 6: the ξ used while sweeping K", ge=0, le=10_000)
    search: dict = setting({"hessian_every": 0}, "overrides of the search section for the ablation searches")
    train_cifar: dict = setting({}, "overrides of the train_cifar section for their evaluations")


@dataclass
class ReportParams:
    """``report:``."""

    title: str = setting("SD-DARTS reproduction report", "title of reports/<profile>/README.md")

    def validate(self) -> None:
        require("\n" not in self.title and self.title.strip() != "", "title", "must be one line of text")


#: The pipeline's own sections and their settings classes.
PIPELINE_SECTIONS: dict[str, type] = {
    "seeds": SeedsParams,
    "data": DataParams,
    "pipeline": PipelineParams,
    "ablation": AblationParams,
    "report": ReportParams,
}
#: Command sections: section name -> the sd-darts command whose settings it holds.
COMMAND_SECTIONS: dict[str, str] = {
    "search": "sd-darts search (DARTS space)",
    "nb201": "sd-darts search --space nb201",
    "train_cifar": "sd-darts train-cifar",
    "train_imagenet": "sd-darts train-imagenet",
    "nb201_query": "sd-darts nb201-query",
}
SECTIONS = ("profile", *PIPELINE_SECTIONS, *COMMAND_SECTIONS)

_FROM = {
    "method": "pipeline.search_methods",
    "seed": "seeds",
    "seeds": "seeds.search: one stage per seed",
    "out": "the layout of runs/<profile>",
    "dataset": "data.dataset",
    "data_root": "data.root (data.imagenet_root for ImageNet)",
    "download": "data.download (the data stage)",
    "space": "the stage",
    "genotype": "pipeline.eval_genotypes",
    "benchmark": "data.nb201_benchmark",
    "json": "the stage",
    "table4": "the stage",
}
#: Keys the pipeline sets itself in each command section.
RESERVED: dict[str, tuple[str, ...]] = {
    "search": ("method", "seed", "seeds", "out", "dataset", "data_root", "download", "space"),
    "nb201": ("method", "seed", "seeds", "out", "dataset", "data_root", "download", "space"),
    "train_cifar": ("genotype", "seed", "out", "dataset", "data_root", "download"),
    "train_imagenet": ("genotype", "seed", "out", "data_root"),
    "nb201_query": ("benchmark", "json", "table4", "out"),
}


@dataclass
class Params:
    """A read params file: the pipeline sections as settings objects, the command sections raw."""

    path: Path
    profile: str
    seeds: SeedsParams
    data: DataParams
    pipeline: PipelineParams
    ablation: AblationParams
    report: ReportParams
    commands: dict[str, dict[str, Any]]

    def section(self, name: str) -> dict[str, Any]:
        """A command section's settings (a copy)."""
        return copy.deepcopy(self.commands[name])

    def where(self, section: str) -> str:
        return f"{self.path}: {section}"


def check_reserved(path: Path, section: str, body: dict[str, Any], where: str | None = None) -> None:
    for key in RESERVED[section]:
        if key in body:
            raise UserError(f"{path}: {where or section}.{key} is set by the pipeline (from {_FROM[key]}); remove it")


def read_params(path: str | Path = "params.yaml") -> Params:
    """Read a params file and check its pipeline sections (command sections: :mod:`~sd_darts.experiment.check`)."""
    path = Path(path)
    raw = config.read_yaml_mapping(path)
    for name in raw:
        if name not in SECTIONS:
            raise UserError(f"{path}: {files.key_text(name)} is not a known section (known: {', '.join(SECTIONS)})")
    for name in SECTIONS:
        if name not in raw:
            raise UserError(f"{path}: section '{name}:' is missing; add it (see docs/pipeline.md)")
    profile = raw["profile"]
    if not isinstance(profile, str) or not PROFILE_PATTERN.fullmatch(profile) or profile == "headline":
        raise UserError(
            f"{path}: profile must be a short lowercase name (paper, smoke, ...; not headline, the DVC metrics folder), got {files.bounded(profile)}"
        )
    sections: dict[str, Any] = {}
    for name, cls in PIPELINE_SECTIONS.items():
        body = raw[name] if raw[name] is not None else {}
        if not isinstance(body, dict):
            raise UserError(f"{path}: '{name}:' must be a mapping of settings")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in body]
        if missing:
            raise UserError(f"{path}: {name}.{missing[0]} is missing; add it (params.yaml lists every key)")
        sections[name] = config.build(cls, [(body, f"{path}: {name}")])
    commands = {}
    for name in COMMAND_SECTIONS:
        body = raw[name] if raw[name] is not None else {}
        if not isinstance(body, dict):
            raise UserError(f"{path}: '{name}:' must be a mapping of settings")
        check_reserved(path, name, body)
        commands[name] = body
    ablation = sections["ablation"]
    check_reserved(path, "search", ablation.search, "ablation.search")
    check_reserved(path, "train_cifar", ablation.train_cifar, "ablation.train_cifar")
    check_reserved(path, "train_cifar", sections["pipeline"].select_retrain, "pipeline.select_retrain")
    slurm_settings(sections["pipeline"].slurm, f"{path}: pipeline.slurm")
    for key in ("warmup_epochs", "window"):
        if key in ablation.search:
            raise UserError(
                f"{path}: ablation.search.{key} is set by the ablation itself (ablation.*_values and *_sweep keys); remove it"
            )
    return Params(path=path, profile=profile, commands=commands, **sections)
