"""The doors into rnnkit, above the task registry: ``load.py`` (``rnnkit.load`` and the one
function that opens a run directory), ``exported.py`` (an ONNX export folder, without torch),
``train.py`` (``rnnkit.train``), ``serve.py`` (``rnnkit serve``'s process) and ``diagnose.py``
(``rnnkit diagnose``). The CLI is a thin layer over these."""
