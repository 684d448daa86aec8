"""The recurrent language model: ``p(w_t | w_<t) = softmax(W_hy h_t + b_y)``.

tokens (B, T) -> embedding (B, T, E) -> dropout -> stacked RNN/LSTM/GRU (B, T, H) -> dropout
-> linear (B, T, V). Dropout sits on the non-recurrent connections only (Zaremba et al. 2014:
the input of the first layer, between layers, before the output layer); embedding dropout
(Gal & Ghahramani 2016) drops whole word types; with ``tie_weights`` the output layer reuses
the embedding matrix (Press & Wolf 2017; Inan et al. 2017), which needs E == H.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import ModelConfig
from rnnkit.errors import UserError
from rnnkit.models.recurrent import build_recurrent, initialize
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.gemm import Linear

State = Tensor | tuple[Tensor, Tensor]


class RNNLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig, pad_index: int = 0) -> None:
        super().__init__()
        if cfg.tie_weights and cfg.embedding_size != cfg.hidden_size:
            raise UserError(
                f"model.tie_weights needs model.embedding_size ({cfg.embedding_size}) "
                f"== model.hidden_size ({cfg.hidden_size})"
            )
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=pad_index)
        self.rnn = build_recurrent(cfg, cfg.embedding_size)
        self.output = Linear(cfg.hidden_size, vocab_size)
        self.dropout = Dropout(cfg.dropout)
        self.embedding_dropout = cfg.embedding_dropout
        initialize(self, cfg)
        if cfg.tie_weights:
            self.output.weight = self.embedding.weight

    def embed(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> (B, T, E); in training, each word type is dropped with probability
        ``embedding_dropout`` (its whole row zeroed for this batch, the rest scaled by 1/(1-p))."""
        weight = self.embedding.weight
        p = self.embedding_dropout
        if self.training and p > 0:
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            weight = weight * keep
        return F.embedding(tokens, weight, self.embedding.padding_idx)

    def forward(
        self, tokens: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """tokens (B, T), state as the layer returns it, lengths (B,) for padded batches
        -> logits (B, T, V), final state."""
        x = self.dropout(self.embed(tokens))  # (B, T, E)
        h, state = self.rnn(x, state, lengths=lengths)  # (B, T, H)
        return self.output(self.dropout(h)), state
