"""The keys of ``task: classify``: its own, and the shared groups it takes."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import key
from rnnkit.data.batch_order import EvalBatchKeys
from rnnkit.data.labelled import FormatKeys, TextColumnKeys
from rnnkit.data.splits import TextFileKeys
from rnnkit.data.tokenizers import SubwordKeys, TokenizerKeys
from rnnkit.models.keys import (
    POOLINGS,
    AttentionSizeKeys,
    BidirectionalKeys,
    EmbeddingKeys,
    FreezeEncoderKeys,
    InitFromKeys,
    PretrainedKeys,
    WordDropoutKeys,
)
from rnnkit.training.keys import FineTuningKeys, LabelSmoothingKeys


@dataclass
class ClassifierData:
    label_column: str = key("label")  # csv: the column that holds the label


@dataclass
class ClassifierModel:
    # encoder outputs h_1..h_T -> one vector (attention: a_t = softmax(v . tanh(W h_t)))
    pooling: str = key("last", choices=POOLINGS)


KEYS = {
    "data": (TextFileKeys, TokenizerKeys, SubwordKeys, EvalBatchKeys, FormatKeys,
             ClassifierData, TextColumnKeys),
    "model": (EmbeddingKeys, WordDropoutKeys, PretrainedKeys, BidirectionalKeys,
              AttentionSizeKeys, ClassifierModel, InitFromKeys, FreezeEncoderKeys),
    "train": (LabelSmoothingKeys, FineTuningKeys),
}  # fmt: skip
