"""Reading the NAS-Bench-201 benchmark file safely for :mod:`sd_darts.spaces.nb201.benchmark`:
``torch.load(weights_only=True)`` (a tampered file cannot run code) with only the numpy globals
the benchmark needs allowed, a refusal naming what the file asked for (torch's static scan),
and a check of the file's layout before the API is built from it.  docs/nb201.md,
"Benchmark query".
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...utils.files import open_regular

#: Official file names of the benchmark (newest first); the user downloads one of them.
BENCHMARK_FILES: tuple[str, ...] = ("NAS-Bench-201-v1_1-096897.pth", "NAS-Bench-201-v1_0-e61699.pth")
#: Where the file comes from.
BENCHMARK_SOURCE = "https://github.com/D-X-Y/NAS-Bench-201 (README: 'NAS-Bench-201-v1_1-096897.pth', Google Drive)"


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def allowed_globals() -> list[Any]:
    """Globals allowed in the benchmark pickle beyond torch's weights_only defaults.

    NAS-Bench-201 stores some numbers (e.g. parameter counts) as numpy scalars, pickled as
    ``numpy.core.multiarray.scalar(dtype, bytes)`` (``numpy._core`` under numpy 2) with a
    ``numpy.dtype`` whose state is restored on the dtype's concrete class (numpy >= 1.25:
    ``numpy.dtypes.Float64DType`` ...).  These only rebuild numbers; only numeric and boolean
    dtype classes are allowed.  Everything else is refused.
    """
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list[Any] = [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    ):
        cls = type(np.dtype(name))
        if cls is not np.dtype and cls not in allowed:
            allowed.append(cls)
    return allowed


def _legacy_globals(fh) -> set[tuple[str, str]]:
    """``(module, name)`` of every GLOBAL / INST opcode of a legacy-format ``torch.save`` file: its
    magic-number, protocol and system-info pickles, then the object's (raw storages follow)."""
    found = set()
    for _ in range(4):
        for op, arg, _pos in pickletools.genops(fh):
            if op.name in ("GLOBAL", "INST"):
                module, name = arg.split(" ", 1)
                found.add((module, name))
    return found


def _globals_archive(names: Iterable[tuple[str, str]]) -> io.BytesIO:
    """A zip-format checkpoint whose pickle only references ``names``: torch's static scan reads
    the zip format only."""
    body = b"".join(b"c" + f"{module}\n{name}\n".encode() for module, name in sorted(names))
    pkl = b"\x80\x02](" + body + b"e."  # PROTO 2, EMPTY_LIST, MARK, GLOBAL..., APPENDS, STOP
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
    buf.seek(0)
    return buf


def _unsafe_globals(path: Path) -> list[str]:
    """The Python globals a refused benchmark pickle asks for beyond the allowed ones, found by
    torch's static scan (``get_unsafe_globals_in_checkpoint``), never from torch's message text.

    Run only after a refusal: the scan reads the whole pickle once more.  A legacy-format file's
    globals are gathered with :mod:`pickletools` and handed to the same scan.  [] when the file
    cannot even be scanned (the refusal message then names none).
    """
    import torch

    try:
        with (
            open_regular(path, "NAS-Bench-201 benchmark file") as fh,
            torch.serialization.safe_globals(allowed_globals()),
        ):
            zip_format = fh.read(4) == b"PK\x03\x04"  # torch's own test for the zip format
            fh.seek(0)
            scanned = fh if zip_format else _globals_archive(_legacy_globals(fh))
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(scanned))
    except Exception:  # only the message depends on it: a file that cannot be scanned names nothing
        return []


def torch_load_safely(path: Path) -> Any:
    """The object in the benchmark file at ``path``, loaded with ``weights_only=True`` and
    :func:`allowed_globals`; a refused, unreadable or too large file raises a one-line
    :class:`UserError`."""
    import torch

    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is None:
        raise UserError(
            f"reading the NAS-Bench-201 file safely needs torch >= 2.5 (torch.serialization.safe_globals), "
            f"this is torch {torch.__version__}; upgrade torch"
        )
    try:
        with open_regular(path, "NAS-Bench-201 benchmark file") as fh, safe(allowed_globals()):
            return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        bad = _unsafe_globals(path)
        if bad:
            raise UserError(
                f"benchmark file {path} asks to load the Python object '{', '.join(bad)}', which reading NAS-Bench-201 results "
                "does not need: the file is not the official benchmark or was tampered with; it was not loaded, "
                f"download it again from {BENCHMARK_SOURCE}"
            ) from None
        raise UserError(
            f"benchmark file {path} is not a NAS-Bench-201 file or was tampered with: torch's weights_only loader "
            f"refused it and it was not loaded; download it again from {BENCHMARK_SOURCE}"
        ) from None
    except MemoryError:
        raise UserError(
            f"not enough memory to load benchmark file {path} ({path.stat().st_size / 2**30:.1f} GiB on disk); "
            "the NAS-Bench-201 API keeps the whole benchmark in memory: run on a machine with more RAM"
        ) from None
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"benchmark file {path} is not a readable NAS-Bench-201 file ({first_line(exc)}); "
            f"it may be truncated or not the benchmark: download it again from {BENCHMARK_SOURCE}"
        ) from None


def check_layout(data: Any, path: Path) -> None:
    """Check the top-level layout of a NAS-Bench-201 file before building the API from it."""

    def bad(problem: str) -> UserError:
        return UserError(
            f"benchmark file {path} is not a NAS-Bench-201 benchmark file ({problem}); "
            f"point --benchmark to {BENCHMARK_FILES[0]} from {BENCHMARK_SOURCE}"
        )

    if not isinstance(data, dict):
        raise bad(f"it holds a {type(data).__name__}, not a dictionary")
    missing = [k for k in ("meta_archs", "arch2infos", "evaluated_indexes") if k not in data]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    archs, infos = data["meta_archs"], data["arch2infos"]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise bad("'meta_archs' is not a list of architecture strings")
    if not isinstance(infos, dict):
        raise bad("'arch2infos' is not a dictionary")
    evaluated = data["evaluated_indexes"]
    if not isinstance(evaluated, (list, set, tuple)) or not all(isinstance(i, int) for i in evaluated):
        raise bad("'evaluated_indexes' is not a collection of integer indexes")
    missing_infos = sorted(set(evaluated) - set(infos))[:3]
    if missing_infos:
        raise bad(f"evaluated architecture(s) {missing_infos} have no entry in 'arch2infos'")
    for idx, info in infos.items():
        if not isinstance(idx, int) or not 0 <= idx < len(archs):
            raise bad(f"architecture index {idx!r} is out of range")
        if not isinstance(info, dict) or not {"less", "full"} <= set(info):
            raise bad(f"architecture {idx} lacks its 'less' (12-epoch) and 'full' (200-epoch) results")
        for hp_key in ("less", "full"):
            state = info[hp_key]
            if not isinstance(state, dict) or not {"all_results", "dataset_seed", "arch_str"} <= set(state):
                raise bad(f"architecture {idx} has malformed '{hp_key}' results")
            if not isinstance(state["all_results"], dict) or not isinstance(state["dataset_seed"], dict):
                raise bad(f"architecture {idx}: '{hp_key}' results are not dictionaries")
            if state["arch_str"] != archs[idx]:
                raise bad(f"architecture {idx} is stored as {state['arch_str']!r} but listed as {archs[idx]!r}")


__all__ = [
    "BENCHMARK_FILES",
    "BENCHMARK_SOURCE",
    "allowed_globals",
    "check_layout",
    "first_line",
    "torch_load_safely",
]
