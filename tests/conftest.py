"""Fixtures shared by several test modules.

The toy tests (``@pytest.mark.toy``) train a small model to a score threshold. Two environment
variables let ``benchmarks/toy_margins.py`` measure how far above their thresholds they land:
``RNNKIT_TOY_SEED`` replaces each toy's own seed (its model's and its generated data's), and
``RNNKIT_TOY_SCORES`` names a file to which every toy appends its scores, one JSON line each.
Neither changes what a test asserts. The thread count is the environment's (OMP_NUM_THREADS).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def toy_seed() -> Callable[[int], int]:
    """``toy_seed(recipe_seed)``: RNNKIT_TOY_SEED when it is set, else the recipe's seed."""
    value = os.environ.get("RNNKIT_TOY_SEED", "").strip()
    return lambda recipe_seed: int(value) if value else recipe_seed


@pytest.fixture(scope="session")
def toy_score() -> Callable[..., None]:
    """``toy_score(name, value, threshold, higher=True, margin=0.02)``: note a toy's score, the
    bound the test holds it to (above it if ``higher``, else below) and the margin by which it
    should clear that bound on every seed and CPU, in RNNKIT_TOY_SCORES if set. The test asserts
    the bound itself; the margin is for benchmarks/toy_margins.py to check."""
    path = os.environ.get("RNNKIT_TOY_SCORES")

    def record(
        name: str, value: float, threshold: float, higher: bool = True, margin: float = 0.02
    ) -> None:
        if path:
            line = dict(name=name, value=value, threshold=threshold, higher=higher, margin=margin)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

    return record
