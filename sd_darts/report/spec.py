"""What a report shows and where its inputs are: :class:`ReportSpec` and :class:`RunRef`.

Paths are relative to the metrics root, so the report knows nothing of the pipeline's layout;
the run kinds and the files each run folder holds: docs/report.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

#: The kinds of run a report shows.
KINDS = ("search", "train_cifar", "train_imagenet", "nb201_search", "ablation_warmup", "ablation_window")
SEARCH_KINDS = ("search", "nb201_search")
TRAIN_KINDS = ("train_cifar", "train_imagenet")
ABLATION_KINDS = ("ablation_warmup", "ablation_window")

#: The search setting each ablation sweeps, and the one it holds fixed (keys of
#: :attr:`ReportSpec.ablation_fixed`): Fig. 5 sweeps ξ at K = 1, Fig. 6 sweeps K at ξ = 25.
ABLATIONS = {
    "ablation_warmup": ("warmup_epochs", "window", "window_in_warmup_sweep"),
    "ablation_window": ("window", "warmup_epochs", "warmup_in_window_sweep"),
}


def check_relpath(path: Any, what: str) -> str:
    """``path`` as a normalised relative POSIX path inside the metrics root (ValueError if not)."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        raise ValueError(f"{what} must be a non-empty relative path, got {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute() or any(part in ("..", ".", "") for part in path.split("/")):
        raise ValueError(f"{what} must be a relative path inside the metrics root without '.' or '..', got {path!r}")
    return str(p)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class RunRef:
    """One run the report expects.

    ``path``: the run's folder relative to the metrics root; ``seed``: its seed; ``label``: the
    method of a search (``darts``, ``sd-darts``), the genotype of a training (``selected``,
    ``paper``), ``""`` otherwise; ``value``: the swept ξ or K of an ablation point.
    """

    kind: str
    path: str
    seed: int
    label: str = ""
    value: int | float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"run kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "path", check_relpath(self.path, f"{self.kind} run path"))
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"run {self.path}: seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.label, str):
            raise ValueError(f"run {self.path}: label must be a string, got {self.label!r}")
        if self.kind in ABLATION_KINDS:
            ok = isinstance(self.value, (int, float)) and not isinstance(self.value, bool) and math.isfinite(self.value)
            if not ok:
                raise ValueError(f"ablation run {self.path}: value must be a finite number, got {self.value!r}")
        elif self.value is not None:
            raise ValueError(f"run {self.path}: only ablation points have a value, got {self.value!r}")

    @property
    def name(self) -> str:
        """The run folder's own name (the last part of :attr:`path`)."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class ReportSpec:
    """A plain description of one report: what to read and where (the fields: docs/report.md).

    Every path is relative to the metrics root; None means the report has no such input.
    """

    profile: str
    title: str
    table1: Mapping[str, Any] = field(default_factory=dict)  # SearchConfig field -> value; missing: the default
    runs: tuple[RunRef, ...] = ()
    genotype_dir: str | None = None  # selection.json, selected.json, stats.json
    nb201_query: str | None = None
    imagenet_status: str | None = None
    ablation_fixed: Mapping[str, Any] = field(default_factory=dict)  # missing: read from the runs' config.yaml
    other_outputs: tuple[str, ...] = ()  # folders of runs the report does not show, so not "not reported"
    dataset: str | None = None  # named where a run records none
    image_size: int | None = None

    def __post_init__(self):
        if not isinstance(self.profile, str) or not self.profile:
            raise ValueError(f"profile must be a non-empty string, got {self.profile!r}")
        if not isinstance(self.title, str) or "\n" in self.title:
            raise ValueError(f"title must be one line of text, got {self.title!r}")
        if self.dataset is not None and (not isinstance(self.dataset, str) or not self.dataset.strip()):
            raise ValueError(f"dataset must be a non-empty string or None, got {self.dataset!r}")
        if self.image_size is not None and (not _is_int(self.image_size) or self.image_size < 1):
            raise ValueError(f"image_size must be a positive integer or None, got {self.image_size!r}")
        runs = tuple(self.runs)
        if not all(isinstance(r, RunRef) for r in runs):
            raise ValueError("runs must be RunRef objects")
        paths = [r.path for r in runs]
        if len(set(paths)) != len(paths):
            raise ValueError(f"run folders must be distinct, got {sorted(p for p in paths if paths.count(p) > 1)}")
        for p in paths:
            parents = {str(q) for q in PurePosixPath(p).parents}
            if parents & set(paths):
                raise ValueError(f"run folder {p!r} lies inside another run folder")
        object.__setattr__(self, "runs", tuple(sorted(runs, key=lambda r: (KINDS.index(r.kind), r.path))))
        for name in ("genotype_dir", "nb201_query", "imagenet_status"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_relpath(value, name))
        object.__setattr__(self, "other_outputs", tuple(check_relpath(p, "other_outputs") for p in self.other_outputs))
        known = {fixed for _, _, fixed in ABLATIONS.values()}
        unknown = sorted(set(self.ablation_fixed) - known)
        if unknown:
            raise ValueError(f"ablation_fixed has unknown keys {unknown}; known: {', '.join(sorted(known))}")
        object.__setattr__(self, "table1", MappingProxyType(dict(self.table1)))
        object.__setattr__(self, "ablation_fixed", MappingProxyType(dict(self.ablation_fixed)))

    def runs_of(self, kind: str) -> list[RunRef]:
        """The expected runs of ``kind``, sorted by path."""
        return [r for r in self.runs if r.kind == kind]

    def claimed(self) -> list[str]:
        """Every path of the metrics root the report reads (run folders, files, folders)."""
        paths = [r.path for r in self.runs]
        paths += [p for p in (self.genotype_dir, self.nb201_query, self.imagenet_status) if p is not None]
        return sorted(paths + list(self.other_outputs))
