"""DVC stage ``train_imagenet``: the ImageNet evaluation (Table 3), behind an explicit switch.

With ``pipeline.train_imagenet: false`` (the default: ImageNet is the user's to provide, and the
run takes about 3 GPU-days) the stage only records "not run" and why, so it never blocks
``dvc repro`` of everything else.
"""

from __future__ import annotations

import shutil
import sys

from ...data.checksums import listing_sha256, verify
from ...utils import files
from ..execute import not_run, train_once
from ..layout import Layout
from ..settings import train_imagenet_settings
from ..stage import stage


@stage()
def main(p, args) -> int:
    layout = Layout(p.profile)
    folder = layout.metrics / "train_imagenet"
    if not p.pipeline.train_imagenet:
        for stale in (folder, layout.headline / "train_imagenet"):
            if stale.exists():
                shutil.rmtree(stale)
        # the stage's metrics output holds a file (git keeps no empty folder: a clone would rerun the stage)
        files.write_json(layout.headline / "train_imagenet" / "not_run.json", {"finished_runs": 0})
        reason = "pipeline.train_imagenet is false; set it to true with ImageNet in data.imagenet_root"
        # the persisted run folder is a stage output: it must exist, and says why it is empty
        files.write_json(layout.runs / "train_imagenet" / "status.json", {"status": "not run", "reason": reason})
        not_run(p, None, layout.imagenet_status, reason)
        print(f"train_imagenet: not run ({reason})")
        return 0
    settings = [train_imagenet_settings(p, g, s) for g in p.pipeline.eval_genotypes for s in p.seeds.train_imagenet]
    verify(
        listing_sha256(p.data.imagenet_root),
        p.data.imagenet_listing_sha256,
        f"ImageNet folder {p.data.imagenet_root}",
        "data.imagenet_listing_sha256",
    )
    done = []
    for cfg in settings:
        genotype = "selected" if cfg.genotype == str(layout.genotype_file("selected")) else "paper"
        paths = layout.train_imagenet(genotype, cfg.seed)
        metrics = train_once(
            p, cfg, paths, "train_imagenet", "train-imagenet", p.pipeline.imagenet_nproc, p.pipeline.imagenet_nodes
        )
        done.append(paths.name)
        print(f"train_imagenet {paths.name}: top-1 error {metrics['test_error']:.2f}%")
    layout.imagenet_status.unlink(missing_ok=True)
    (layout.runs / "train_imagenet" / "status.json").unlink(missing_ok=True)
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name not in done:
            shutil.rmtree(child)
    return 0


if __name__ == "__main__":
    sys.exit(main())
