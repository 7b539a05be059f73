"""The DVC stages of ``dvc.yaml``, one module each, run as ``python -m sd_darts.experiment.stages.<stage>``.

``data`` -> ``search`` (method x seed) -> ``select_retrain`` (seed; DARTS's selection protocol,
when chosen) -> ``genotype`` -> ``train_cifar`` (genotype x seed), ``train_imagenet`` (switch);
``nb201_search`` (seed) -> ``nb201_query``; ``ablation`` (Figs. 5, 6: kind x value x seed);
``report``.  See docs/pipeline.md.
"""
