"""DVC stage ``ablation``: see :mod:`sd_darts.experiment.stages.ablation`."""

import sys

from sd_darts.experiment.stages.ablation import main

if __name__ == "__main__":
    sys.exit(main())
