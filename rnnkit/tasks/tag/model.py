"""Many-to-many: a sequence tagger (part of speech, named entities), one label per token,
``p(y_t | w_1..w_T) = softmax(W_o h_t + b_o)``.

words (B, T) -> embedding (B, T, E) [; char features (B, T, 2C)] -> dropout -> stacked
bidirectional RNN/LSTM/GRU (B, T, 2H) -> dropout -> linear (B, T, K).

Char features (Ling et al. 2015; Lample et al. 2016; Plank et al. 2016): each distinct word of
the batch is read character by character by a one-layer bidirectional RNN of the same cell,
and its two final states [h->_n; h<-_1] (2C) join the word embedding. A word never seen in
training still gets a vector that reflects its spelling (suffixes, capitals, digits, hyphens).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.config import ModelConfig
from rnnkit.models.pooling import last_pool
from rnnkit.models.recurrent import build_recurrent, initialize
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.gemm import Linear


class CharBatch(NamedTuple):
    """The characters of the distinct words of a batch: chars (U, L) padded with 0, lengths (U,)
    >= 1, and index (B, T): the row of ``chars`` that spells word (b, t)."""

    chars: Tensor
    lengths: Tensor
    index: Tensor

    def to(self, device: torch.device) -> CharBatch:
        return CharBatch(*(t.to(device) for t in self))


class SequenceTagger(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        cfg: ModelConfig,
        pad_index: int = 0,
        num_chars: int = 0,
    ) -> None:
        super().__init__()
        directions = 2 if cfg.bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=pad_index)
        input_size = cfg.embedding_size
        self.char_features = cfg.char_features
        if cfg.char_features:
            self.char_embedding = nn.Embedding(num_chars, cfg.char_embedding_size, padding_idx=0)
            char_cfg = dataclasses.replace(cfg, num_layers=1, dropout=0.0)
            self.char_rnn = build_recurrent(
                char_cfg,
                cfg.char_embedding_size,
                hidden_size=cfg.char_hidden_size,
                bidirectional=True,
            )
            input_size += 2 * cfg.char_hidden_size
        self.rnn = build_recurrent(cfg, input_size, bidirectional=cfg.bidirectional)
        self.dropout = Dropout(cfg.dropout)
        self.output = Linear(directions * cfg.hidden_size, num_tags)
        initialize(self, cfg)

    def spell(self, chars: CharBatch) -> Tensor:
        """The char features of every word: (B, T, 2C)."""
        x = self.char_embedding(chars.chars)  # (U, L, C_e)
        h, _ = self.char_rnn(x, lengths=chars.lengths)  # (U, L, 2C)
        words = last_pool(h, chars.lengths, bidirectional=True)  # (U, 2C)
        return words[chars.index]  # (B, T, 2C)

    def forward(self, words: Tensor, lengths: Tensor, chars: CharBatch | None = None) -> Tensor:
        """words (B, T), lengths (B,), chars (with ``char_features``) -> logits (B, T, K)."""
        x = self.embedding(words)  # (B, T, E)
        if self.char_features:
            x = torch.cat([x, self.spell(chars)], dim=2)  # (B, T, E + 2C)
        h, _ = self.rnn(self.dropout(x), lengths=lengths)  # (B, T, D*H)
        return self.output(self.dropout(h))  # (B, T, K)
