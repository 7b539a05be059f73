"""Settings of ``sd-darts search`` (:class:`SearchConfig`), apart from the loop of
:mod:`sd_darts.search` so that the command line builds its flags without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from .config import require, setting
from .runtime import check_device_name
from .spaces import SPACE_NAMES, get_space

METHODS = ("darts", "sd-darts")
KD_DIRECTIONS = ("student_teacher", "teacher_student")
DATASETS = ("cifar10", "fashion-mnist", "digits")
MAX_EPOCHS = 10_000
#: The most seeds ``--seeds`` stacks in one process (their memory is checked too: ×S one seed's).
MAX_SEEDS = 64
#: The section of a params file that ``sd-darts search --params FILE`` reads, by ``--space``.
PARAMS_SECTIONS = {"darts": "search", "nb201": "nb201"}


@dataclass
class SearchConfig:
    """Settings of ``sd-darts search``; defaults are the paper's (Table 1, §4.1)."""

    method: str = setting("sd-darts", "search method: plain DARTS or SD-DARTS", choices=METHODS)
    space: str = setting("darts", "search space", choices=SPACE_NAMES)
    dataset: str = setting(
        "cifar10", "search dataset (fashion-mnist: Debian's package; digits: scikit-learn's, offline)", choices=DATASETS
    )
    data_root: str = setting(
        "data",
        "folder holding the dataset (CIFAR-10: cifar-10-python.tar.gz or cifar-10-batches-py; Fashion-MNIST: FashionMNIST/raw/)",
        fingerprint=False,
    )
    download: bool = setting(False, "download CIFAR-10 through torchvision if it is missing", fingerprint=False)
    train_portion: float = setting(
        0.5, "fraction of the training set that trains the weights; the rest trains the alphas", gt=0.0, lt=1.0
    )
    image_size: int | None = setting(None, "resize images to this size (digits only; default: 32)", ge=8, le=256)
    epochs: int = setting(50, "search epochs E", ge=1, le=MAX_EPOCHS)
    batch_size: int = setting(64, "batch size of both halves", ge=1, le=65536)
    learning_rate: float = setting(0.025, "initial weight learning rate (SGD, cosine schedule)", gt=0.0, le=10.0)
    learning_rate_min: float = setting(0.001, "final weight learning rate of the cosine schedule", ge=0.0)
    momentum: float = setting(0.9, "SGD momentum", ge=0.0, lt=1.0)
    weight_decay: float = setting(3e-4, "weight decay of the supernet weights", ge=0.0, le=1.0)
    nesterov: bool = setting(False, "Nesterov momentum for the weights")
    grad_clip: float = setting(5.0, "gradient-norm clip of the weights (0 = off)", ge=0.0, le=1e6)
    arch_learning_rate: float = setting(3e-4, "Adam learning rate of the alphas", gt=0.0, le=1.0)
    arch_weight_decay: float = setting(1e-3, "Adam weight decay of the alphas", ge=0.0, le=1.0)
    arch_beta1: float = setting(0.5, "Adam beta1 of the alphas", ge=0.0, lt=1.0)
    arch_beta2: float = setting(0.999, "Adam beta2 of the alphas", ge=0.0, lt=1.0)
    unrolled: bool = setting(False, "second-order (unrolled) alpha gradient instead of first order")
    primitives: str | None = setting(
        None, "comma-separated candidate ops of the DARTS space (default: all 8 DARTS ops, in the DARTS order)"
    )
    init_channels: int | None = setting(None, "supernet initial channels C (default: the space's, 16)", ge=1, le=1024)
    layers: int | None = setting(
        None, "supernet cells, or cells per stage N in NB201 (default: the space's, DARTS 8, NB201 5)", ge=1, le=100
    )
    warmup_epochs: int = setting(
        25,
        "warm-up epochs ξ before self-distillation starts (ξ=0 and ξ=1 act alike: the first epoch has no earlier epoch to distil from)",
        ge=0,
        le=MAX_EPOCHS,
    )
    window: int = setting(2, "voting window K: teacher = mean of the previous K epochs", ge=1, le=MAX_EPOCHS)
    sd_lambda: float = setting(1.0, "weight λ of the KD term in both losses", ge=0.0, le=1e3)
    temperature: float = setting(1.0, "distillation temperature T (paper: not stated, 1)", gt=0.0, le=100.0)
    kd_direction: str = setting(
        "student_teacher", "KL(student‖teacher) as the paper, or the reverse", choices=KD_DIRECTIONS
    )
    seed: int = setting(2, "random seed", ge=0, le=2**32 - 1)
    max_steps_per_epoch: int | None = setting(None, "cap on steps per epoch (smoke runs and tests)", ge=1)
    limit_samples: int | None = setting(
        None, "use only the first N training images, split as usual (smoke runs and tests)", ge=2
    )
    impl: str = setting(
        "reference",
        "supernet implementation: the reference modules, or fused kernels (same function and initial values, fewer and bigger kernels; docs/speed.md)",
        choices=("reference", "fused"),
    )
    fast_step: bool = setting(
        False,
        "the capturable first-order step, data resident on the device and augmented by batch (the ragged last batch is kept, as in DARTS; docs/speed.md)",
    )
    amp: str = setting("none", "bf16 autocast of the forward passes (with --fast-step)", choices=("none", "bf16"))
    compile: str = setting(
        "none",
        "torch.compile the supernet (model) or the whole step (step), with --fast-step",
        choices=("none", "model", "step"),
        fingerprint=False,
    )
    seeds: list[int] | None = setting(
        None,
        f"search these seeds together, stacked in one process, at most {MAX_SEEDS} (with --fast-step --impl fused; --out with {{seed}}; docs/speed.md)",
        ge=0,
        le=2**32 - 1,
        max_len=MAX_SEEDS,
        fingerprint=False,
    )
    cuda_graph: bool = setting(
        False, "replay the whole first-order step as one CUDA graph (CUDA, with --fast-step)", fingerprint=False
    )
    hessian_every: int = setting(
        0,
        "compute the dominant Hessian eigenvalue w.r.t. the alphas every N epochs (0 = off)",
        ge=0,
        le=MAX_EPOCHS,
        fingerprint=False,
    )
    hessian_batch_size: int = setting(
        64, "size of the fixed, seeded validation batch for the Hessian", ge=1, le=4096, fingerprint=False
    )
    hessian_iters: int = setting(
        100,
        "most Lanczos iterations (Hessian-vector products) for the Hessian eigenvalue",
        ge=1,
        le=1000,
        fingerprint=False,
    )
    hessian_tol: float = setting(
        1e-3, "Lanczos stops when the residual is below tol·max(1, |eigenvalue|)", gt=0.0, lt=1.0, fingerprint=False
    )
    num_workers: int = setting(
        0, "DataLoader worker processes (results do not depend on it)", ge=0, le=64, fingerprint=False
    )
    device: str = setting("auto", "auto, cpu, cuda or cuda:N", fingerprint=False)
    out: str = setting("runs/search", "output folder", fingerprint=False)

    def validate(self) -> None:
        space = get_space(self.space)
        require(
            self.learning_rate_min <= self.learning_rate,
            "learning_rate_min",
            f"must not exceed --learning-rate ({self.learning_rate})",
        )
        if self.method == "sd-darts":
            require(
                self.warmup_epochs < self.epochs,
                "warmup_epochs",
                f"must be smaller than --epochs ({self.epochs}), got {self.warmup_epochs}: no epoch would use self-distillation",
            )
        require(
            self.image_size is None or self.dataset == "digits", "image_size", "only the digits dataset can be resized"
        )
        problem = check_device_name(self.device)
        require(problem is None, "device", problem or "")
        require(self.out.strip() != "", "out", "is empty; name an output folder")
        if self.primitives is not None:
            require(self.space == "darts", "primitives", "only the darts space takes a custom list of candidate ops")
            ops = [op.strip() for op in self.primitives.split(",") if op.strip()]
            known = tuple(space.primitives)
            for op in ops:
                require(op in known, "primitives", f"unknown op {op!r}; known ops: {', '.join(known)}")
            require(len(set(ops)) == len(ops), "primitives", "an op is listed twice")
            require(any(op != "none" for op in ops), "primitives", "needs at least one op besides none")
            self.primitives = ",".join(ops)
        if self.init_channels is None:
            self.init_channels = space.default_channels
        if self.layers is None:
            self.layers = space.default_layers
        if not self.fast_step:
            for name, off in (
                ("amp", self.amp == "none"),
                ("compile", self.compile == "none"),
                ("cuda_graph", not self.cuda_graph),
            ):
                require(off, name, "needs --fast-step (the capturable first-order step)")
        require(
            not (self.fast_step and self.unrolled),
            "fast_step",
            "is first order only; drop --unrolled (second order runs the reference step)",
        )
        if self.space == "darts":
            require(
                self.layers >= 3,
                "layers",
                f"must be at least 3 in the darts space (reduction cells at 1/3 and 2/3 of the depth and a normal cell), got {self.layers}",
            )
