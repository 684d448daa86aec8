"""``task: translate``: sequence to sequence, an encoder-decoder with attention trained with
teacher forcing (``training.py``), loaded to translate with beam search (``run.py``).

- ``keys.py``: its config keys; ``data.py``: sentence pairs, token-budget bucketing;
- ``model.py``: ``Seq2Seq`` (encoder, bridge, attentional decoder);
- ``training.py``: data, vocabularies, training step, BLEU/chrF validation;
- ``run.py``: ``rnnkit.load``'s ``TranslationRun`` (translate, evaluate);
- ``graphs.py``: its ONNX graphs; ``endpoints.py``: ``/v1/translate``.
"""

from rnnkit.tasks.base import Task
from rnnkit.tasks.translate.keys import KEYS
from rnnkit.tasks.translate.run import SOURCE_DIR, TARGET_DIR, TranslationRun

TASK = Task("translate", KEYS, TranslationRun, "rnnkit.tasks.translate.training:TRAINING",
            run_files=(SOURCE_DIR, TARGET_DIR),
            graphs="rnnkit.tasks.translate.graphs:graph_specs",
            endpoints="rnnkit.tasks.translate.endpoints:ENDPOINTS")  # fmt: skip
