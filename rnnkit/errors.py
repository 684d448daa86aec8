"""The one exception the CLI turns into a one-line message and exit status 2."""


class UserError(Exception):
    """Bad input from the user (a file, a config key, a run directory): say what and where.

    The message is one line and names the file, line or key at fault, e.g.
    ``data/train.txt:17: invalid UTF-8``. The CLI prints ``rnnkit: error: <message>`` and exits 2.
    """
