"""The keys of ``task: tag``: its own, and the shared groups it takes."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import COUNT, key
from rnnkit.data.batch_order import EvalBatchKeys
from rnnkit.data.labelled import TAG_COLUMNS, FormatKeys
from rnnkit.data.splits import TextFileKeys
from rnnkit.data.tokenizers import TokenizerKeys
from rnnkit.models.keys import (
    BidirectionalKeys,
    EmbeddingKeys,
    FreezeEncoderKeys,
    InitFromKeys,
    PretrainedKeys,
    WordDropoutKeys,
)
from rnnkit.training.keys import FineTuningKeys, LabelSmoothingKeys


@dataclass
class TaggerData:
    tag_column: str = key("upos", choices=TAG_COLUMNS)  # conllu: upos (column 4) | xpos (5)


@dataclass
class TaggerModel:
    # a bidirectional char RNN per word, its final states joined to the word embedding
    char_features: bool = key(False)
    char_embedding_size: int = key(50, **COUNT)
    char_hidden_size: int = key(50, **COUNT)  # per direction


KEYS = {
    "data": (TextFileKeys, TokenizerKeys, EvalBatchKeys, FormatKeys, TaggerData),
    "model": (EmbeddingKeys, WordDropoutKeys, PretrainedKeys, BidirectionalKeys, TaggerModel,
              InitFromKeys, FreezeEncoderKeys),
    "train": (LabelSmoothingKeys, FineTuningKeys),
}  # fmt: skip
