"""Numbers quoted from the paper (Zhu et al., "Improving Differentiable Architecture Search via
Self-Distillation", Neural Networks 2023, arXiv:2302.05629), as package data.

One hand-transcribed CSV per table (Tables 1-4), every cell verbatim, so the report can quote it
marked "paper"; figures have no printed numbers, so :data:`FIGURES` holds only what the text
states.  Columns and conventions: docs/pipeline.md, "The paper's numbers".
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..errors import UserError

TABLES = {
    "table1": "table1_hyperparameters.csv",
    "table2": "table2_cifar10.csv",
    "table3": "table3_imagenet.csv",
    "table4": "table4_nb201.csv",
}

#: What the paper states about its figures that carry no printed numbers.
FIGURES = {
    "fig2": "dominant Hessian eigenvalue per epoch (0-50), y axis 0.0-0.4; SD-DARTS stays below DARTS",
    "fig5": "accuracy vs warm-up epochs ξ in {0, 5, ..., 40} with K = 1, y axis 96.2-97.4 %; best at ξ = 25",
    "fig6": "accuracy vs time window K in {1, ..., 6} with ξ = 25, y axis 97.1-97.5 %; best at K = 2",
}


def load_table(name: str) -> pd.DataFrame:
    """The transcribed table ``name`` (``table1`` ... ``table4``) as strings."""
    if name not in TABLES:
        raise UserError(f"unknown paper table {name!r}; choose one of {', '.join(sorted(TABLES))}")
    with resources.files(__name__).joinpath(TABLES[name]).open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def paper_row(name: str, row: str = "sd-darts") -> dict[str, str]:
    """The paper's own SD-DARTS row of table ``name`` as a dict of printed strings."""
    df = load_table(name)
    match = df[df["row"] == row]
    if len(match) != 1:
        raise ValueError(f"{TABLES[name]} has {len(match)} rows marked {row!r}, expected 1")
    return match.iloc[0].to_dict()


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


#: Table 1 of the paper: (symbol, search setting (``SearchConfig`` field), value, meaning).
TABLE1 = [(r["symbol"], r["setting"], _number(r["value"]), r["meaning"]) for _, r in load_table("table1").iterrows()]

#: Table 4's columns: (key in ``table4_nb201.csv`` and in an NB201 query's ``row``, label).
TABLE4_COLUMNS = [
    ("cifar10_valid", "CIFAR-10 valid"),
    ("cifar10_test", "CIFAR-10 test"),
    ("cifar100_valid", "CIFAR-100 valid"),
    ("cifar100_test", "CIFAR-100 test"),
    ("imagenet16_valid", "ImageNet16-120 valid"),
    ("imagenet16_test", "ImageNet16-120 test"),
]
