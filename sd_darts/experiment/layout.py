"""Where the pipeline puts things: one profile's run folders, collected metrics and report.

The one place the layout is written (the tree: docs/pipeline.md); ``dvc.yaml`` spells the same
paths and ``tests/experiment/test_experiment.py`` checks them against this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUNS, METRICS, REPORTS = Path("runs"), Path("metrics"), Path("reports")
#: Numbers only, for ``dvc metrics show`` / ``dvc exp show`` (both profiles; ``dvc.yaml``'s top-level metrics).
HEADLINE = METRICS / "headline"

#: The files collected from a finished run into its metrics folder (the first one is its result,
#: whose headline numbers are the run's DVC metric), besides ``provenance.json`` and ``curves.tsv`` (its per-epoch metrics).
SEARCH_FILES = ("summary.json", "genotype.json", "config.yaml")
TRAIN_FILES = ("metrics.json", "config.yaml")
COLLECTED = ("provenance.json", "curves.tsv")

#: Ablation kind -> (name prefix, the search setting it sweeps).
ABLATIONS = {"warmup": ("xi", "warmup_epochs"), "window": ("k", "window")}


@dataclass(frozen=True)
class RunPaths:
    """One run: its name, run folder and metrics folder."""

    kind: str
    name: str
    run: Path
    metrics: Path


@dataclass(frozen=True)
class Layout:
    """The folders of one profile (relative to the repository root)."""

    profile: str

    @property
    def runs(self) -> Path:
        return RUNS / self.profile

    @property
    def metrics(self) -> Path:
        return METRICS / self.profile

    @property
    def slurm(self) -> Path:
        """SLURM batch scripts, job logs and the submission manifest (docs/cluster.md)."""
        return self.runs / "slurm"

    @property
    def reports(self) -> Path:
        return REPORTS / self.profile

    def run(self, kind: str, name: str) -> RunPaths:
        return RunPaths(kind, name, self.runs / kind / name, self.metrics / kind / name)

    def search(self, method: str, seed: int) -> RunPaths:
        return self.run("search", f"{method}-s{seed}")

    def curves(self, paths: RunPaths) -> Path:
        """A copy of a run's ``curves.tsv`` for ``dvc plots`` (one folder of TSVs per kind)."""
        return self.metrics / "curves" / paths.kind / f"{paths.name}.tsv"

    @property
    def plots(self) -> Path:
        """``<kind>.tsv``: the curves of every run of a kind, one row per run and epoch (``dvc plots`` overlays them)."""
        return self.metrics / "plots"

    @property
    def headline(self) -> Path:
        """The profile's DVC metrics folder: ``<kind>/<run>.json``, ``genotype.json``,
        ``nb201_query.json``, ``train_imagenet.json`` and the report's ``summary.json``."""
        return HEADLINE / self.profile

    def headline_run(self, paths: RunPaths) -> Path:
        return self.headline / paths.kind / f"{paths.name}.json"

    def nb201_search(self, seed: int) -> RunPaths:
        return self.run("nb201_search", f"s{seed}")

    def select_retrain(self, seed: int) -> RunPaths:
        return self.run("select_retrain", f"s{seed}")

    def train_cifar(self, genotype: str, seed: int) -> RunPaths:
        return self.run("train_cifar", f"{genotype}-s{seed}")

    def train_imagenet(self, genotype: str, seed: int) -> RunPaths:
        return self.run("train_imagenet", f"{genotype}-s{seed}")

    def ablation(self, kind: str, value: int, seed: int) -> RunPaths:
        prefix, _ = ABLATIONS[kind]
        return self.run(f"ablation_{kind}", f"{prefix}{value}-s{seed}")

    @property
    def genotype(self) -> Path:
        """The genotype stage's folder: ``selected.json``, ``paper.json``, ``darts.json``, ``selection.json``, ``stats.json``."""
        return self.metrics / "genotype"

    def genotype_file(self, which: str) -> Path:
        return self.genotype / f"{which}.json"

    @property
    def nb201_query(self) -> Path:
        return self.metrics / "nb201_query" / "query.json"

    @property
    def imagenet_status(self) -> Path:
        return self.metrics / "train_imagenet" / "status.json"
