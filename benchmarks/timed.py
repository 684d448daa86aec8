"""Training processes watched from outside: each output line timestamped as it arrives, the run
stopped after a wall-clock budget, and the process' peak RSS.

The time-to-quality curves of ``benchmarks/peers/joey.py`` and ``benchmarks/lm.py`` come from
here: one point per validation, at the minutes since the process started (start-up, data and
vocabulary included, as a user waits for them).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit import allocator

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Training:
    """What one training process reported: per-epoch training seconds and target tokens, the
    validation score at each validation (minutes since the process started, score), the peak
    RSS and the number of parameters."""

    epoch_seconds: list[float] = field(default_factory=list)
    epoch_tokens: list[int] = field(default_factory=list)
    curve: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    peak_rss_mb: float = 0.0
    parameters: int = 0

    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds)

    def tokens_per_second(self) -> float:
        return sum(self.epoch_tokens) / sum(self.epoch_seconds)


def run_timestamped(
    command: list[str],
    parse: Callable[[str, float], None],
    minutes: float | None,
    cwd: Path,
) -> float:
    """Run ``command``, calling ``parse(line, minutes_since_start)`` for each line of its
    output as it arrives; after ``minutes`` (if given) send it SIGINT, as Ctrl-C would.
    -> the process' peak RSS in MB. A failure exits with the output's last lines."""
    # Every process, rnnkit's and a peer's, runs with the allocator settings rnnkit makes for
    # itself (rnnkit/allocator.py), so that a ratio measures the code, not glibc's defaults.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **allocator.environment()}
    # A background job of a shell ignores SIGINT, and so would its children: restore the default,
    # so that Python turns the budget's SIGINT into KeyboardInterrupt.
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    start = time.perf_counter()
    timer = None
    if minutes is not None:
        timer = threading.Timer(60 * minutes, process.send_signal, (signal.SIGINT,))
        timer.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        parse(line, (time.perf_counter() - start) / 60)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = code = os.waitstatus_to_exitcode(status)
    stopped = timer is not None and not timer.is_alive()
    if timer is not None:
        timer.cancel()
    if code != 0 and not stopped:
        sys.exit(f"{' '.join(command[:4])} ... failed ({code}):\n{''.join(lines[-30:])}")
    return usage.ru_maxrss / 1024


def rnnkit_epoch(line: str) -> dict[str, str] | None:
    """The fields of the line ``rnnkit train`` prints after each epoch ("epoch 2 | step 200 |
    ... | seconds 1.525 | tokens_per_s 2.438e+04"), or None for any other line."""
    if not line.startswith("epoch ") or " | " not in line:
        return None
    return dict(part.split(" ", 1) for part in line.strip().split(" | "))


def epoch_lines(result: Training, metric: str) -> Callable[[str, float], None]:
    """A ``parse`` for ``run_timestamped`` that adds each epoch line (``rnnkit_epoch``) to
    ``result``: its seconds and tokens, and a point of the validation ``metric``."""

    def parse(line: str, now: float) -> None:
        if (record := rnnkit_epoch(line)) is not None:
            seconds = float(record["seconds"])
            result.curve[0].append(now)
            result.curve[1].append(float(record[metric]))
            result.epoch_seconds.append(seconds)
            result.epoch_tokens.append(round(float(record["tokens_per_s"]) * seconds))

    return parse


def train_rnnkit(
    config: Path, run: Path, overrides: list[str], metric: str, minutes: float | None
) -> Training:
    """``rnnkit train config`` into ``run`` (replaced), in a process of its own; the curve is
    of the validation ``metric`` (e.g. "valid_bleu", "valid_ppl")."""
    result = Training()
    command = [sys.executable, "-m", "rnnkit", "train", str(config), "--run-dir", str(run),
               "--overwrite", "train.progress=false", *overrides]  # fmt: skip
    result.peak_rss_mb = run_timestamped(command, epoch_lines(result, metric), minutes, ROOT)
    result.parameters = parameters(run / "model.safetensors")
    return result


def parameters(weights: Path) -> int:
    """The number of values in a safetensors file, read from its header."""
    from safetensors import safe_open

    with safe_open(weights, "np") as f:
        return sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118
