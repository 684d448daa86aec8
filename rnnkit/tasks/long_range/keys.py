"""The keys of ``task: adding`` and ``task: copy``."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import COUNT, key
from rnnkit.data.batch_order import EvalBatchKeys
from rnnkit.models.keys import EmbeddingKeys


@dataclass
class GeneratedData:
    # generated sequences of length T (the copy task's are T + 20 long); each epoch draws
    # train_size fresh ones, valid_size and test_size are fixed held-out sets.
    sequence_length: int = key(100, **COUNT)
    train_size: int = key(10000, **COUNT)
    valid_size: int = key(1000, **COUNT)
    test_size: int = key(1000, **COUNT)


ADDING_KEYS = {"data": (EvalBatchKeys, GeneratedData)}
COPY_KEYS = {"data": (EvalBatchKeys, GeneratedData), "model": (EmbeddingKeys,)}
