"""DVC stage ``curves``: see :mod:`sd_darts.experiment.stages.curves`."""

import sys

from sd_darts.experiment.stages.curves import main

if __name__ == "__main__":
    sys.exit(main())
