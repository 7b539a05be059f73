"""One module per ``sd-darts`` subcommand (see :mod:`sd_darts.cli`)."""
