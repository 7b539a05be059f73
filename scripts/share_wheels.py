"""Hard-link into a new venv the installed wheels that are the same files for every Python.

scripts/python_versions.sh calls it before installing torch into .venv-py3.N: torch's CUDA
libraries (the nvidia-* wheels, tagged py3-none-manylinux_*) are 3.2 GB that .venv already holds,
so linking them (no copy, no download) keeps a second Python's venv at about 2.5 GB instead of 6,
and pip, finding them installed at the versions torch asks for, leaves them alone.  A hard link,
not a symlink: pip uninstalling them from one venv cannot delete the other's files.

    python scripts/share_wheels.py SRC_SITE_PACKAGES DST_SITE_PACKAGES
"""

import importlib.metadata
import os
import sys


def python_agnostic(dist: importlib.metadata.Distribution) -> bool:
    """A binary wheel whose files do not depend on the Python version (py3-none-<platform>)."""
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    return bool(tags) and all(t.startswith("py3-none-") and not t.endswith("-any") for t in tags)


def share(src: str, dst: str) -> tuple[int, int]:
    """Link every such distribution of src into dst; returns (distributions, bytes) linked."""
    if os.stat(src).st_dev != os.stat(dst).st_dev:
        return 0, 0  # hard links cannot cross file systems: pip downloads them instead
    count = size = 0
    for dist in importlib.metadata.distributions(path=[src]):
        if not python_agnostic(dist) or not dist.files:
            continue
        name = dist.metadata["Name"]
        if any(importlib.metadata.distributions(path=[dst], name=name)):
            continue  # already there (a rerun)
        paths = [str(f) for f in dist.files if not str(f).startswith("..") and "__pycache__" not in str(f)]
        # The files first, the .dist-info last: a failure part-way leaves no half-installed distribution.
        paths.sort(key=lambda p: ".dist-info/" in p)
        for p in paths:
            s, d = os.path.join(src, p), os.path.join(dst, p)
            if not os.path.exists(s):
                continue
            os.makedirs(os.path.dirname(d), exist_ok=True)
            if not os.path.exists(d):
                os.link(s, d)
            size += os.path.getsize(s)
        count += 1
    return count, size


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/share_wheels.py SRC_SITE_PACKAGES DST_SITE_PACKAGES")
    n, b = share(sys.argv[1], sys.argv[2])
    print(f"share_wheels: {n} Python-independent wheels ({b / 2**30:.1f} GiB) hard-linked from {sys.argv[1]}")
