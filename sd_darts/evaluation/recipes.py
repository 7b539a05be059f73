"""Training recipes of the evaluation networks (CIFAR-10 §4.2: DARTS's; ImageNet §4.3: PC-DARTS's).

Each recipe holds its settings, learning-rate schedule, data and network, so the training loop
(:mod:`sd_darts.evaluation.train`) runs any of them without asking which; the values and their sources are
tabled in docs/evaluation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..datasets import DATASETS, image_size_problem, image_size_setting
from ..errors import UserError
from ..genotypes import Genotype, load_genotype
from ..utils.config import require, setting
from ..utils.runtime import check_device_name
from ..utils.schedules import cosine_lr, imagenet_lr

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from ..data import EvalData

AMP_MODES = ("auto", "none", "bf16")
MAX_EPOCHS = 10_000
GENOTYPE_HELP = "shipped genotype (DARTS_V1, DARTS_V2, SD_DARTS) or path to a genotype.json"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass
class _RunSettings:
    """Settings of both recipes that concern the run rather than the recipe."""

    seed: int = setting(
        0, "random seed (model initialisation, data order, augmentation, drop path)", ge=0, le=2**32 - 1
    )
    max_steps_per_epoch: int | None = setting(None, "cap on training steps per epoch (smoke runs and tests)", ge=1)
    amp: str = setting(
        "none",
        "forward precision: none (fp32, the paper's), bf16 autocast, or auto (bf16 on CUDA only)",
        choices=AMP_MODES,
    )
    channels_last: bool | None = setting(
        False,
        "channels_last memory format (a speed option for GPUs; null: on CUDA only)",
        fingerprint=False,
    )
    compile: bool = setting(
        False,
        "torch.compile the network (faster steps on GPUs after a compilation of a few minutes)",
        fingerprint=False,
    )
    num_workers: int = setting(
        4, "DataLoader worker processes per rank (results do not depend on it)", ge=0, le=256, fingerprint=False
    )
    pin_memory: bool = setting(True, "pinned host memory for the loaders (CUDA only)", fingerprint=False)
    progress: bool = setting(True, "show progress bars (or periodic log lines off a terminal)", fingerprint=False)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)", fingerprint=False)

    def _validate_common(self) -> None:
        problem = check_device_name(self.device)
        require(problem is None, "device", problem or "")
        require(self.genotype.strip() != "", "genotype", f"must name a {GENOTYPE_HELP}")
        require(self.out.strip() != "", "out", "is empty; name an output folder")
        require(
            self.init_channels % 2 == 0,
            "init_channels",
            f"must be even (FactorizedReduce halves it), got {self.init_channels}",
        )
        if self.auxiliary_weight > 0:
            from .networks import auxiliary_input_ok

            require(
                auxiliary_input_ok(self.network_kind, self.input_size),
                "auxiliary_weight",
                f"the DARTS {self.network_kind} auxiliary head does not fit {self.input_size}x{self.input_size} inputs "
                f"({self.aux_hint}); use --auxiliary-weight 0",
            )


@dataclass
class _CifarSettings:
    """The CIFAR-10 recipe's settings (listed before the run settings in ``--help``)."""

    genotype: str = setting("SD_DARTS", GENOTYPE_HELP)
    dataset: str = setting(
        "cifar10", "cifar10, fashion-mnist, or digits (scikit-learn's, offline smoke runs)", choices=DATASETS
    )
    data_root: str = setting(
        "data", "folder holding CIFAR-10 (cifar-10-python.tar.gz or cifar-10-batches-py)", fingerprint=False
    )
    download: bool = setting(False, "download CIFAR-10 through torchvision if it is missing", fingerprint=False)
    image_size: int | None = image_size_setting()
    holdout_portion: float | None = setting(
        None,
        "train on this leading fraction, evaluate on the rest instead of the test set (DARTS's selection)",
        gt=0.0,
        lt=1.0,
    )
    epochs: int = setting(600, "training epochs", ge=1, le=MAX_EPOCHS)
    batch_size: int = setting(96, "global batch size (split over the ranks under torchrun)", ge=1, le=65536)
    learning_rate: float = setting(
        0.025, "initial SGD learning rate (cosine schedule, stepped per epoch)", gt=0.0, le=10.0
    )
    learning_rate_min: float = setting(0.0, "final learning rate of the cosine schedule", ge=0.0)
    momentum: float = setting(0.9, "SGD momentum", ge=0.0, lt=1.0)
    weight_decay: float = setting(3e-4, "weight decay", ge=0.0, le=1.0)
    grad_clip: float = setting(5.0, "gradient-norm clip (0 = off)", ge=0.0, le=1e6)
    init_channels: int = setting(36, "initial channels C of the network", ge=2, le=1024)
    layers: int = setting(20, "number of cells", ge=3, le=200)
    auxiliary_weight: float = setting(
        0.4, "weight of the auxiliary head's loss (0 = no auxiliary head)", ge=0.0, le=100.0
    )
    drop_path_prob: float = setting(0.3, "final drop path probability (ramped linearly from 0)", ge=0.0, lt=1.0)
    cutout_length: int = setting(16, "Cutout square side, applied after normalisation (0 = off)", ge=0, le=256)
    out: str = setting("runs/train_cifar", "output folder", fingerprint=False)

    network_kind: ClassVar[str] = "cifar"
    aux_hint: ClassVar[str] = "it needs 8x8 maps after the second reduction, i.e. about 32x32 inputs"

    def validate(self) -> None:
        self._validate_common()
        require(
            self.learning_rate_min <= self.learning_rate,
            "learning_rate_min",
            f"must not exceed --learning-rate ({self.learning_rate})",
        )
        problem = image_size_problem(self.dataset, self.image_size)
        require(problem is None, "image_size", problem or "")

    @property
    def input_size(self) -> int:
        return 32 if self.image_size is None else self.image_size


