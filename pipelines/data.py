"""DVC stage ``data``: see :mod:`sd_darts.experiment.stages.data`."""

import sys

from sd_darts.experiment.stages.data import main

if __name__ == "__main__":
    sys.exit(main())
