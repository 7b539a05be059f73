"""DVC stage ``genotype``: the genotype to evaluate, chosen from the searches.

Rule (``pipeline.select_method`` / ``select_criterion``): among the searches of
``select_method``, the one whose final supernet has the highest accuracy in eval mode on every
image of the alpha half (``supernet_valid_acc``), or -- DARTS's own protocol (§3.2) -- whose
genotype, trained briefly from scratch, has the lowest error on held-out training images
(``retrain``, stage ``select_retrain``); ties go to the lower seed.  The test set is never used
to select.  Also written: the paper's Fig. 4 genotype (``paper.json``) and the parameter and
mult-add counts of both (``stats.json``).
"""

from __future__ import annotations

from ... import files
from ...genotypes import SD_DARTS, genotype_from_dict, genotype_to_dict
from ...stats import genotype_stats
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


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    method, criterion = p.pipeline.select_method, p.pipeline.select_criterion
    candidates = []
    for seed in p.seeds.search:
        run = layout.search(method, seed)
        summary = files.read_json(run.metrics / "summary.json", what="search summary")
        candidates.append(
            {"run": run.name, "seed": seed, criterion: score(p, layout, seed), "genotype": summary["genotype"]}
        )
    best = sorted(candidates, key=lambda c: (-c[criterion], c["seed"]))[0]
    selected = genotype_from_dict(best["genotype"], source=best["run"])
    files.write_json(layout.genotype_file("selected"), genotype_to_dict(selected))
    files.write_json(layout.genotype_file("paper"), genotype_to_dict(SD_DARTS))
    files.write_json(
        layout.genotype / "selection.json",
        {
            "profile": p.profile,
            "rule": f"the {method} search with the best {criterion}: {RULES[criterion]}; ties go to the lower seed; the test set is not used",
            "selected": best["run"],
            "candidates": [{k: v for k, v in c.items() if k != "genotype"} for c in candidates],
        },
    )
    stats = {}
    for key, genotype, name in (("selected", selected, None), ("paper", SD_DARTS, "SD_DARTS")):
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
