"""``sd-darts checksum``: the SHA-256 that pins a data file or the listing of a data folder
(``data.nb201_benchmark_sha256`` / ``data.imagenet_listing_sha256`` /
``data.fashion_mnist_sha256`` in params.yaml)."""

from __future__ import annotations

NAME = "checksum"
HELP = "print the sha256 of a data file (NAS-Bench-201) or of a folder's listing (ImageNet) for params.yaml"


def register(parser) -> None:
    parser.add_argument("path", help="a file (its content is hashed) or a folder (its listing is hashed)")
    parser.add_argument(
        "--gunzip", action="store_true", help="hash a .gz file's decompressed content (data.fashion_mnist_sha256)"
    )


def run(args) -> int:
    from pathlib import Path

    from ..data.checksums import listing_sha256, sha256_file

    path = Path(args.path)
    if args.gunzip:
        from ..data.checksums import gunzip_sha256

        print(f"{gunzip_sha256(path)}  {path} (decompressed)")
    elif path.is_dir():
        print(f"{listing_sha256(path)}  {path}/ (listing: relative paths and sizes)")
    else:
        print(f"{sha256_file(path, 'data file')}  {path}")
    return 0
