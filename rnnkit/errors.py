"""The exceptions the CLI turns into a one-line message: ``UserError`` (exit status 2) and
``TrainingDiverged`` (exit status 1). Here, without torch, so the CLI can catch them in a
process that only decodes an ONNX export."""


class UserError(Exception):
    """Bad input from the user (a file, a config key, a run directory): say what and where.

    The message is one line and names the file, line or key at fault, e.g.
    ``data/train.txt:17: invalid UTF-8``. The CLI prints ``rnnkit: error: <message>`` and exits 2.
    """


class TrainingDiverged(Exception):
    """The loss became NaN or inf."""
