"""DVC stage ``search``: see :mod:`sd_darts.experiment.stages.search`."""

import sys

from sd_darts.experiment.stages.search import main

if __name__ == "__main__":
    sys.exit(main())
