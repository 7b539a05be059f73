"""Self-distillation of SD-DARTS (paper §3.3 Eq. 2, §3.4 Algorithm 2): the KL term against
the supernet's own outputs of the previous K epochs, the per-sample voting-teacher cache that
holds them ("directly in the memory": no teacher network) and the loss of one batch.

The formulas, the KL direction, the epoch convention and the cache layout: docs/method.md,
"Self-distillation".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError

DIRECTIONS = ("student_teacher", "teacher_student")

# Floor for probabilities before taking their logarithm.  It is the smallest normal float32
# (1.18e-38, log = -87.3): only exact zeros and float32 denormals are affected, so the value
# of any non-degenerate KL is unchanged, while a teacher probability that underflowed to 0
# gives a large but finite penalty instead of +inf / NaN.
DEFAULT_EPS = float(torch.finfo(torch.float32).tiny)


def _safe_log(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``log(max(x, eps))``; differentiable, finite for x >= 0."""
    return torch.log(x.clamp_min(eps))


def kl_divergence(
    p: torch.Tensor | None,
    q: torch.Tensor | None,
    dim: int = -1,
    *,
    log_p: torch.Tensor | None = None,
    log_q: torch.Tensor | None = None,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """KL(p ‖ q) = Σ p (log p − log q) along ``dim``, one value per sample (paper §3.3).

    In log space and at least float32: terms with p == 0 count 0 (value and gradient), p and q
    are floored at ``eps`` before the log (so ``kl_divergence(p, p) == 0``), precomputed
    ``log_p`` / ``log_q`` are used as given (``p`` / ``q`` may then be None), and the result is
    clamped at >= 0 against rounding.  Why each: docs/method.md, "The KL term".
    """
    if p is None and log_p is None:
        raise ValueError("kl_divergence needs p or log_p")
    if q is None and log_q is None:
        raise ValueError("kl_divergence needs q or log_q")
    ref = p if p is not None else log_p
    dtype = torch.promote_types(ref.dtype, torch.float32)
    if log_p is not None:
        log_p = log_p.to(dtype)
        p = log_p.exp() if p is None else p.to(dtype)
    else:
        p = p.to(dtype)
        log_p = _safe_log(p, eps)
    if log_q is not None:
        log_q = log_q.to(dtype)
    else:
        log_q = _safe_log(q.to(dtype), eps)
    present = p > 0
    # Zero both logs where p == 0 so that neither the value nor the gradient can see a
    # non-finite log there (torch.where routes no gradient to the unselected branch).
    zero = torch.zeros((), dtype=dtype, device=p.device)
    diff = torch.where(present, log_p, zero) - torch.where(present, log_q, zero)
    terms = torch.where(present, p * diff, zero)
    return terms.sum(dim=dim).clamp_min(0.0)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
    direction: str = "student_teacher",
) -> torch.Tensor:
    """The self-distillation term H of Eq. (2) (§3.3), per batch: logits (N, C) -> a scalar,
    (S, N, C) -> one value per seed (S,).

    KL(softmax(logits / T) ‖ teacher) (the paper's direction; ``"teacher_student"`` swaps it),
    masked samples counting 0, divided by the full batch N, times T².  Computed in the logits'
    dtype (at least float32), finite, no host synchronisation.  docs/method.md has the account.
    """
    if direction not in DIRECTIONS:
        raise UserError(f"distillation direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    temperature = float(temperature)
    if not temperature > 0:
        raise UserError(f"distillation temperature must be > 0, got {temperature}")
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    log_s = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    t = teacher_probs.detach().to(dtype)
    if direction == "student_teacher":
        kl = kl_divergence(None, t, log_p=log_s)
    else:
        kl = kl_divergence(t, None, log_q=log_s)
    mask = mask.to(device=kl.device, dtype=torch.bool)
    kl = torch.where(mask, kl, torch.zeros((), dtype=kl.dtype, device=kl.device))
    batch = max(int(student_logits.shape[-2]), 1)
    return kl.sum(-1) / batch * (temperature**2)


def _check_dtype(dtype) -> None:
    """The cache's dtype: a floating-point ``torch.dtype`` (a one-line UserError otherwise)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise UserError(f"teacher cache dtype must be a floating-point torch.dtype (e.g. torch.float64), got {dtype!r}")


def recording_start_epoch(warmup_epochs: int, window: int) -> int:
    """First (0-indexed) epoch whose supernet outputs are stored in the teacher cache.

    KD is active from epoch index ``warmup_epochs`` (paper epoch ξ+1, Algorithm 2); its
    teachers are epochs ``warmup_epochs - K`` … ``warmup_epochs - 1``, so recording starts
    ``window`` epochs before (never before epoch 0).
    """
    return max(0, int(warmup_epochs) - int(window))


def recording_active(epoch: int, warmup_epochs: int, window: int) -> bool:
    """Whether the supernet outputs of (0-indexed) ``epoch`` are stored in the cache."""
    return int(epoch) >= recording_start_epoch(warmup_epochs, window)


def kd_active(epoch: int, warmup_epochs: int) -> bool:
    """Whether the distillation term is used at (0-indexed) ``epoch``: after ξ warm-up epochs."""
    return int(epoch) >= int(warmup_epochs)


class TeacherCache:
    """Per-sample voting teacher of SD-DARTS (§3.3 outputs stored "in the memory", §3.4
    Algorithm 2): a ring buffer of the last K = ``window`` epochs, for ``num_seeds`` = S
    searches side by side.  ``probs`` (S, K, num_samples, num_classes) in ``dtype`` (pass the
    supernet's parameter dtype, so that KD is computed in it), ``epochs`` int64 (S, K,
    num_samples), -1 = empty.

    In epoch t, per batch: ``teacher(indices, t)``, then ``record(indices, probs, t)`` with the
    same forward pass (recording t overwrites t-K).  Layout, sizes and index rules:
    docs/method.md, "The voting-teacher cache".
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        window: int,
        device: torch.device | str | None = None,
        *,
        num_seeds: int = 1,
        dtype: torch.dtype = torch.float32,
    ):
        num_samples, num_classes, window, num_seeds = int(num_samples), int(num_classes), int(window), int(num_seeds)
        _check_dtype(dtype)
        if window < 1:
            raise UserError(f"voting-teacher window K must be >= 1, got {window}")
        if num_samples < 1 or num_classes < 1:
            raise UserError(
                f"teacher cache needs num_samples >= 1 and num_classes >= 1, got {num_samples}, {num_classes}"
            )
        if num_seeds < 1:
            raise ValueError(f"teacher cache needs num_seeds >= 1, got {num_seeds}")
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.window = window
        self.num_seeds = num_seeds
        device = torch.device("cpu") if device is None else torch.device(device)
        shape = (num_seeds, window, num_samples)
        self.probs = torch.zeros(*shape, num_classes, dtype=dtype, device=device)
        self.epochs = torch.full(shape, -1, dtype=torch.int64, device=device)

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.probs.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the stored probabilities (the supernet's, so that KD is computed in it)."""
        return self.probs.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by the two buffers."""
        return self.probs.numel() * self.probs.element_size() + self.epochs.numel() * self.epochs.element_size()

    @staticmethod
    def bytes_needed(
        window: int, num_samples: int, num_classes: int, num_seeds: int = 1, *, dtype: torch.dtype = torch.float32
    ) -> int:
        """What :attr:`nbytes` will be for a cache of this shape and dtype, before allocating it."""
        _check_dtype(dtype)
        size = torch.empty((), dtype=dtype).element_size()
        return int(num_seeds) * int(window) * int(num_samples) * (int(num_classes) * size + 8)

    def to(self, device: torch.device | str) -> TeacherCache:
        """Move the buffers (views from :meth:`seed` taken before keep the old ones)."""
        self.probs = self.probs.to(device)
        self.epochs = self.epochs.to(device)
        return self

    def seed(self, seed: int) -> TeacherCache:
        """Seed ``seed``'s one-seed cache, sharing this cache's buffers (a view, not a copy):
        its checkpoint state and coverage are a single run's."""
        view = TeacherCache.__new__(TeacherCache)
        view.num_samples, view.num_classes, view.window, view.num_seeds = (
            self.num_samples,
            self.num_classes,
            self.window,
            1,
        )
        view.probs, view.epochs = self.probs[seed : seed + 1], self.epochs[seed : seed + 1]
        return view

    def __repr__(self) -> str:
        seeds = f", num_seeds={self.num_seeds}" if self.num_seeds > 1 else ""
        return (
            f"TeacherCache(num_samples={self.num_samples}, num_classes={self.num_classes}, "
            f"window={self.window}{seeds}, device={self.device})"
        )

    def _indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(N,) or (S, N) indices -> (S, N) int64 on the cache's device."""
        indices = torch.as_tensor(indices).to(device=self.device, dtype=torch.int64, non_blocking=True)
        if indices.dim() <= 1:
            if self.num_seeds != 1:
                raise ValueError(f"a cache of {self.num_seeds} seeds needs (S, N) indices, got {tuple(indices.shape)}")
            return indices.reshape(1, -1)
        if indices.dim() != 2 or indices.shape[0] != self.num_seeds:
            raise ValueError(f"expected ({self.num_seeds}, N) indices, got {tuple(indices.shape)}")
        return indices

    def _epoch(self, epoch: int | torch.Tensor) -> torch.Tensor | int:
        if isinstance(epoch, torch.Tensor):
            return epoch.to(device=self.device, dtype=torch.int64, non_blocking=True)
        return int(epoch)

    # ------------------------------------------------------------------ record / query
    @torch.no_grad()
    def record(
        self,
        indices: torch.Tensor,
        probs: torch.Tensor,
        epoch: int | torch.Tensor,
        active: torch.Tensor | None = None,
    ) -> None:
        """Store ``probs`` ((N, C) or (S, N, C), detached) in slot ``epoch % K`` of the samples
        ``indices`` as epoch ``epoch``'s outputs; with ``active`` (a 0-dim bool tensor), only
        where it holds, without reading it on the host."""
        epoch = self._epoch(epoch)
        if not isinstance(epoch, torch.Tensor):
            if epoch < 0:
                raise ValueError(f"epoch must be >= 0, got {epoch}")
            # a fill kernel, not a host-to-device copy
            epoch = torch.full((), epoch, dtype=torch.int64, device=self.device)
        idx = self._indices(indices)
        S, N = idx.shape
        seeds = torch.arange(S, device=self.device).view(S, 1).expand(S, N)
        where = (seeds, torch.remainder(epoch, self.window).expand(S, N), idx)
        values = probs.detach().to(device=self.device, dtype=self.probs.dtype).reshape(S, N, self.num_classes)
        stamps = epoch.expand(S, N)
        if active is not None:
            values = torch.where(active, values, self.probs[where])
            stamps = torch.where(active, stamps, self.epochs[where])
        self.probs.index_put_(where, values)
        self.epochs.index_put_(where, stamps)

    def _valid(self, stored: torch.Tensor, epoch: int | torch.Tensor | None) -> torch.Tensor:
        valid = stored >= 0
        if epoch is not None:
            valid = valid & (stored >= epoch - self.window) & (stored <= epoch - 1)
        return valid

    @torch.no_grad()
    def teacher(
        self, indices: torch.Tensor, epoch: int | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Voting teacher (Algorithm 2): per sample, the mean of its stored probabilities of
        epochs in [epoch - K, epoch - 1] (every stored slot without ``epoch``); fewer than K
        stored epochs vote with those they have.

        Returns ``(probs, mask)`` shaped like ``indices`` (+ C): probabilities in the cache's
        dtype and mask = at least one vote.  Samples without a vote get the uniform 1/C (finite;
        :func:`distillation_loss` gives them weight 0 through the mask).
        """
        single = torch.as_tensor(indices).dim() <= 1
        idx = self._indices(indices)
        S, N = idx.shape
        K, C = self.window, self.num_classes
        gather = idx.unsqueeze(1).expand(S, K, N)
        valid = self._valid(self.epochs.gather(2, gather), None if epoch is None else self._epoch(epoch))
        probs = self.probs.gather(2, gather.unsqueeze(-1).expand(S, K, N, C))  # (S, K, N, C)
        total = (probs * valid.to(probs.dtype).unsqueeze(-1)).sum(1)
        votes = valid.sum(1)
        mask = votes > 0
        mean = total / votes.clamp_min(1).to(probs.dtype).unsqueeze(-1)
        uniform = torch.full((), 1.0 / C, dtype=probs.dtype, device=probs.device)
        out = torch.where(mask.unsqueeze(-1), mean, uniform)
        return (out[0], mask[0]) if single else (out, mask)

    @torch.no_grad()
    def coverage(self, epoch: int | None = None) -> torch.Tensor:
        """Fraction of all samples with at least one valid vote: 0-dim for one seed, (S,) for S."""
        cov = self._valid(self.epochs, epoch).any(1).float().mean(-1)
        return cov[0] if self.num_seeds == 1 else cov

    # ------------------------------------------------------------------ checkpoints
    def _single(self) -> None:
        if self.num_seeds != 1:
            raise ValueError(f"a cache of {self.num_seeds} seeds is saved seed by seed: use cache.seed(s)")

    def state_dict(self) -> dict[str, Any]:
        """A single run's cache state: window, num_samples, num_classes, probs (K, N, C),
        epochs (K, N)."""
        self._single()
        return {
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "window": self.window,
            "probs": self.probs[0].detach().clone(),
            "epochs": self.epochs[0].detach().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore bit for bit; a cache of another shape or window raises UserError."""
        self._single()
        try:
            shape = (int(state["window"]), int(state["num_samples"]), int(state["num_classes"]))
            probs, epochs = state["probs"], state["epochs"]
        except (KeyError, TypeError, ValueError):
            raise UserError(
                "teacher cache in the checkpoint is malformed (missing window/num_samples/num_classes/probs/epochs); "
                "delete the checkpoint or start a new run folder"
            ) from None
        mine = (self.window, self.num_samples, self.num_classes)
        if shape != mine:
            raise UserError(
                f"teacher cache in the checkpoint has (window, samples, classes) = {shape} but this run uses {mine}; "
                "resume with the same window/dataset settings or start a new run folder"
            )
        if (
            not isinstance(probs, torch.Tensor)
            or not isinstance(epochs, torch.Tensor)
            or tuple(probs.shape) != mine
            or tuple(epochs.shape) != mine[:2]
            or epochs.dtype != torch.int64
        ):
            raise UserError(
                "teacher cache tensors in the checkpoint have the wrong shape or dtype; "
                "delete the checkpoint or start a new run folder"
            )
        if probs.dtype != self.dtype:
            raise UserError(
                f"teacher cache in the checkpoint holds {probs.dtype} probabilities but this run's cache holds "
                f"{self.dtype} (the supernet's dtype); resume with the supernet in {probs.dtype} or start a new run folder"
            )
        self.probs[0].copy_(probs)
        self.epochs[0].copy_(epochs)


class SearchObjective:
    """Loss of one batch: cross-entropy plus, once the warm-up is over, λ·KD (Eq. 2).

    ``cfg`` holds the search settings (``method``, ``warmup_epochs``, ``window``, ``sd_lambda``,
    ``temperature``, ``kd_direction``: a :class:`~sd_darts.search.SearchConfig`).  Called for the alpha step (validation half), the weight step (training half) and the
    extra forward passes of the second-order architect.  With ``record=True`` the batch's
    output probabilities (at temperature T, detached) are stored in the teacher cache from
    :func:`~sd_darts.search.distill.recording_start_epoch` on; the voting teacher of a sample only
    uses epochs before the current one, so reading and recording in the same pass is safe.
    """

    def __init__(self, model, cfg, cache):
        self.model = model
        self.cfg = cfg
        self.cache = cache
        self.epoch = 0
        self.kd_on = False
        self.recording = False
        self.kd_sum = None  # device accumulator of λ-free KD loss over weight steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        sd = self.cfg.method == "sd-darts"
        self.kd_on = sd and kd_active(epoch, self.cfg.warmup_epochs)
        self.recording = sd and recording_active(epoch, self.cfg.warmup_epochs, self.cfg.window)

    def __call__(self, inputs, targets, indices, params=None, record=False, track_kd=False):
        if params is None:
            logits = self.model(inputs)
        else:
            logits = torch.func.functional_call(self.model, params, (inputs,), strict=False)
        loss = F.cross_entropy(logits, targets)
        if self.kd_on:
            teacher, mask = self.cache.teacher(indices, self.epoch)
            kd = distillation_loss(
                logits, teacher, mask, temperature=self.cfg.temperature, direction=self.cfg.kd_direction
            )
            loss = loss + self.cfg.sd_lambda * kd
            if track_kd:
                self.kd_sum = self.kd_sum + kd.detach() * inputs.shape[0]
        if record and self.recording:
            self.cache.record(indices, F.softmax(logits.detach() / self.cfg.temperature, dim=-1), self.epoch)
        return loss, logits
