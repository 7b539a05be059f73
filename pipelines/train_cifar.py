"""DVC stage ``train_cifar``: see :mod:`sd_darts.experiment.stages.train_cifar`."""

import sys

from sd_darts.experiment.stages.train_cifar import main

if __name__ == "__main__":
    sys.exit(main())
