"""The ``model`` keys of the shared building blocks: the recurrent stack every task has
(``RecurrentKeys``, read by ``recurrent.py``), and the groups several tasks take (embedding,
pretrained vectors, tied weights, direction, attention size, word dropout, transfer)."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import COUNT, DROPOUT, NON_NEGATIVE, POSITIVE, key
from rnnkit.variants import BPTT_MODES, GATE_ACTIVATIONS, GRU_RESETS, RNN_NONLINEARITIES

CELLS = ("rnn", "lstm", "gru", "mingru", "minlstm")  # model.cell (recurrent.CELLS builds each)
RECURRENT_INITS = ("default", "orthogonal", "identity", "chrono")  # model.recurrent_init
SCORES = ("dot", "general", "concat", "additive")  # attention scores (attention.py)
POOLINGS = ("last", "mean", "max", "attention")  # outputs -> one vector (pooling.py)


@dataclass
class RecurrentKeys:
    """Embedding -> stacked rnnkit.nn layer -> dropout -> output layer.

    Initialisation runs in one order (``models.recurrent.initialize``): every weight from
    U(-init_range, init_range) (or torch's own init when null), then the LSTM forget-gate bias,
    then ``recurrent_init`` on every W_hh; a later step never undoes an earlier one's target.
    """

    cell: str = key("lstm", choices=CELLS)
    nonlinearity: str = key("tanh", choices=RNN_NONLINEARITIES)  # rnn
    peephole: bool = key(False)  # lstm
    forget_bias: float | None = key(None)  # lstm
    reset: str = key("after", choices=GRU_RESETS)  # gru
    gate: str = key("sigmoid", choices=GATE_ACTIVATIONS)  # gru
    fused: bool | None = key(None)
    bptt: str = key("handwritten", choices=BPTT_MODES)  # the explicit path's backward
    hidden_size: int = key(200, **COUNT)
    num_layers: int = key(2, **COUNT)
    dropout: float = key(0.0, **DROPOUT)  # on non-recurrent connections (Zaremba 2014)
    # uniform(-r, r) for every weight; null keeps torch's init
    init_range: float | None = key(0.1, **POSITIVE)
    # W_hh after init_range and forget_bias (each gate's block): kept as it is, a random
    # orthogonal matrix or the identity (Le et al. 2015), times recurrent_gain (its spectral radius
    # for orthogonal and identity). chrono (Tallec & Ollivier 2018) keeps W_hh and sets the gate
    # biases of an LSTM (b_f = -b_i = log U(1, chrono_t_max - 1)) or a GRU (b_z), not with
    # forget_bias; chrono_t_max: the longest dependency expected.
    recurrent_init: str = key("default", choices=RECURRENT_INITS)
    recurrent_gain: float = key(1.0, **POSITIVE)
    chrono_t_max: int | None = key(None, at_least=2)


@dataclass
class EmbeddingKeys:
    embedding_size: int = key(200, **COUNT)


@dataclass
class PretrainedKeys:
    """word2vec/GloVe vectors into the embedding (``data/embeddings.py``)."""

    pretrained_embeddings: str | None = key(None)
    freeze_embeddings: bool = key(False)


@dataclass
class TieKeys:
    tie_weights: bool = key(False)  # the output layer shares the embedding's matrix


@dataclass
class BidirectionalKeys:
    bidirectional: bool = key(False)  # the encoder reads both ways


@dataclass
class AttentionSizeKeys:
    # concat / additive scores, attention pooling (null: hidden_size)
    attention_size: int | None = key(None, **COUNT)


@dataclass
class WordDropoutKeys:
    # training only: a word seen c times in training becomes <unk> with probability
    # alpha / (alpha + c) (Kiperwasser & Goldberg 2016: 0.25); 0: off
    word_dropout: float = key(0.0, **NON_NEGATIVE)


@dataclass
class FreezeEncoderKeys:
    freeze_encoder: bool = key(False)  # keep the parts transferred from LM runs fixed


@dataclass
class InitFromKeys:
    """Transfer from trained LM runs (``training/transfer.py``): the embedding and the forward
    direction of the recurrent stack; a backward LM (``data.reverse_text``) fills the backward
    one."""

    init_from: str | None = key(None)
    init_from_backward: str | None = key(None)
