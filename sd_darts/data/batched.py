"""Images resident on a device and augmented a whole batch at a time (the fast search path).

The same batches, index for index, as :func:`~sd_darts.data.common.make_loader`, and the same
augmentation distributions as :func:`~sd_darts.data.common.train_transform`, but a few tensor ops
per batch instead of Python per image; random parameters come from a device generator seeded
from ``(seed, epoch, pass_index)`` only (docs/speed.md, "Data on the device").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import UserError
from .common import crop_padding, epoch_seed

#: Added to the order's seed to make the augmentation stream independent of the order stream.
AUGMENT_STREAM = 0x5D_DA_27


class DeviceImages:
    """A subset of a uint8 image set, resident on ``device``, with its normalisation.

    ``images`` (N, C, H, W) uint8 and ``labels`` (N,) hold the FULL set (the index space of the
    teacher cache); ``indices`` the subset's positions in it, in item order.  Build it from the
    ``IndexedImageDataset`` of the DataLoader path with :meth:`from_dataset`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
    ):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        device = torch.device(device)
        self.images = images.to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
        self.indices = torch.as_tensor(indices, dtype=torch.int64).reshape(-1).to(device)
        channels = images.shape[1]
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, channels, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, channels, 1, 1)
        self.device = device

    @classmethod
    def from_dataset(cls, dataset, device: torch.device | str = "cpu") -> DeviceImages:
        """From an :class:`~sd_darts.data.common.IndexedImageDataset` whose transform is
        :func:`~sd_darts.data.common.train_transform` or :func:`~sd_darts.data.common.eval_transform`
        (its ``Normalize`` gives the mean and std)."""
        from torchvision.transforms import v2

        norm = [t for t in getattr(dataset.transform, "transforms", []) if isinstance(t, v2.Normalize)]
        if len(norm) != 1:
            raise ValueError("the dataset's transform has no single Normalize step to take the mean and std from")
        return cls(dataset.images, dataset.labels, dataset.indices, norm[0].mean, norm[0].std, device)

    def __len__(self) -> int:
        return int(self.indices.numel())

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


def augment_params(n: int, size: int, padding: int, cutout: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The random parameters of ``n`` augmented images, drawn in one go on the generator's
    device: crop offsets (n, 2) uniform in ``0..2·padding``, flips (n,) bool with probability
    1/2, cutout centres (n, 2) uniform in ``0..size-1`` (only when ``cutout > 0``)."""
    dev = generator.device
    out = {
        "offset": torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=dev),
        "flip": torch.randint(0, 2, (n,), generator=generator, device=dev).bool(),
    }
    if cutout > 0:
        out["centre"] = torch.randint(0, size, (n, 2), generator=generator, device=dev)
    return out


def augment_batch(
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    params: dict[str, torch.Tensor] | None,
    padding: int,
    cutout: int = 0,
) -> torch.Tensor:
    """uint8 images (B, C, H, W) -> float32 normalised images, augmented with ``params``
    (:func:`augment_params`; None: normalise only).  One gather does crop and flip; no
    per-sample Python work."""
    B, C, H, W = images.shape
    if params is not None:
        p = padding
        padded = F.pad(images, (p, p, p, p))  # zeros
        dev = images.device
        ar_h = torch.arange(H, device=dev)
        ar_w = torch.arange(W, device=dev)
        rows = params["offset"][:, 0:1] + ar_h  # (B, H)
        left = params["offset"][:, 1:2]
        cols = torch.where(params["flip"].unsqueeze(1), left + (W - 1) - ar_w, left + ar_w)  # (B, W)
        b = torch.arange(B, device=dev).view(B, 1, 1, 1)
        c = torch.arange(C, device=dev).view(1, C, 1, 1)
        images = padded[b, c, rows.view(B, 1, H, 1), cols.view(B, 1, 1, W)]
    x = images.to(torch.float32).mul_(1.0 / 255)  # torchvision's ToDtype(float32, scale=True)
    x = x.sub(mean).div_(std)  # torchvision's Normalize
    if params is not None and cutout > 0:
        half = cutout // 2
        cy, cx = params["centre"][:, 0:1], params["centre"][:, 1:2]
        ar_h = torch.arange(H, device=x.device)
        ar_w = torch.arange(W, device=x.device)
        in_y = (ar_h >= cy - half) & (ar_h < cy + half)  # clipped at the borders by construction
        in_x = (ar_w >= cx - half) & (ar_w < cx + half)
        x = x.masked_fill((in_y.unsqueeze(2) & in_x.unsqueeze(1)).unsqueeze(1), 0.0)
    return x


class BatchedLoader:
    """Batches ``(x, y, index)`` of a :class:`DeviceImages` subset for ``(seed, epoch, pass)``.

    ``augment`` applies the training augmentation (plus Cutout of ``cutout`` pixels, 0 = none);
    otherwise images are only normalised.  ``x`` is float32 (B, C, H, W) on the device, ``index``
    the positions in the full set.  See the module docstring for order, distributions and the
    ragged last batch.
    """

    def __init__(
        self,
        data: DeviceImages,
        batch_size: int,
        seed: int,
        *,
        augment: bool = True,
        cutout: int = 0,
        drop_last: bool = True,
        shuffle: bool = True,
    ):
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        if cutout < 0:
            raise UserError(f"cutout length must be >= 0, got {cutout}")
        self.data, self.batch_size, self.seed = data, int(batch_size), int(seed)
        self.augment, self.cutout, self.drop_last, self.shuffle = augment, int(cutout), drop_last, shuffle
        self.padding = crop_padding(data.image_size)

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int, pass_index: int = 0) -> torch.Tensor:
        """Item positions of the pass (CPU): the permutation ``make_loader(shuffle=True)`` draws
        (its DataLoader takes one int64 from the generator for worker seeds first)."""
        n = len(self.data)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator()
        g.manual_seed(epoch_seed(self.seed, epoch, pass_index))
        torch.empty((), dtype=torch.int64).random_(generator=g)  # DataLoader's _base_seed draw
        return torch.randperm(n, generator=g)

    def batches(self, epoch: int, pass_index: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches of one pass."""
        data = self.data
        positions = self.order(epoch, pass_index).to(data.device)
        index = data.indices[positions]  # (n,) positions in the full set
        params = None
        if self.augment:
            g = torch.Generator(device=data.device)
            g.manual_seed(epoch_seed(self.seed + AUGMENT_STREAM, epoch, pass_index))
            params = augment_params(len(data), data.image_size, self.padding, self.cutout, g)
        for b in range(len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = index[sl]
            p = None if params is None else {k: v[sl] for k, v in params.items()}
            x = augment_batch(data.images[idx], data.mean, data.std, p, self.padding, self.cutout)
            yield x, data.labels[idx], idx

    def stream(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Endless batches for ``epoch``: pass 0, then pass 1, ... (the validation stream of the
        search, as :class:`~sd_darts.data.common.PersistentIterator`)."""
        if len(self) == 0:
            raise UserError(
                "the validation half is smaller than one batch; lower the batch size or raise the data portion"
            )
        p = 0
        while True:
            yield from self.batches(epoch, p)
            p += 1


__all__ = ["DeviceImages", "BatchedLoader", "augment_params", "augment_batch", "AUGMENT_STREAM"]
