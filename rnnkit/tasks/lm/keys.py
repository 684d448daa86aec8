"""The keys of ``task: lm``: its own, and the shared groups it takes."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import COUNT, DROPOUT, key
from rnnkit.data.batch_order import EvalBatchKeys
from rnnkit.data.labelled import FormatKeys, TextColumnKeys
from rnnkit.data.splits import TextFileKeys
from rnnkit.data.tokenizers import SubwordKeys, TokenizerKeys
from rnnkit.models.keys import EmbeddingKeys, PretrainedKeys, TieKeys
from rnnkit.training.keys import LabelSmoothingKeys

MODES = ("stream", "sentence")  # data.mode: StreamBatches, SentenceBatches (batches.py)


@dataclass
class LanguageModelData:
    # stream: truncated BPTT over one token stream; sentence: padded lines
    mode: str = key("stream", choices=MODES)
    # read every line right to left: a backward LM, for model.init_from_backward
    reverse_text: bool = key(False)
    # more unlabelled training text, [FILE, ...]: each file's text (format auto: plain text,
    # or a .conllu or .csv file's words) joins train after the validation split is held out
    extra_text: list[str] | None = key(None)
    bptt: int = key(35, **COUNT)  # stream mode: window length


@dataclass
class LanguageModelModel:
    embedding_dropout: float = key(0.0, **DROPOUT)  # drops whole word types (Gal & Ghahramani)


KEYS = {
    "data": (TextFileKeys, TokenizerKeys, SubwordKeys, LanguageModelData, EvalBatchKeys,
             FormatKeys, TextColumnKeys),
    "model": (EmbeddingKeys, LanguageModelModel, TieKeys, PretrainedKeys),
    "train": (LabelSmoothingKeys,),
}  # fmt: skip
