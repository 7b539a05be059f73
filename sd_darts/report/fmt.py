"""Number and table formatting of the report: fixed formats, so the same inputs give the same bytes."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from tabulate import tabulate

#: What the report writes where a stage did not run (never a number).
NOT_RUN = "not run"


def fmt(x: float | None, digits: int = 2) -> str:
    """Fixed-point text of ``x``; ``-0.00`` is written ``0.00``; None/NaN is ``-``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    text = f"{float(x):.{digits}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def fmt_signed(x: float | None, digits: int = 2) -> str:
    """:func:`fmt` with a ``+`` on positive values (differences to the paper)."""
    text = fmt(x, digits)
    return text if text in ("-",) or text.startswith("-") or float(text) == 0 else "+" + text


def mean_std(values: Iterable[float]) -> tuple[float, float | None, int]:
    """Mean, sample standard deviation (ddof=1; None for one value) and count."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, None, 1
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var), len(vals)


def fmt_pm(values: Iterable[float], digits: int = 2) -> str:
    """``mean ± std`` over seeds (only the mean for one value)."""
    m, s, _ = mean_std(values)
    return fmt(m, digits) if s is None else f"{fmt(m, digits)} ± {fmt(s, digits)}"


def paper_float(text: str) -> float | None:
    """The number a paper cell prints (``~5`` is 5); None for ``-``."""
    try:
        return float(str(text).strip().lstrip("~"))
    except ValueError:
        return None


def md_table(df: pd.DataFrame) -> str:
    """A pipe table of ``df``'s cells as they are (no number re-parsing)."""
    rows = df.values.tolist()
    return tabulate(rows, headers=list(df.columns), tablefmt="pipe", disable_numparse=True, stralign="left") + "\n"


def csv_text(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def seeds_text(runs) -> str:
    """The runs' seeds, sorted and comma-separated (``?`` when none is known)."""
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    return ",".join(str(s) for s in seeds) if seeds else "?"


def produced_by(stage: str, runs) -> str:
    """``<stage> <runs> (seeds …; device …; git …)`` for a group of runs."""
    if not runs:
        return NOT_RUN
    devices = ",".join(sorted({r.device for r in runs}))
    gits = ",".join(sorted({r.git for r in runs}))
    names = ",".join(r.name for r in runs)
    return f"{stage} {names} (seeds {seeds_text(runs)}; device {devices}; git {gits})"
