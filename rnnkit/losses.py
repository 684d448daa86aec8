"""The training loss of every token-predicting task: cross-entropy over non-padding targets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def token_cross_entropy(
    logits: Tensor, targets: Tensor, pad: int, label_smoothing: float = 0.0
) -> tuple[Tensor, int]:
    """``sum_t -log softmax(logits_t)[y_t]`` over the targets (B, T) that are not ``pad``, for
    logits (B, T, V) (in float32 even under autocast), and the number of those targets.

    With label smoothing eps the target distribution is (1 - eps) one-hot + eps / V uniform.
    """
    loss = F.cross_entropy(
        logits.flatten(0, 1).float(),
        targets.flatten(),
        ignore_index=pad,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    return loss, int((targets != pad).sum())
