"""A many-to-one sequence classifier (sentiment, topic), ``p(y | w_1..w_T) = softmax(W_o s + b_o)``.

tokens (B, T) -> embedding (B, T, E) -> dropout -> stacked, uni- or bidirectional RNN/LSTM/GRU
(B, T, D*H) -> pooling (``pooling.py``: last | mean | max | attention, padding masked) s (B, D*H)
-> dropout -> linear (B, C). Dropout sits on the non-recurrent connections only, as in the
language model; the embedding may start from pretrained vectors (``embeddings.py``).
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.config import ModelConfig
from rnnkit.models.pooling import AttentionPooling, last_pool, max_pool, mean_pool
from rnnkit.models.recurrent import build_recurrent, initialize
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.gemm import Linear


class SequenceClassifier(nn.Module):
    def __init__(
        self, vocab_size: int, num_classes: int, cfg: ModelConfig, pad_index: int = 0
    ) -> None:
        super().__init__()
        directions = 2 if cfg.bidirectional else 1
        size = directions * cfg.hidden_size
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=pad_index)
        self.rnn = build_recurrent(cfg, cfg.embedding_size, bidirectional=cfg.bidirectional)
        self.pooling, self.bidirectional = cfg.pooling, cfg.bidirectional
        if cfg.pooling == "attention":
            self.attention = AttentionPooling(size, cfg.attention_size or cfg.hidden_size)
        self.dropout = Dropout(cfg.dropout)
        self.output = Linear(size, num_classes)
        initialize(self, cfg)

    def pool(self, h: Tensor, lengths: Tensor) -> Tensor:
        """h (B, T, D*H), lengths (B,) -> s (B, D*H) by ``self.pooling``."""
        if self.pooling == "last":
            return last_pool(h, lengths, self.bidirectional)
        if self.pooling == "mean":
            return mean_pool(h, lengths)
        if self.pooling == "max":
            return max_pool(h, lengths)
        return self.attention(h, lengths)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens (B, T), lengths (B,) -> logits (B, C)."""
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        h, _ = self.rnn(x, lengths=lengths)  # (B, T, D*H)
        return self.output(self.dropout(self.pool(h, lengths)))  # (B, C)