@dataclass
class _ImageNetSettings:
    """The ImageNet recipe's settings (listed before the run settings in ``--help``)."""

    genotype: str = setting("SD_DARTS", GENOTYPE_HELP)
    dataset: str = setting("imagenet", "ILSVRC2012 from a local folder", choices=("imagenet",))
    data_root: str = setting(
        "data/imagenet", "folder with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG", fingerprint=False
    )
    image_size: int = setting(224, "training crop and evaluation centre-crop size", ge=32, le=1024)
    epochs: int = setting(250, "training epochs", ge=1, le=MAX_EPOCHS)
    batch_size: int = setting(1024, "global batch size (split over the ranks under torchrun)", ge=1, le=65536)
    learning_rate: float = setting(
        0.5, "peak SGD learning rate (after warm-up; then linear decay to 0)", gt=0.0, le=10.0
    )
    warmup_epochs: int = setting(5, "epochs of linear learning-rate warm-up (lr·(e+1)/warmup)", ge=0, le=MAX_EPOCHS)
    momentum: float = setting(0.9, "SGD momentum", ge=0.0, lt=1.0)
    weight_decay: float = setting(3e-5, "weight decay", ge=0.0, le=1.0)
    label_smoothing: float = setting(0.1, "label smoothing of the training loss", ge=0.0, lt=1.0)
    grad_clip: float = setting(5.0, "gradient-norm clip (0 = off)", ge=0.0, le=1e6)
    init_channels: int = setting(48, "initial channels C of the network", ge=2, le=1024)
    layers: int = setting(14, "number of cells", ge=3, le=200)
    auxiliary_weight: float = setting(
        0.4, "weight of the auxiliary head's loss (0 = no auxiliary head)", ge=0.0, le=100.0
    )
    drop_path_prob: float = setting(0.0, "final drop path probability (ramped linearly from 0)", ge=0.0, lt=1.0)
    cutout_length: int = setting(
        0, "Cutout square side, applied after normalisation (0 = off, as in PC-DARTS)", ge=0, le=1024
    )
    out: str = setting("runs/train_imagenet", "output folder", fingerprint=False)

    network_kind: ClassVar[str] = "imagenet"
    aux_hint: ClassVar[str] = "it needs 7x7 or 8x8 maps after the second reduction, i.e. inputs of 193 to 256 pixels"

    def validate(self) -> None:
        self._validate_common()

    @property
    def input_size(self) -> int:
        return self.image_size


