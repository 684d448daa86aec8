"""The keys of ``task: translate``: its own (data pairs, the encoder-decoder, teacher forcing,
decoding), and the shared groups it takes."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import COUNT, NON_NEGATIVE, POSITIVE, PROBABILITY, key
from rnnkit.data.splits import TextFileKeys
from rnnkit.data.tokenizers import SubwordKeys, TokenizerKeys
from rnnkit.models.keys import (
    SCORES,
    AttentionSizeKeys,
    BidirectionalKeys,
    EmbeddingKeys,
    FreezeEncoderKeys,
    TieKeys,
)
from rnnkit.training.keys import FineTuningKeys, LabelSmoothingKeys

SYNTHETIC_TASKS = ("reverse",)  # data.synthetic: generated pairs instead of files
BRIDGES = ("zero", "last", "linear")  # model.bridge
ATTENTIONS = ("none", *SCORES)  # model.attention
SAMPLING_SCHEDULES = ("none", "linear", "exponential", "inverse_sigmoid")


@dataclass
class PairData:
    # a split is the pair of files PATH.SOURCE_SUFFIX / PATH.TARGET_SUFFIX, or, without
    # suffixes, one TSV file whose first two columns are (source, target) (swapped by reverse).
    source_suffix: str | None = key(None)
    target_suffix: str | None = key(None)
    reverse: bool = key(False)
    # "reverse": the reverse-the-sequence task, generated (no files)
    synthetic: str | None = key(None, choices=SYNTHETIC_TASKS)
    max_length: int | None = key(100, **COUNT)  # longer training pairs are filtered out
    batch_tokens: int | None = key(None, **COUNT)  # a token budget per batch, not batch_size
    joint_vocabulary: bool = key(False)  # one vocabulary for source and target


@dataclass
class EncoderDecoderModel:
    # the encoder's hidden size per direction (null: hidden_size); the decoder's is hidden_size
    encoder_hidden_size: int | None = key(None, **COUNT)
    # zero | last | linear (+tanh): encoder final state -> decoder's first
    bridge: str = key("linear", choices=BRIDGES)
    attention: str = key("general", choices=ATTENTIONS)
    # the attentional vector h~_{t-1} joins the next decoder input
    input_feeding: bool = key(True)
    # transfer (training/transfer.py): the encoder from a source LM, the decoder from a target LM
    encoder_init_from: str | None = key(None)
    decoder_init_from: str | None = key(None)


@dataclass
class TeacherForcingKeys:
    # the probability of feeding the gold token (drawn per step), and its decay by scheduled
    # sampling (Bengio et al. 2015) over optimizer steps i: linear max(min, k - c i),
    # exponential k^i, inverse_sigmoid k / (k + exp(i / k)).
    teacher_forcing: float = key(1.0, **PROBABILITY)
    scheduled_sampling: str = key("none", choices=SAMPLING_SCHEDULES)
    sampling_k: float = key(1.0, **POSITIVE)
    sampling_c: float = key(1e-4, **NON_NEGATIVE)
    sampling_min: float = key(0.0, **PROBABILITY)


@dataclass
class DecodeKeys:
    """How validation, ``rnnkit translate`` and ``evaluate`` decode (``run.decode_options``)."""

    beam_size: int = key(5, **COUNT)
    # validation decodes greedily by default: it runs every epoch
    valid_beam_size: int = key(1, **COUNT)
    length_penalty: float = key(1.0, **NON_NEGATIVE)  # GNMT alpha
    # output at most ratio x source length + 10 tokens
    max_length_ratio: float = key(1.5, **POSITIVE)
    block_ngram_repeat: int = key(0, **NON_NEGATIVE)
    batch_size: int = key(50, **COUNT)
    # a longer input line is an error (memory: beam x length x hidden)
    max_source_length: int = key(400, **COUNT)


KEYS = {
    "data": (TextFileKeys, TokenizerKeys, SubwordKeys, PairData),
    "model": (EmbeddingKeys, TieKeys, BidirectionalKeys, EncoderDecoderModel,
              AttentionSizeKeys, FreezeEncoderKeys),
    "train": (LabelSmoothingKeys, FineTuningKeys, TeacherForcingKeys),
    "decode": (DecodeKeys,),
}  # fmt: skip
