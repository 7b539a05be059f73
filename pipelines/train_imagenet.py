"""DVC stage ``train_imagenet``: the ImageNet evaluation (Table 3), behind an explicit switch.

With ``pipeline.train_imagenet: false`` (the default: ImageNet is the user's to provide, and
the run takes about 3 GPU-days on 3 GPUs) the stage only records "not run" and why, so it
never blocks ``dvc repro`` of everything else.  With ``true`` it trains every genotype of
``pipeline.eval_genotypes`` for every ``seeds.train_imagenet`` on ``data.imagenet_root``, one
run after the other (each resumable); for several GPUs run the equivalent ``torchrun ...
sd-darts train-imagenet`` command recorded in the provenance.

``pipeline.imagenet_nproc`` > 1 trains each run data-parallel on that many processes (one per
GPU) through ``torchrun --standalone`` (DDP, ``sd_darts.train``); the global batch size stays
``train_imagenet.batch_size``.
"""

from __future__ import annotations

import shutil

import _common


@_common.entry_point
def main() -> int:
    p = _common.params()
    from sd_darts import files
    from sd_darts.commands.check_params import train_imagenet_config

    out = _common.METRICS / "train_imagenet"
    if not p.raw["pipeline"]["train_imagenet"]:
        if out.exists():
            shutil.rmtree(out)
        reason = "pipeline.train_imagenet is false; set it to true with ImageNet in data.imagenet_root"
        files.write_json(out / "status.json", {"status": "not run", "reason": reason})
        # The run folder is a (persisted) stage output: it must exist; it says why it is empty.
        files.write_json(_common.RUNS / "train_imagenet" / "status.json", {"status": "not run", "reason": reason})
        print(f"train_imagenet: not run ({reason})")
        return 0
    placeholder = _common.RUNS / "train_imagenet" / "status.json"
    if placeholder.exists():
        placeholder.unlink()
    done = []
    for genotype in p.raw["pipeline"]["eval_genotypes"]:
        for seed in p.raw["seeds"]["train_imagenet"]:
            name = f"{genotype}-s{seed}"
            genotype_file = (_common.METRICS / "genotype" / f"{genotype}.json").as_posix()
            cfg = train_imagenet_config(p, genotype_file, seed, f"runs/train_imagenet/{name}")
            nproc = p.raw["pipeline"]["imagenet_nproc"]
            metrics = _common.run_train(cfg, "train_imagenet", out / name, "train-imagenet", nproc=nproc)
            done.append(name)
            print(f"train_imagenet {name}: top-1 error {metrics['test_error']:.2f}%")
    stale = out / "status.json"
    if stale.exists():
        stale.unlink()
    for child in sorted(out.iterdir()):
        if child.is_dir() and child.name not in done:
            shutil.rmtree(child)
    return 0


if __name__ == "__main__":
    main()
