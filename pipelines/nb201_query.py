"""DVC stage ``nb201_query``: see :mod:`sd_darts.experiment.stages.nb201_query`."""

import sys

from sd_darts.experiment.stages.nb201_query import main

if __name__ == "__main__":
    sys.exit(main())
