"""``task: classify``: many-to-one, a recurrent encoder pooled into one vector and a label
(``training.py``), loaded to predict labels (``run.py``).

- ``keys.py``: its config keys; ``model.py``: ``SequenceClassifier``;
- ``training.py``: data, vocabularies, training step, accuracy and macro-F1;
- ``run.py``: ``rnnkit.load``'s ``ClassifierRun`` (predict, evaluate);
- ``graphs.py``: its ONNX graph; ``/v1/predict`` is ``tasks.labelling.PREDICT``.
"""

from rnnkit.data.labelled import LABELS_FILE
from rnnkit.data.tokenizers import SUBWORD_MODEL_FILE, TOKENIZER_FILE
from rnnkit.tasks.base import Task
from rnnkit.tasks.classify.keys import KEYS
from rnnkit.tasks.classify.run import ClassifierRun

TASK = Task("classify", KEYS, ClassifierRun, "rnnkit.tasks.classify.training:TRAINING",
            run_files=(TOKENIZER_FILE, SUBWORD_MODEL_FILE, LABELS_FILE),
            graphs="rnnkit.tasks.classify.graphs:graph_specs",
            endpoints="rnnkit.tasks.labelling:ENDPOINTS")  # fmt: skip
