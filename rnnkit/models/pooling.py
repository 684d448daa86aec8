"""Many-to-one: the outputs h_1..h_T of a recurrent encoder -> one vector per sequence.

With lengths n_b (B,), only t <= n_b count (padding is masked in all four)::

    last       h_{n_b}; bidirectional: [h->_{n_b}; h<-_1], each direction's final state
    mean       (1/n_b) sum_{t<=n_b} h_t
    max        max_{t<=n_b} h_t, per feature
    attention  a_t = softmax_t(v . tanh(W h_t + b)),  sum_t a_t h_t
               (Yang et al. 2016, "Hierarchical Attention Networks"; Lin et al. 2017)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.nn.gemm import Linear

POOLINGS = ("last", "mean", "max", "attention")


def lengths_mask(lengths: Tensor, steps: int) -> Tensor:
    """lengths (B,) -> mask (B, T) bool, True at t < n_b."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def last_pool(h: Tensor, lengths: Tensor, bidirectional: bool) -> Tensor:
    """h (B, T, D*H) -> (B, D*H): the forward direction at t = n_b, the backward one at t = 1
    (where each has read the whole sequence)."""
    index = (lengths - 1).to(h.device).view(-1, 1, 1).expand(-1, 1, h.shape[2])  # (B, 1, D*H)
    last = h.gather(1, index).squeeze(1)  # (B, D*H)
    if not bidirectional:
        return last
    half = h.shape[2] // 2
    return torch.cat([last[:, :half], h[:, 0, half:]], dim=1)


def mean_pool(h: Tensor, lengths: Tensor) -> Tensor:
    """h (B, T, F) -> (B, F): the mean over the first n_b steps."""
    mask = lengths_mask(lengths.to(h.device), h.shape[1]).unsqueeze(2)  # (B, T, 1)
    return (h * mask).sum(1) / lengths.to(h.device, h.dtype).unsqueeze(1)


def max_pool(h: Tensor, lengths: Tensor) -> Tensor:
    """h (B, T, F) -> (B, F): the maximum over the first n_b steps, per feature."""
    mask = lengths_mask(lengths.to(h.device), h.shape[1]).unsqueeze(2)  # (B, T, 1)
    return h.masked_fill(~mask, float("-inf")).amax(1)


class AttentionPooling(nn.Module):
    """a_t = softmax_t(v . tanh(W h_t + b)) over t <= n_b, output sum_t a_t h_t.

    W: Linear(F, A) with bias, v: Linear(A, 1) without: the learned context vector v plays the
    query of Yang et al. 2016.
    """

    def __init__(self, size: int, attention_size: int) -> None:
        super().__init__()
        self.W = Linear(size, attention_size)
        self.v = Linear(attention_size, 1, bias=False)

    def weights(self, h: Tensor, lengths: Tensor) -> Tensor:
        """h (B, T, F) -> a (B, T), zero at padded steps, each row summing to 1."""
        scores = self.v(torch.tanh(self.W(h))).squeeze(2)  # (B, T)
        mask = lengths_mask(lengths.to(h.device), h.shape[1])
        return scores.masked_fill(~mask, float("-inf")).softmax(dim=1)

    def forward(self, h: Tensor, lengths: Tensor) -> Tensor:
        """h (B, T, F) -> (B, F)."""
        return torch.bmm(self.weights(h, lengths).unsqueeze(1), h).squeeze(
            1
        )  # (B, 1, T) x (B, T, F)
