"""DVC stage ``genotype``: see :mod:`sd_darts.experiment.stages.genotype`."""

import sys

from sd_darts.experiment.stages.genotype import main

if __name__ == "__main__":
    sys.exit(main())
