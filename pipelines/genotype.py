"""DVC stage ``genotype``: the genotype to evaluate, chosen from the searches.

Selection rule (stated in params.yaml, ``pipeline.select_method`` / ``select_criterion``):
among the searches of ``select_method`` (SD-DARTS), take the one whose supernet has the
highest validation accuracy (on the alpha half of the training set) after the last epoch
(``final_valid_acc``) or at its best epoch (``best_valid_acc``); ties go to the lower seed.
This is DARTS's protocol without its extra step of briefly training every candidate: the
test set is never used to select.  Also written: the paper's Fig. 4 genotype
(``paper.json``) and the parameter / mult-add counts of both (``stats.json``).
"""

from __future__ import annotations

import _common


@_common.entry_point
def main() -> int:
    p = _common.params()
    pipe = p.raw["pipeline"]
    from sd_darts import files
    from sd_darts.genotypes import SD_DARTS, genotype_from_dict, genotype_to_dict
    from sd_darts.stats import genotype_stats

    method, criterion = pipe["select_method"], pipe["select_criterion"]
    candidates = []
    for seed in p.raw["seeds"]["search"]:
        run = _common.METRICS / "search" / f"{method}-s{seed}"
        summary = files.read_json(run / "summary.json", what="search summary")
        candidates.append(
            {"run": run.name, "seed": seed, criterion: float(summary[criterion]), "genotype": summary["genotype"]}
        )
    best = sorted(candidates, key=lambda c: (-c[criterion], c["seed"]))[0]
    out = _common.METRICS / "genotype"
    selected = genotype_from_dict(best["genotype"], source=best["run"])
    files.write_json(out / "selected.json", genotype_to_dict(selected))
    files.write_json(out / "paper.json", genotype_to_dict(SD_DARTS))
    files.write_json(
        out / "selection.json",
        {
            "rule": (
                f"the {method} search with the highest supernet validation accuracy ({criterion}); "
                "ties go to the lower seed; the test set is not used"
            ),
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
    files.write_json(out / "stats.json", stats)
    print(f"genotype: selected {best['run']} ({criterion} {best[criterion]:.2f}%)")
    return 0


if __name__ == "__main__":
    main()
