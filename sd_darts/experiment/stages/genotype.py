"""DVC stage ``genotype``: the genotype to evaluate, chosen from the searches.

By ``pipeline.select_criterion`` (supernet accuracy on the alpha half, or DARTS's short retrain),
never by the test set (docs/pipeline.md, "Genotype selection"); also writes the paper's Fig. 4
genotype, the DARTS baseline's and the parameter and mult-add counts of each.
"""

from __future__ import annotations

import sys

from ...evaluation.stats import genotype_stats
from ...genotypes import SD_DARTS, genotype_from_dict, genotype_to_dict
from ...utils import files
from .. import headline
from ..layout import Layout
from ..stage import stage

RULES = {
    "supernet_valid_acc": "the final supernet's accuracy in eval mode on every image of the alpha half (higher is better)",
    "retrain": "the held-out accuracy of the genotype trained from scratch for a short schedule (DARTS §3.2; higher is better)",
}


def score(p, layout: Layout, seed: int) -> float:
    """The selection score of the search of ``select_method`` with ``seed`` (higher is better)."""
    if p.pipeline.select_criterion == "retrain":
        metrics = files.read_json(
            layout.select_retrain(seed).metrics / "metrics.json", what="selection training metrics"
        )
        return 100.0 - float(metrics["test_error"])
    summary = files.read_json(
        layout.search(p.pipeline.select_method, seed).metrics / "summary.json", what="search summary"
    )
    return float(summary["supernet_valid_acc"])


def best_search(p, layout: Layout, method: str, criterion: str) -> tuple[dict, list[dict]]:
    """The best search of ``method`` by ``criterion`` (ties: the lower seed) and every candidate."""
    candidates = []
    for seed in p.seeds.search:
        run = layout.search(method, seed)
        summary = files.read_json(run.metrics / "summary.json", what="search summary")
        # score() reads select_method's runs (and the retrain criterion's trainings): only for that method
        value = score(p, layout, seed) if method == p.pipeline.select_method else float(summary[criterion])
        candidates.append({"run": run.name, "seed": seed, criterion: value, "genotype": summary["genotype"]})
    return sorted(candidates, key=lambda c: (-c[criterion], c["seed"]))[0], candidates


def _listed(candidates: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "genotype"} for c in candidates]


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    method, criterion = p.pipeline.select_method, p.pipeline.select_criterion
    best, candidates = best_search(p, layout, method, criterion)
    selected = genotype_from_dict(best["genotype"], source=best["run"])
    genotypes = {"selected": (selected, None), "paper": (SD_DARTS, "SD_DARTS")}
    selection = {
        "profile": p.profile,
        "rule": f"the {method} search with the best {criterion}: {RULES[criterion]}; ties go to the lower seed; the test set is not used",
        "selected": best["run"],
        "candidates": _listed(candidates),
    }
    if "darts" in p.pipeline.search_methods:
        # the baseline by the supernet criterion: the retrain criterion's short trainings exist for select_method only
        base, base_candidates = (
            (best, candidates) if method == "darts" else best_search(p, layout, "darts", "supernet_valid_acc")
        )
        genotypes["darts"] = (genotype_from_dict(base["genotype"], source=base["run"]), None)
        selection["darts_baseline"] = base["run"]
        selection["darts_candidates"] = _listed(base_candidates)
    for key, (genotype, _) in genotypes.items():
        files.write_json(layout.genotype_file(key), genotype_to_dict(genotype))
    files.write_json(layout.genotype / "selection.json", selection)
    stats = {}
    for key, (genotype, name) in genotypes.items():
        st = genotype_stats(genotype, name)
        stats[key] = {
            net: {k: st[net][k] for k in ("params_m", "mult_adds_m", "init_channels", "layers", "image_size")}
            for net in ("cifar", "imagenet")
        }
        stats[key]["counter"] = st["counter"]
    files.write_json(layout.genotype / "stats.json", stats)
    files.write_json(layout.headline / "genotype.json", headline.genotype_headline(stats))
    print(f"genotype: selected {best['run']} ({criterion} {best[criterion]:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
