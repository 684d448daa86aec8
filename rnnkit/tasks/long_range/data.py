"""The two classic long-range memory tasks, generated: the adding problem and the copy task.

Adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): each step t of
a sequence of length T carries two numbers, a value v_t ~ U[0, 1] and a marker m_t in {0, 1};
exactly two markers are 1, one in the first half and one in the second. The target, read after
the last step, is ``y = sum_t m_t v_t``. Always answering 1 (= E[y]) scores the baseline
``MSE = Var(v_a + v_b) = 2 / 12 = 0.1667``; "solved" means an MSE below 0.01 on held-out data.

Copy task (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016): symbols 0
(blank), 1..8 (data) and 9 (delimiter). The input is 10 data symbols drawn uniformly, T - 1
blanks, the delimiter, then 10 blanks (length T + 20); the target is T + 10 blanks, then the 10
data symbols. A model with no memory answers blank for the first T + 10 steps and guesses
uniformly for the last 10, a cross-entropy per step of ``10 log(8) / (T + 20)``.

Batches are a pure function of (seed, index), so any batch can be drawn again: a resumed run
sees exactly the sequences an uninterrupted one would.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

COPY_LENGTH = 10  # data symbols to memorise
COPY_SYMBOLS = 10  # blank, 8 data symbols, delimiter
BLANK, DELIMITER = 0, 9


def generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for batch ``index`` of the stream named by ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def adding_problem(n: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """n sequences of length T -> inputs (n, T, 2) = (value, marker) per step, targets (n,)."""
    if length < 2:
        raise ValueError(f"the adding problem needs T >= 2, got {length}")
    values = torch.rand(n, length, generator=gen)  # (n, T)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, length, (n,), generator=gen)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(dim=1)


def copy_task(n: int, length: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """n sequences with T blanks of delay -> inputs (n, T + 20) and targets (n, T + 20), long."""
    if length < 1:
        raise ValueError(f"the copy task needs T >= 1, got {length}")
    data = torch.randint(1, 9, (n, COPY_LENGTH), generator=gen)  # (n, 10)
    total = length + 2 * COPY_LENGTH
    inputs = torch.full((n, total), BLANK, dtype=torch.long)
    targets = torch.full((n, total), BLANK, dtype=torch.long)
    inputs[:, :COPY_LENGTH] = data
    inputs[:, COPY_LENGTH + length - 1] = DELIMITER
    targets[:, -COPY_LENGTH:] = data
    return inputs, targets


def adding_baseline_mse() -> float:
    """MSE of always answering E[y] = 1: Var(v_a) + Var(v_b) = 1/12 + 1/12."""
    return 2.0 / 12.0


def copy_baseline_loss(length: int) -> float:
    """Cross-entropy per step (nats) of the best memoryless answer: ``10 log 8 / (T + 20)``."""
    return COPY_LENGTH * math.log(8) / (length + 2 * COPY_LENGTH)
