"""Settings of ``sd-darts search`` (:class:`SearchConfig`), apart from the loop of
:mod:`sd_darts.search.loop` so that the command line builds its flags without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..datasets import DATASETS, image_size_problem, image_size_setting
from ..spaces import SPACE_NAMES, get_space
from ..utils.config import require, setting
from ..utils.runtime import check_device_name

METHODS = ("darts", "sd-darts")
KD_DIRECTIONS = ("student_teacher", "teacher_student")
MAX_EPOCHS = 10_000
#: The most seeds ``--seeds`` stacks in one process (their memory is checked too: ×S one seed's).
MAX_SEEDS = 64
#: The section of a params file that ``sd-darts search --params FILE`` reads, by ``--space``.
PARAMS_SECTIONS = {"darts": "search", "nb201": "nb201"}


@dataclass
class SearchConfig:
    """Settings of ``sd-darts search``; defaults are the paper's (Table 1, §4.1)."""

    # what is searched, on what (§4.1; DARTS §3.1: half the training set trains the alphas)
    method: str = setting("sd-darts", "search method: plain DARTS or SD-DARTS", choices=METHODS)
    space: str = setting("darts", "search space", choices=SPACE_NAMES)
    dataset: str = setting("cifar10", "search dataset (fashion-mnist, digits: offline)", choices=DATASETS)
    data_root: str = setting("data", "dataset folder (docs/pipeline.md, Data)", fingerprint=False)
    download: bool = setting(False, "download CIFAR-10 through torchvision if it is missing", fingerprint=False)
    train_portion: float = setting(0.5, "fraction of the training set that trains the weights", gt=0.0, lt=1.0)
    image_size: int | None = image_size_setting()
    limit_samples: int | None = setting(None, "use only the first N training images (smoke runs, tests)", ge=2)
    # the supernet (DARTS §2.1)
    primitives: str | None = setting(None, "comma-separated candidate ops (darts space; default: DARTS's 8)")
    init_channels: int | None = setting(None, "supernet initial channels C (default: the space's, 16)", ge=1, le=1024)
    layers: int | None = setting(
        None, "supernet cells; NB201: per stage (default: the space's, DARTS 8, NB201 5)", ge=1, le=100
    )
    # the weights: SGD with a cosine schedule (DARTS §3.1.1)
    epochs: int = setting(50, "search epochs E", ge=1, le=MAX_EPOCHS)
    batch_size: int = setting(64, "batch size of both halves", ge=1, le=65536)
    learning_rate: float = setting(0.025, "initial weight learning rate", gt=0.0, le=10.0)
    learning_rate_min: float = setting(0.001, "final weight learning rate of the cosine schedule", ge=0.0)
    momentum: float = setting(0.9, "SGD momentum", ge=0.0, lt=1.0)
    weight_decay: float = setting(3e-4, "weight decay of the supernet weights", ge=0.0, le=1.0)
    nesterov: bool = setting(False, "Nesterov momentum for the weights")
    grad_clip: float = setting(5.0, "gradient-norm clip of the weights (0 = off)", ge=0.0, le=1e6)
    # the alphas: Adam, first or second order (DARTS §2.3)
    arch_learning_rate: float = setting(3e-4, "Adam learning rate of the alphas", gt=0.0, le=1.0)
    arch_weight_decay: float = setting(1e-3, "Adam weight decay of the alphas", ge=0.0, le=1.0)
    arch_beta1: float = setting(0.5, "Adam beta1 of the alphas", ge=0.0, lt=1.0)
    arch_beta2: float = setting(0.999, "Adam beta2 of the alphas", ge=0.0, lt=1.0)
    unrolled: bool = setting(False, "second-order (unrolled) alpha gradient instead of first order")
    # self-distillation with voting teachers (§3.3-3.4, Eq. 2, Algorithm 2)
    warmup_epochs: int = setting(25, "warm-up epochs ξ before self-distillation (0 acts as 1)", ge=0, le=MAX_EPOCHS)
    window: int = setting(2, "voting window K: teacher = mean of the previous K epochs", ge=1, le=MAX_EPOCHS)
    sd_lambda: float = setting(1.0, "weight λ of the KD term in both losses", ge=0.0, le=1e3)
    temperature: float = setting(1.0, "distillation temperature T (paper: not stated, 1)", gt=0.0, le=100.0)
    kd_direction: str = setting(
        "student_teacher", "KL(student‖teacher) as the paper, or the reverse", choices=KD_DIRECTIONS
    )
    # flatness: the dominant Hessian eigenvalue w.r.t. the alphas (Fig. 2)
    hessian_every: int = setting(
        0, "Hessian eigenvalue every N epochs (0 = off)", ge=0, le=MAX_EPOCHS, fingerprint=False
    )
    hessian_batch_size: int = setting(
        64, "fixed, seeded validation batch of the Hessian", ge=1, le=4096, fingerprint=False
    )
    hessian_iters: int = setting(100, "most Lanczos iterations for the eigenvalue", ge=1, le=1000, fingerprint=False)
    hessian_tol: float = setting(
        1e-3, "Lanczos tolerance, relative to max(1, |eigenvalue|)", gt=0.0, lt=1.0, fingerprint=False
    )
    # the run
    seed: int = setting(2, "random seed", ge=0, le=2**32 - 1)
    seeds: list[int] | None = setting(
        None,
        f"search these seeds stacked in one process, at most {MAX_SEEDS} (--fast-step --impl fused; --out with {{seed}})",
        ge=0,
        le=2**32 - 1,
        max_len=MAX_SEEDS,
        fingerprint=False,
    )
    max_steps_per_epoch: int | None = setting(None, "cap on steps per epoch (smoke runs and tests)", ge=1)
    num_workers: int = setting(0, "DataLoader workers (results do not depend on it)", ge=0, le=64, fingerprint=False)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N", fingerprint=False)
    out: str = setting("runs/search", "output folder", fingerprint=False)
    # speed: the same function, faster (docs/speed.md)
    impl: str = setting(
        "reference", "supernet: the reference modules, or fused kernels", choices=("reference", "fused")
    )
    fast_step: bool = setting(False, "the capturable first-order step on device-resident data")
    amp: str = setting("none", "bf16 autocast of the forward passes (with --fast-step)", choices=("none", "bf16"))
    compile: str = setting(
        "none",
        "torch.compile the supernet or the whole step (--fast-step)",
        choices=("none", "model", "step"),
        fingerprint=False,
    )
    cuda_graph: bool = setting(False, "replay the step as one CUDA graph (CUDA, --fast-step)", fingerprint=False)

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
        problem = image_size_problem(self.dataset, self.image_size)
        require(problem is None, "image_size", problem or "")
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
