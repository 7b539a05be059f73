"""DVC stage ``curves``: the plotted curves of every search, NAS-Bench-201 search and CIFAR-10
training of the profile in one table per kind, ``metrics/<profile>/plots/<kind>.tsv``
(:func:`~sd_darts.experiment.execute.overlay_curves`), which ``dvc plots show`` overlays: one
plot per quantity with every run (DARTS vs SD-DARTS, every seed) in it.  A kind none of whose
runs has run (``pipeline.train_imagenet`` off, or a profile that runs only some stages, such as
``scripts/fmnist.sh``) has no table; a kind with some of its runs missing is an error."""

from __future__ import annotations

import sys

from ...utils import files
from ..execute import overlay_curves
from ..layout import Layout
from ..stage import stage


def overlay_tables(p) -> dict[str, str]:
    """``{kind: TSV text}`` of the profile's runs (read from ``metrics/<profile>/curves/``); kinds
    without runs, or none of whose runs has run, left out."""
    layout = Layout(p.profile)
    kinds = {
        "search": [(m, s, layout.search(m, s)) for m in p.pipeline.search_methods for s in p.seeds.search],
        "nb201_search": [("nb201", s, layout.nb201_search(s)) for s in p.seeds.nb201],
        "train_cifar": [
            (g, s, layout.train_cifar(g, s)) for g in p.pipeline.eval_genotypes for s in p.seeds.train_cifar
        ],
    }
    return {
        kind: overlay_curves(
            [
                (series, seed, r.name, files.read_text(layout.curves(r), what="plotted curves"))
                for series, seed, r in runs
            ]
        )
        for kind, runs in kinds.items()
        if any(layout.curves(r).exists() for _, _, r in runs)
    }


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    for kind, table in overlay_tables(p).items():
        files.write_text(layout.plots / f"{kind}.tsv", table)
        print(f"curves: {len(table.splitlines()) - 1} rows in {layout.plots / kind}.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
