"""What ``rnnkit serve`` accepts: every cap in one place, each a ``--flag`` of the command.

The defaults are chosen so that no accepted request can run past ``time_limit``: decoding stops
at its deadline (finish reason ``"time"``), the inputs that are read before it (prompts,
sources, texts) are bounded by ``inputs`` x ``input_chars``, and a request still queued at its
deadline is answered 429 rather than run. ``body_bytes`` leaves room for the largest valid
request (32 inputs x 1,000 characters x 12 bytes for a JSON-escaped character outside the BMP),
so that a request is refused for its size only when the schema would refuse it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def cap(default: float, help: str) -> Any:
    """A limit: its default and what it bounds (the ``--flag``'s help)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    body_bytes: int = cap(524_288, "request body; 413 beyond it")
    input_chars: int = cap(1_000, "characters per prompt, sentence or text")
    inputs: int = cap(32, "prompts (x num_samples), sentences or texts per request")
    max_new_tokens: int = cap(256, "tokens a /v1/generate row may add")
    num_samples: int = cap(8, "samples per prompt (/v1/generate)")
    beam: int = cap(8, "beam size (generate, translate); n_best is at most the beam")
    time_limit: float = cap(10.0, "seconds from arrival to the last byte of the answer")
    max_batch: int = cap(
        32, "rows joined into one model batch across requests (a larger request rides alone)"
    )
    max_wait_ms: float = cap(5.0, "how long a batch waits for more requests to join it")
    queue_size: int = cap(256, "requests waiting per model; 429 with Retry-After beyond it")

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"--{f.name.replace('_', '-')}: must be > 0")

    @property
    def decode_share(self) -> float:
        """The part of ``time_limit`` that decoding may use; the rest is for reading the
        inputs, the attention matrices and the answer."""
        return 0.8 * self.time_limit
