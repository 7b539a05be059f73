"""sd_darts: reproducibility package for SD-DARTS (Zhu et al., Neural Networks 2023).

Differentiable architecture search (DARTS) with self-distillation from the supernet's own
predictions of earlier epochs ("voting teachers").  The library knows nothing of DVC: the
DVC stages (``sd_darts.experiment.stages``) call it.
"""

__version__ = "0.1.0"