@dataclass
class TrainCifarConfig(_RunSettings, _CifarSettings):
    """Settings of ``sd-darts train-cifar``; defaults are the paper's §4.2 (DARTS's recipe)."""


@dataclass
class TrainImageNetConfig(_RunSettings, _ImageNetSettings):
    """Settings of ``sd-darts train-imagenet``; defaults are the paper's §4.3 (PC-DARTS's recipe)."""


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------


class _Network:
    """A network class of :mod:`sd_darts.evaluation.networks` by name, imported (with torch) on first use."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj: Any, owner: type) -> type:
        from . import networks as model

        return getattr(model, self.name)


def resolve_genotype(name_or_path: str) -> Genotype:
    """Load a shipped genotype by name or a ``genotype.json``; it must be a DARTS-space one."""
    genotype = load_genotype(name_or_path)
    if not isinstance(genotype, Genotype):
        raise UserError(
            f"--genotype {name_or_path} is a {type(genotype).__name__}, not a DARTS-space genotype; "
            "the evaluation networks are built from DARTS cells"
        )
    return genotype


class CifarRecipe:
    """DARTS's CIFAR-10 recipe (paper §4.2) for a :class:`TrainCifarConfig`."""

    name = "train-cifar"
    Config = TrainCifarConfig
    network = _Network("NetworkCIFAR")
    label_smoothing = 0.0

    def __init__(self, cfg: TrainCifarConfig):
        self.cfg = cfg

    def learning_rate(self, epoch: int) -> float:
        c = self.cfg
        return cosine_lr(epoch, c.epochs, c.learning_rate, c.learning_rate_min)

    def load_data(self) -> EvalData:
        from ..data import load_eval_data

        c = self.cfg
        return load_eval_data(
            c.dataset,
            c.data_root,
            cutout_length=c.cutout_length,
            image_size=c.image_size,
            download=c.download,
            holdout_portion=c.holdout_portion,
        )

    def build_network(self, genotype: Genotype, num_classes: int) -> nn.Module:
        c = self.cfg
        return self.network(c.init_channels, num_classes, c.layers, c.auxiliary_weight > 0, genotype)


class ImageNetRecipe(CifarRecipe):
    """PC-DARTS's ImageNet recipe (paper §4.3) for a :class:`TrainImageNetConfig`."""

    name = "train-imagenet"
    Config = TrainImageNetConfig
    network = _Network("NetworkImageNet")

    def __init__(self, cfg: TrainImageNetConfig):
        self.cfg = cfg
        self.label_smoothing = cfg.label_smoothing

    def learning_rate(self, epoch: int) -> float:
        c = self.cfg
        return imagenet_lr(epoch, c.epochs, c.learning_rate, c.warmup_epochs)

    def load_data(self) -> EvalData:
        from ..data.imagenet import load_imagenet

        c = self.cfg
        return load_imagenet(c.data_root, image_size=c.image_size, cutout_length=c.cutout_length)


RECIPES: tuple[type[CifarRecipe], ...] = (CifarRecipe, ImageNetRecipe)


def recipe_for(cfg: Any) -> CifarRecipe:
    """The recipe object of a settings object (the one place that looks at its type)."""
    for recipe in RECIPES:
        if type(cfg) is recipe.Config:
            return recipe(cfg)
    raise TypeError(f"no training recipe for settings of type {type(cfg).__name__}")


__all__ = [
    "TrainCifarConfig",
    "TrainImageNetConfig",
    "CifarRecipe",
    "ImageNetRecipe",
    "RECIPES",
    "recipe_for",
    "resolve_genotype",
]
