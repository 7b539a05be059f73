"""DVC stage ``data``: check the whole params file (every run's settings), then fetch and
check the dataset the runs read, so a bad setting or a damaged download fails before any
training (docs/pipeline.md, "Data").
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from ...data import prepare_cifar10
from ...utils import files
from ..settings import check_all
from ..stage import params_path, stage


@stage()
def main(p, args) -> int:
    check_all(params_path())
    root = Path(p.data.root)
    manifest: dict = {"dataset": p.data.dataset}
    if p.data.dataset == "cifar10":
        from torchvision.datasets.utils import calculate_md5

        folder = prepare_cifar10(root, download=p.data.download)
        manifest["folder"] = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
        manifest["md5"] = {f.name: calculate_md5(str(f)) for f in sorted(folder.iterdir()) if f.is_file()}
    elif p.data.dataset == "fashion-mnist":
        from ...data.fashion_mnist import SHA256, prepare_fashion_mnist

        expected = dict(zip(SHA256, p.data.fashion_mnist_sha256, strict=True))
        raw = prepare_fashion_mnist(root, p.data.fashion_mnist_source, expected)
        manifest.update(folder=raw.relative_to(root).as_posix(), source=p.data.fashion_mnist_source, sha256=expected)
    else:
        import sklearn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        h = hashlib.md5(bunch.images.astype("float64").tobytes())
        h.update(bunch.target.astype("int64").tobytes())
        manifest.update(
            source="sklearn.datasets.load_digits",
            scikit_learn=sklearn.__version__,
            images=int(bunch.images.shape[0]),
            md5=h.hexdigest(),
        )
    files.write_json(root / "manifest.json", manifest)
    print(f"data: {p.data.dataset} ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
