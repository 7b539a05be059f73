"""DVC stage ``train_imagenet``: see :mod:`sd_darts.experiment.stages.train_imagenet`."""

import sys

from sd_darts.experiment.stages.train_imagenet import main

if __name__ == "__main__":
    sys.exit(main())
