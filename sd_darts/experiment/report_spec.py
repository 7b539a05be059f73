"""What the report of a params file shows: its :class:`~sd_darts.report.spec.ReportSpec`.

The runs the report expects are exactly the runs the pipeline makes for that params file
(the matrices of :mod:`~sd_darts.experiment.settings`), at the places the layout gives, relative
to the profile's metrics folder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..paper import TABLE1
from ..report.spec import ReportSpec, RunRef
from .layout import ABLATIONS, Layout
from .schema import Params
from .settings import ablation_values, search_settings


def report_spec(p: Params) -> ReportSpec:
    layout = Layout(p.profile)
    root = layout.metrics

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    runs = [
        RunRef("search", rel(layout.search(m, s).metrics), s, label=m)
        for m in p.pipeline.search_methods
        for s in p.seeds.search
    ]
    for genotype in p.pipeline.eval_genotypes:
        runs += [
            RunRef("train_cifar", rel(layout.train_cifar(genotype, s).metrics), s, label=genotype)
            for s in p.seeds.train_cifar
        ]
        runs += [
            RunRef("train_imagenet", rel(layout.train_imagenet(genotype, s).metrics), s, label=genotype)
            for s in p.seeds.train_imagenet
        ]
    runs += [RunRef("nb201_search", rel(layout.nb201_search(s).metrics), s) for s in p.seeds.nb201]
    for kind in ABLATIONS:
        for value in ablation_values(p, kind):
            runs += [
                RunRef(f"ablation_{kind}", rel(layout.ablation(kind, value, s).metrics), s, value=value)
                for s in p.seeds.ablation
            ]
    search = search_settings(p, p.pipeline.select_method, p.seeds.search[0])  # the values the searches run with
    table1 = {key: getattr(search, key) for _, key, _, _ in TABLE1}
    try:
        return ReportSpec(
            profile=p.profile,
            title=p.report.title,
            table1=table1,
            runs=tuple(runs),
            genotype_dir=rel(layout.genotype),
            nb201_query=rel(layout.nb201_query),
            imagenet_status=rel(layout.imagenet_status),
            other_outputs=tuple(rel(layout.select_retrain(s).metrics) for s in p.seeds.search),
            dataset=p.data.dataset,
            image_size=search.image_size,
            ablation_fixed={
                "window_in_warmup_sweep": p.ablation.window_for_warmup_sweep,
                "warmup_in_window_sweep": p.ablation.warmup_epochs_for_window_sweep,
            },
        )
    except ValueError as exc:
        raise UserError(f"{p.path}: {exc}") from None
