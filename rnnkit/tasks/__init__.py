"""Tasks: one folder each (``lm``, ``translate``, ``classify``, ``tag``, ``long_range``), holding
everything that is that task's: its config keys, data reading and vocabularies, model, training
step and scores, loaded run (``rnnkit.load``), ONNX graphs and HTTP endpoints.

``base.py`` is the interface (``Task``), ``registry.py`` the one list of tasks,
``loaded.py`` and ``trainable.py`` what every task's loaded run and torch side share.
"""
