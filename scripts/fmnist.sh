#!/usr/bin/env bash
# The fmnist profile: DARTS and SD-DARTS on real data (Fashion-MNIST, Debian's dataset-fashion-mnist),
# offline on a CPU machine: searches (2 seeds per method, Hessian eigenvalue every 2 epochs),
# selection, the selected SD-DARTS genotype and the DARTS baseline's trained from scratch on the
# 60,000 training images and tested on the 10,000 test images, and the report (docs/fmnist.md:
# sizes, measured times, what the paper's sizes would take on one GPU).  Only the stages it needs
# run (no NAS-Bench-201, ablation or ImageNet stage; the report says "not run" for those), two at a
# time with one thread each (sd-darts pipeline run --jobs 2: 1.6x the throughput of one at a time).
#
#   bash scripts/fmnist.sh [--out DIR] [--workdir DIR [--resume]] [--committed] [--update]
# Options as scripts/profile.sh (--help); the report is left in runs/fmnist-report/.  An
# interrupted run goes on where it stopped: rerun it with the same --workdir DIR and --resume.
export SD_DARTS_SCRIPT_NAME=fmnist.sh
exec bash "$(dirname "$0")/profile.sh" --params params-fmnist.yaml \
    --stages "data search select_retrain genotype train_cifar curves report" --jobs 2 "$@"
