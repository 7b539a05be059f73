"""DVC stage ``select_retrain``: see :mod:`sd_darts.experiment.stages.select_retrain`."""

import sys

from sd_darts.experiment.stages.select_retrain import main

if __name__ == "__main__":
    sys.exit(main())
