"""Forward+backward time and peak memory of minGRU and minLSTM (the log-space scan) against
torch's fused GRU and LSTM, and against their own limit.

For each T, one layer of each kind with B sequences, input size I = H: the time of
``out, _ = layer(x); out.sum().backward()`` (x needs no gradient), the contenders alternated in
rounds in one process and the median of --repeat rounds taken (``cells.compare``, after two
warm-up rounds), so that machine noise hits all alike. The contenders:

- ``GRU``, ``LSTM``: torch.nn's, i.e. the fused kernels (oneDNN on a CPU, cuDNN on a GPU);
- ``minGRU``, ``minLSTM``: ``rnnkit.nn.MinGRU`` / ``MinLSTM``, parallel=True, default chunk;
- ``minGRU limit``, ``minLSTM limit``: the layer's input products alone, ``gemm.Linear(I, 2H)``
  and ``(I, 3H)`` over (T, B, I), forward and backward: the GEMMs the layer cannot avoid (the
  route its own products take), so ``x own limit`` is what the scan and the gates cost on top.

GEMM work, in multiply-adds per step and sequence, forward: GRU 3H(I + H), LSTM 4H(I + H),
minGRU 2HI, minLSTM 3HI; with I = H, GRU does 3x minGRU's and LSTM 8/3 = 2.67x minLSTM's.
The backward (dW for all, and dh through W_hh for GRU and LSTM; x needs no gradient) brings
fwd+bwd to kH(2I + 3H) against kH * 2I: 3.75x and 3.33x, the ``FLOP ratio`` column.

Peak memory: the highest total of torch's allocations during one forward+backward, above what
was allocated before it (weights, x, their gradients): ``torch.cuda.max_memory_allocated`` on a
GPU; on a CPU, the allocation and free events of torch's profiler (``profile_memory=True``), in
time order. Both count tensors only (not the allocator's caching, nor oneDNN's own scratch).

    python benchmarks/scan.py                          # CPU, B = 32, H = 256, T = 256, 1024, 4096
    python benchmarks/scan.py --device cuda --plot scan.png
    python benchmarks/scan.py --quick                  # tiny sizes: a smoke test in seconds
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable

import torch
from cells import compare, synchronize
from machine import describe
from tabulate import tabulate
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from rnnkit import allocator
from rnnkit.nn import MinGRU, MinLSTM
from rnnkit.nn.gemm import Linear

# (fused layer, minimal layer, gates k of each)
PAIRS = [("GRU", "minGRU", 3, 2), ("LSTM", "minLSTM", 4, 3)]


class InputProducts(nn.Module):
    """``W x + b`` for every step, returned as a layer returns (output, state)."""

    def __init__(self, input_size: int, rows: int) -> None:
        super().__init__()
        self.linear = Linear(input_size, rows)

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.linear(x), None


def contenders(hidden: int) -> dict[str, Callable[[], nn.Module]]:
    return {
        "GRU": lambda: nn.GRU(hidden, hidden),
        "minGRU": lambda: MinGRU(hidden, hidden),
        "minGRU limit": lambda: InputProducts(hidden, 2 * hidden),
        "LSTM": lambda: nn.LSTM(hidden, hidden),
        "minLSTM": lambda: MinLSTM(hidden, hidden),
        "minLSTM limit": lambda: InputProducts(hidden, 3 * hidden),
    }


def fwd_bwd(layer: nn.Module, x: Tensor) -> None:
    out, _ = layer(x)
    out.sum().backward()


def peak_bytes(layer: nn.Module, x: Tensor) -> int:
    """Peak of torch's allocations during one forward+backward, above those live before it."""
    fwd_bwd(layer, x)  # gradients allocated, as in every timed round
    if x.device.type == "cuda":
        synchronize(x.device)
        before = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        fwd_bwd(layer, x)
        synchronize(x.device)
        return torch.cuda.max_memory_allocated(x.device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fwd_bwd(layer, x)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    total = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        total += event.nbytes()  # > 0 an allocation, < 0 a free
        peak = max(peak, total)
    return peak


def flop_ratio(fused_gates: int, min_gates: int, input_size: int, hidden: int) -> float:
    """fwd+bwd GEMM work of the fused layer over the minimal one's (module docstring)."""
    return fused_gates * (2 * input_size + 3 * hidden) / (min_gates * 2 * input_size)


def measure(
    device: torch.device, batch: int, hidden: int, steps: int, repeat: int
) -> dict[str, tuple[float, int]]:
    """name -> (median seconds of fwd+bwd, peak bytes) for every contender at this T."""
    torch.manual_seed(0)
    layers = {name: make().to(device) for name, make in contenders(hidden).items()}
    x = torch.randn(steps, batch, hidden, device=device)
    seconds = compare(list(layers.values()), x, repeat)
    return {
        name: (t, peak_bytes(layer, x))
        for (name, layer), t in zip(layers.items(), seconds, strict=True)
    }


def table_rows(steps: int, results: dict[str, tuple[float, int]], hidden: int) -> list[list]:
    rows = []
    for fused, minimal, fused_gates, min_gates in PAIRS:
        t_fused, t_min, t_limit = (results[n][0] for n in (fused, minimal, f"{minimal} limit"))
        speedup = f"**{t_fused / t_min:.2f}**"
        ratio = f"{flop_ratio(fused_gates, min_gates, hidden, hidden):.2f}"
        for name, extra in [
            (fused, ["", "", ""]),
            (minimal, [speedup, ratio, f"{t_min / t_limit:.2f}"]),
            (f"{minimal} limit", ["", "", ""]),
        ]:
            t, peak = results[name]
            rows.append(
                [steps, name, f"{1e3 * t:.2f}", f"{1e6 * t / steps:.1f}", f"{peak / 2**20:.1f}"]
                + extra
            )
    return rows


HEADERS = ["T", "layer", "fwd+bwd ms", "us/step", "peak MiB", "speed-up over fused",
           "GEMM FLOP ratio fused/min", "x own limit"]  # fmt: skip


def plot(path: str, per_step: dict[str, list[float]], steps: list[int], title: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("GRU", "LSTM", "minGRU", "minLSTM"):
        ax.loglog(steps, per_step[name], marker="o", label=name)
    ax.set_xticks(steps, [str(t) for t in steps])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("T (steps)")
    ax.set_ylabel("forward+backward time per step (us)")
    ax.set_title(textwrap.fill(title, 80), fontsize=7)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256, help="H, and the input size I")
    parser.add_argument("--steps", type=int, nargs="+", default=[256, 1024, 4096], help="T")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="B 4, H 32, T 16 and 64, 2 rounds")
    parser.add_argument("--plot", metavar="PATH", help="a log-log PNG of time per step vs T")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.hidden, args.steps, args.repeat = 4, 32, [16, 64], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    allocator.retain_freed_memory()  # as rnnkit's trainer runs (rnnkit/allocator.py)
    device = torch.device(args.device)
    machine = describe(device)
    print(f"# minGRU / minLSTM (scan) vs fused GRU / LSTM, forward+backward, fp32; {machine}")
    print(f"# B = {args.batch}, I = H = {args.hidden}; median of {args.repeat} alternated rounds")
    print(f"# python {' '.join(sys.argv)}\n")
    rows, per_step = [], {name: [] for name in contenders(args.hidden)}
    for steps in args.steps:
        results = measure(device, args.batch, args.hidden, steps, args.repeat)
        rows += table_rows(steps, results, args.hidden)
        for name, (t, _) in results.items():
            per_step[name].append(1e6 * t / steps)
    print(tabulate(rows, HEADERS, tablefmt="github", disable_numparse=True))
    if args.plot:
        plot(args.plot, per_step, args.steps, f"B={args.batch}, H={args.hidden}; {machine}")
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
