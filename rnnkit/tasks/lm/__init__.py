"""``task: lm``: a language model over characters, words or subwords, trained by truncated BPTT
(``training.py``), loaded to generate and score text (``run.py``).

- ``keys.py``: its config keys; ``batches.py``: streams (truncated BPTT) and sentence batches;
- ``model.py``: ``RNNLanguageModel``; ``training.py``: data, tokenizer, training step, scores;
- ``run.py``: ``rnnkit.load``'s ``LanguageModelRun`` (generate, score, evaluate);
- ``graphs.py``: its ONNX graph; ``endpoints.py``: ``/v1/generate`` and ``/v1/score``.
"""

from rnnkit.data.tokenizers import SUBWORD_MODEL_FILE, TOKENIZER_FILE
from rnnkit.tasks.base import Task
from rnnkit.tasks.lm.keys import KEYS
from rnnkit.tasks.lm.run import LanguageModelRun

TASK = Task("lm", KEYS, LanguageModelRun, "rnnkit.tasks.lm.training:TRAINING",
            run_files=(TOKENIZER_FILE, SUBWORD_MODEL_FILE),
            graphs="rnnkit.tasks.lm.graphs:graph_specs",
            endpoints="rnnkit.tasks.lm.endpoints:ENDPOINTS", diagnosable=True,
            language_model=True)  # fmt: skip
