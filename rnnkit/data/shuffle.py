"""The random orders of training batches, from torch's generator (seeded: any epoch can be
rebuilt on resume); and numpy batches as torch tensors. Decoding, which runs without torch,
needs neither (``batch_order``, ``padding``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rnnkit.data.padding import pad_array


def permutation(count: int, seed: int) -> list[int]:
    """A random order of range(count), the same for the same seed."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def tensors(*arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
    """numpy arrays -> torch tensors sharing their memory."""
    return tuple(torch.from_numpy(a) for a in arrays)


def pad_ids(rows: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    """``padding.pad_array`` as a torch long tensor (B, longest row)."""
    return tensors(pad_array(rows, pad))[0]
