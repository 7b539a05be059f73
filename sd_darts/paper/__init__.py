"""Numbers quoted from the paper (Zhu et al., "Improving Differentiable Architecture Search via
Self-Distillation", Neural Networks 2023, arXiv:2302.05629), as package data.

Each CSV is one table transcribed by hand from the paper; every cell is the text the paper
prints (``-`` where the paper prints ``-``, ``~5`` for its ``∼5``), so the report quotes it
verbatim and marks it as "paper".  The ``row`` column says what a row is: ``literature`` (a
baseline the paper quotes from other work), ``sd-darts`` (the paper's own SD-DARTS result,
which the pipeline's reproduced row is compared with) or ``sd-darts-best`` (Table 2's best
seed).  Mean and standard deviation are separate columns (``x`` and ``x_std``; empty when the
paper gives no ±).  Reference numbers ``[n]`` are the paper's bibliography entries.

==========================  =====================================================  =========
file                        paper table                                            page
==========================  =====================================================  =========
``table1_hyperparameters``  Table 1, the hyper-parameters of SD-DARTS: symbol,      17
``.csv``                    search setting (``SearchConfig`` field), value, meaning
``table2_cifar10.csv``      Table 2, CIFAR-10 test error (%), params (M),          18
                            search cost (GPU-days), search method
``table3_imagenet.csv``     Table 3, ImageNet top-1 / top-5 test error (%),        19
                            params (M), mult-adds (M), search cost, method
``table4_nb201.csv``        Table 4, NAS-Bench-201 accuracy (%) on CIFAR-10,       21
                            CIFAR-100, ImageNet16-120 (valid / test, mean ± std)
==========================  =====================================================  =========

The report renders Table 1 with the paper's values (:data:`TABLE1`) beside the settings of
the runs.  Figures 2, 5 and 6 are curves without printed numbers; :data:`FIGURES` records
only what the text states about them.
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
