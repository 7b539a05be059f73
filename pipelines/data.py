"""DVC stage ``data``: the search and evaluation dataset, fetched and verified.

CIFAR-10 (paper): ``sd_darts.data.prepare_cifar10`` downloads it into ``data.root`` when
``data.download`` is true and checks every file against torchvision's md5 table; the folder is
the stage's output, so ``dvc.lock`` pins its content hash.  digits (smoke profile): bundled
with scikit-learn, nothing to download; the manifest records its checksum.  ImageNet and the
NAS-Bench-201 file are user-provided paths (docs/pipeline.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import _common


@_common.entry_point
def main() -> int:
    p = _common.params()
    data = p.raw["data"]
    root = Path(data["root"])
    manifest: dict = {"dataset": data["dataset"]}
    if data["dataset"] == "cifar10":
        from sd_darts.data import prepare_cifar10

        folder = prepare_cifar10(root, download=data["download"])
        manifest["folder"] = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
        manifest["md5"] = {f.name: _common.md5_file(f) for f in sorted(folder.iterdir()) if f.is_file()}
    else:
        import sklearn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        h = hashlib.md5(bunch.images.astype("float64").tobytes())
        h.update(bunch.target.astype("int64").tobytes())
        root.mkdir(parents=True, exist_ok=True)
        manifest.update(
            {
                "source": "sklearn.datasets.load_digits",
                "scikit_learn": sklearn.__version__,
                "images": int(bunch.images.shape[0]),
                "md5": h.hexdigest(),
            }
        )
    from sd_darts.files import write_text

    write_text(root / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"data: {data['dataset']} ready in {root}")
    return 0


if __name__ == "__main__":
    main()
