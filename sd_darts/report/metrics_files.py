"""Readers of the report's input files that check their shape: one line naming the file and the problem.

Every input goes through one of them before the report writes anything (docs/report.md).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..genotypes import genotype_from_dict
from ..paper import TABLE4_COLUMNS
from ..utils import files

WHAT = "metrics file"
_HINT = "regenerate it with the pipeline or remove it"


def bad(path: Path, problem: str) -> UserError:
    return UserError(f"{WHAT} {path}: {problem}; {_HINT}")


def read_json(path: Path) -> Any:
    """The JSON value in ``path`` (size, encoding and nesting bounded by :mod:`sd_darts.utils.files`)."""
    return files.read_json(path, WHAT)


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file (a run's ``config.yaml``)."""
    data = files.read_yaml(path, WHAT)
    if not isinstance(data, dict):
        raise bad(path, f"must hold a mapping of settings, got {type(data).__name__}")
    return data


def read_tsv(path: Path) -> pd.DataFrame:
    """A run's per-epoch curves: a header and one row per epoch, every cell a number (or empty).

    ``epoch`` is required, integer, non-negative and unique; the rows are sorted by it.
    """
    text = files.read_text(path, WHAT)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise bad(path, "has no header line")
    header = lines[0].split("\t")
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise bad(path, "has empty or repeated column names")
    if "epoch" not in header:
        raise bad(path, "has no 'epoch' column")
    for i, line in enumerate(lines[1:], start=2):
        n = len(line.split("\t"))
        if n != len(header):
            raise bad(path, f"line {i} has {n} fields, the header has {len(header)}")
    try:
        df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise bad(path, f"is not a readable TSV ({str(exc).splitlines()[0]})") from None
    out = {}
    for col in header:
        values = []
        for i, cell in enumerate(df[col], start=2):
            try:
                v = float(cell) if cell.strip() else math.nan
            except ValueError:
                raise bad(path, f"line {i}, column {col!r} is not a number: {cell[:40]!r}") from None
            if math.isinf(v):
                raise bad(path, f"line {i}, column {col!r} is not finite: {cell[:40]!r}")
            values.append(v)
        out[col] = values
    epochs = out["epoch"]
    if any(math.isnan(e) or e != int(e) or e < 0 for e in epochs) or len(set(epochs)) != len(epochs):
        raise bad(path, "'epoch' must hold distinct non-negative integers")
    frame = pd.DataFrame(out, columns=header)
    frame["epoch"] = frame["epoch"].astype(int)
    return frame.sort_values("epoch", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def _is(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "scalar":
        return value is None or isinstance(value, (str, bool)) or _is(value, "num")
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    raise ValueError(kind)


_KIND_TEXT = {
    "str": "a string",
    "int": "an integer",
    "num": "a finite number",
    "bool": "true or false",
    "scalar": "a string, number, boolean or null",
    "dict": "an object",
    "list": "a list",
}


def check(
    path: Path, data: Any, required: dict[str, str], optional: dict[str, str] | None = None, where: str = ""
) -> dict:
    """``data`` (the file's JSON, or the part of it at ``where``) must be an object with the
    ``required`` keys, and every present key of ``required`` / ``optional`` of the given kind
    (``str``, ``int``, ``num``, ``bool``, ``scalar``, ``dict``, ``list``; ``?`` appended: null
    allowed)."""
    if not isinstance(data, dict):
        what = f"{where!r} must be" if where else "must hold"
        raise bad(path, f"{what} a JSON object, got {type(data).__name__}")
    prefix = f"{where}." if where else ""
    for key, kind in {**required, **(optional or {})}.items():
        if key not in data:
            if key in required:
                raise bad(path, f"has no {prefix + key!r}")
            continue
        value = data[key]
        if kind.endswith("?") and value is None:
            continue
        base = kind.rstrip("?")
        if not _is(value, base):
            raise bad(path, f"{prefix + key!r} must be {_KIND_TEXT[base]}, got {_show(value)}")
    return data


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


#: Keys of ``provenance.json`` the report shows, besides the required ``profile``.
ENVIRONMENT_KEYS = ("python", "torch", "cuda", "cudnn", "gpu", "image_id")


def provenance(path: Path) -> dict:
    data = check(
        path,
        read_json(path),
        {"profile": "str"},
        {
            "device": "str?",
            "git_rev": "str?",
            "git_dirty": "bool?",
            "command": "str?",
            **{k: "scalar" for k in ENVIRONMENT_KEYS},
        },
    )
    if not data["profile"].strip():
        raise bad(path, "'profile' is empty")
    return data


def search_summary(path: Path) -> dict:
    optional = {"seed": "int", "device": "str?", "supernet_valid_acc": "num", "num_skip_connect": "int"}
    return check(path, read_json(path), {"method": "str"}, optional)


def train_metrics(path: Path, top5: bool) -> dict:
    required = {"test_error": "num", "params_m": "num"}
    optional = {"seed": "int", "device": "str?", "top5_error": "num"}
    if top5:
        required["top5_error"] = optional.pop("top5_error")
    return check(path, read_json(path), required, optional)


def point(path: Path) -> dict:
    return check(path, read_json(path), {"parameter": "str", "value": "num", "seed": "int"})


def stage_status(path: Path) -> dict:
    """A stage's ``status.json`` (``{"profile", "status", "reason"}``)."""
    return check(path, read_json(path), {"profile": "str", "status": "str"}, {"reason": "str?"})


def nb201_query(path: Path) -> dict:
    data = check(
        path,
        read_json(path),
        {"profile": "str", "status": "str"},
        {"reason": "str?", "benchmark": "str", "row": "dict", "per_seed": "list"},
    )
    if data["status"] not in ("ok", "not run"):
        raise bad(path, f"'status' must be 'ok' or 'not run', got {_show(data['status'])}")
    if data["status"] == "ok":
        check(path, data, {"benchmark": "str", "row": "dict"})
        for key, _ in TABLE4_COLUMNS:
            check(path, data["row"], {key: "dict"}, where="row")
            check(path, data["row"][key], {"mean": "num", "std": "num"}, where=f"row.{key}")
        for i, entry in enumerate(data.get("per_seed") or []):
            columns = {key: "num" for key, _ in TABLE4_COLUMNS}
            check(path, entry, columns, {"seed": "int", "index": "int", "arch": "str"}, where=f"per_seed[{i}]")
    return data


def selection(path: Path) -> dict:
    data = check(path, read_json(path), {"profile": "str", "rule": "str", "selected": "str"}, {"candidates": "list"})
    for i, cand in enumerate(data.get("candidates") or []):
        if not isinstance(cand, dict) or not all(_is(v, "scalar") for v in cand.values()):
            raise bad(path, f"candidate {i} must be an object of strings and numbers")
    return data


#: The genotypes ``stats.json`` counts (the selected one and the paper's), and its networks.
STATS_GENOTYPES = ("selected", "paper")
STATS_NETS = ("cifar", "imagenet")


def genotype_stats(path: Path) -> dict:
    """``{"selected" | "paper": {"cifar" | "imagenet": {"params_m", "mult_adds_m", ...}}, "counter"}``."""
    data = check(path, read_json(path), {g: "dict" for g in STATS_GENOTYPES}, {"counter": "str"})
    for key in STATS_GENOTYPES:
        check(path, data[key], {net: "dict" for net in STATS_NETS}, where=key)
        for net in STATS_NETS:
            sizes = {"params_m": "num", "mult_adds_m": "num"}
            check(path, data[key][net], sizes, {"init_channels": "int", "layers": "int"}, where=f"{key}.{net}")
    return data


def genotype(path: Path) -> dict:
    data = read_json(path)
    try:
        genotype_from_dict(data, source=str(path))
    except UserError as exc:
        raise UserError(f"{exc}; {_HINT}") from None
    return data
