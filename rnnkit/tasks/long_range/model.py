"""The model of the long-range tasks: inputs -> stacked rnnkit.nn layer -> linear read-out.

adding: x (B, T, 2) -> h (B, T, H) -> ``y_hat = w^T h_T + b``: one number per sequence (B,).
copy:   tokens (B, T + 20) -> embedding (B, T + 20, E) -> h -> logits (B, T + 20, 10), a
        prediction at every step.
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.config import ModelConfig
from rnnkit.models.recurrent import build_recurrent, initialize
from rnnkit.nn.gemm import Linear


class LongRangeModel(nn.Module):
    """``symbols``: None for the adding problem's (value, marker) inputs and one output; the
    copy task's alphabet size (``data.long_range.COPY_SYMBOLS``) for symbols in and out."""

    def __init__(self, cfg: ModelConfig, symbols: int | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(symbols, cfg.embedding_size) if symbols else None
        self.rnn = build_recurrent(cfg, cfg.embedding_size if self.embedding is not None else 2)
        self.output = Linear(cfg.hidden_size, symbols or 1)
        initialize(self, cfg)

    def forward(self, inputs: Tensor) -> Tensor:
        """adding: (B, T, 2) -> (B,); copy: (B, T') long -> (B, T', 10)."""
        x = inputs if self.embedding is None else self.embedding(inputs)
        h, _ = self.rnn(x)  # (B, T, H)
        if self.embedding is None:
            return self.output(h[:, -1]).squeeze(-1)
        return self.output(h)
