"""``task: tag``: many-to-many, a (bidirectional) recurrent tagger with optional character
features (``training.py``), loaded to tag sentences (``run.py``).

- ``keys.py``: its config keys; ``model.py``: ``SequenceTagger``;
- ``training.py``: data, vocabularies, training step, accuracy and entity P/R/F1;
- ``run.py``: ``rnnkit.load``'s ``TaggerRun`` (predict, evaluate);
- ``graphs.py``: its ONNX graph; ``/v1/predict`` is ``tasks.labelling.PREDICT``.
"""

from rnnkit.data.labelled import LABELS_FILE
from rnnkit.data.tokenizers import TOKENIZER_FILE
from rnnkit.tasks.base import Task
from rnnkit.tasks.tag.keys import KEYS
from rnnkit.tasks.tag.run import CHARS_DIR, TaggerRun

TASK = Task("tag", KEYS, TaggerRun, "rnnkit.tasks.tag.training:TRAINING",
            run_files=(TOKENIZER_FILE, CHARS_DIR, LABELS_FILE),
            graphs="rnnkit.tasks.tag.graphs:graph_specs",
            endpoints="rnnkit.tasks.labelling:ENDPOINTS")  # fmt: skip
