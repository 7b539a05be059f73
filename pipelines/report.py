"""DVC stage ``report``: see :mod:`sd_darts.experiment.stages.report`."""

import sys

from sd_darts.experiment.stages.report import main

if __name__ == "__main__":
    sys.exit(main())
