"""User-facing errors.

Anything caused by bad input (a setting, a data folder, a checkpoint, a genotype file, a
benchmark file) raises :class:`UserError` with a one-line message that names what is wrong
and how to fix it.  The command line prints ``sd-darts: error: <message>`` and exits with
code 2; it never shows a traceback for these.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep the message on one line whatever the caller passed.
        super().__init__(" ".join(str(message).split()))
