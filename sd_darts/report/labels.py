"""What a reproduced number was measured on: its dataset and profile (``digits 16×16 (smoke)``).

A run's dataset is the one it records (``config.yaml``'s ``dataset`` and ``image_size``, else its
summary's ``dataset``); a report with no such run names the dataset of its spec.  Only the
paper profile on CIFAR-10 is comparable to the paper: only then does the report print
differences to the paper's numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from .read import Metrics, Run

#: How the report names a dataset, the image size it is published at, and the size a run
#: without ``image_size`` reads it at (:mod:`sd_darts.data`: 32 but for ImageNet's 224 crops).
DATASET_NAMES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST", "digits": "digits", "imagenet": "ImageNet"}
NATIVE_SIZE = {"cifar10": 32, "fashion-mnist": 32, "imagenet": 224}  # Fashion-MNIST: 28x28 padded
DEFAULT_SIZE = {"imagenet": 224}
#: Datasets that only check the pipeline runs (every other one is real data).
TOY_DATASETS = ("digits",)
#: The profile and dataset of the paper's numbers.
PAPER_PROFILE = "paper"
PAPER_DATASET = "cifar10"


def dataset_text(dataset: str, image_size: int | None = None) -> str:
    """``CIFAR-10``, ``digits 16×16``: the size is named when it is not the dataset's own."""
    name = DATASET_NAMES.get(dataset, dataset)
    size = DEFAULT_SIZE.get(dataset, 32) if image_size is None else image_size
    return name if size == NATIVE_SIZE.get(dataset) else f"{name} {size}×{size}"


def run_dataset(run: Run) -> tuple[str, int | None] | None:
    """(dataset, image size) a run records, or None when it records none."""
    dataset = run.config.get("dataset", run.summary.get("dataset"))
    if not isinstance(dataset, str) or not dataset:
        return None
    size = run.config.get("image_size")
    return dataset, size if isinstance(size, int) and not isinstance(size, bool) else None


def spec_dataset(metrics: Metrics) -> str | None:
    """The dataset the report's spec names for its runs (None when it names none)."""
    spec = metrics.spec
    return dataset_text(spec.dataset, spec.image_size) if spec.dataset else None


def datasets(metrics: Metrics, runs: Iterable[Run]) -> str:
    """The datasets ``runs`` record (the spec's when they record none), e.g. ``digits 16×16``."""
    texts = sorted({dataset_text(*d) for d in map(run_dataset, runs) if d is not None})
    if not texts:
        texts = [spec_dataset(metrics) or "dataset not recorded"]
    return ", ".join(texts)


def measured_on(metrics: Metrics, runs: Iterable[Run]) -> str:
    """``digits 16×16 (smoke)``: the datasets of ``runs`` and the report's profile."""
    return f"{datasets(metrics, runs)} ({metrics.spec.profile})"


def _cifar_side(metrics: Metrics) -> list[Run]:
    """Every run shown but the ImageNet trainings (which have a dataset of their own)."""
    return [r for r in metrics.all_runs() if r.ref.kind != "train_imagenet"]


def scope(metrics: Metrics) -> str:
    """The dataset(s) and profile of the whole report (for figure titles and PNG metadata)."""
    return measured_on(metrics, _cifar_side(metrics))


def comparable(metrics: Metrics) -> bool:
    """Whether the report's numbers may be set against the paper's: the paper profile, on
    CIFAR-10 at its own size (the spec's dataset and every CIFAR-side run's)."""
    if metrics.spec.profile != PAPER_PROFILE:
        return False
    if metrics.spec.dataset is not None and spec_dataset(metrics) != dataset_text(PAPER_DATASET):
        return False
    recorded = {dataset_text(*d) for d in map(run_dataset, _cifar_side(metrics)) if d is not None}
    return recorded <= {dataset_text(PAPER_DATASET)} and (bool(recorded) or metrics.spec.dataset is not None)


def not_comparable(metrics: Metrics) -> str:
    """What a reproduced number carries beside it when the report is not comparable to the paper."""
    if comparable(metrics):
        return ""
    return f"; {metrics.spec.profile} profile: not comparable to the paper (runs on {datasets(metrics, _cifar_side(metrics))})"


def stamp(metrics: Metrics, runs: Iterable[Run]) -> dict[str, str]:
    """What a figure of ``runs`` carries in its title and PNG text chunks: profile and dataset."""
    return {"Profile": metrics.spec.profile, "Dataset": datasets(metrics, runs)}


def stamp_text(stamp: dict[str, str]) -> str:
    """``digits 16×16 (smoke)``: a figure's stamp as its title line."""
    return f"{stamp['Dataset']} ({stamp['Profile']} profile)"
