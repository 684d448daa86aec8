"""rnnkit.training: the task-agnostic training loop (``trainer.py``), its keys (``keys.py``),
running it on several processes (``distributed.py``), and transfer from LM runs
(``transfer.py``). ``rnnkit.train`` (``workflows/train.py``) drives it."""
