"""Forward+backward time of rnnkit's explicit cells against torch's fused kernels.

For each cell and (B, T, H), one layer with input size H: the time of ``out, h = layer(x);
out.sum().backward()`` on the same weights by three paths, measured interleaved in one run
(median of --repeat timings each): the fused kernel, the explicit cells with the hand-written
BPTT (``bptt="handwritten"``, the default) and with autograd over the cells
(``bptt="autograd"``, the old path). The variants no kernel computes (peephole LSTM,
reset-before GRU) are timed against the fused plain LSTM/GRU of the same size. Each path's
speed is also given as a fraction of this machine's fp32 GEMM peak (the best of a (2048, 2048)
product through ``torch.mm`` and through ``rnnkit.nn.gemm.linear``, which on a CPU is oneDNN's):
fwd+bwd of a layer whose input needs no gradient is ``2 T B kH (2 I + 3 H)`` flops of GEMM (k
gates: forward x W_ih^T and h W_hh^T, backward dW_ih, dW_hh and dh), the rest is pointwise.

    python benchmarks/cells.py                      # CPU, fp32, the table of RESULTS.md
    python benchmarks/cells.py --device cuda        # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import describe

from rnnkit.nn import GRU, LSTM, RNN
from rnnkit.nn.gemm import linear

SIZES = [(20, 35, 200), (64, 50, 256), (32, 100, 512)]
# (row label, gates, explicit layer given its bptt, fused layer it is timed against)
CASES = [
    ("LSTM", 4, lambda h, b: LSTM(h, h, fused=False, bptt=b), lambda h: LSTM(h, h)),
    ("GRU", 3, lambda h, b: GRU(h, h, fused=False, bptt=b), lambda h: GRU(h, h)),
    ("RNN tanh", 1, lambda h, b: RNN(h, h, fused=False, bptt=b), lambda h: RNN(h, h)),
    ("LSTM peephole", 4, lambda h, b: LSTM(h, h, peephole=True, bptt=b), lambda h: LSTM(h, h)),
    ("GRU reset=before", 3, lambda h, b: GRU(h, h, reset="before", bptt=b), lambda h: GRU(h, h)),
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd_seconds(layer: torch.nn.Module, x: torch.Tensor) -> float:
    synchronize(x.device)
    start = time.perf_counter()
    out, _ = layer(x)
    out.sum().backward()
    synchronize(x.device)
    return time.perf_counter() - start


def compare(layers: list[torch.nn.Module], x: torch.Tensor, repeat: int) -> list[float]:
    """Median seconds of each layer, timings interleaved so that machine noise hits all alike."""
    for _ in range(2):  # warm-up: allocator, oneDNN/cuDNN plans
        for layer in layers:
            fwd_bwd_seconds(layer, x)
    times: list[list[float]] = [[] for _ in layers]
    for _ in range(repeat):
        for layer, timings in zip(layers, times, strict=True):
            timings.append(fwd_bwd_seconds(layer, x))
    return [statistics.median(t) for t in times]


def gemm_peak(device: torch.device, n: int = 2048, repeat: int = 10) -> float:
    """fp32 GEMM flops/s of an (n, n) x (n, n) product, best of ``repeat`` and of both routes."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for product in (torch.mm, linear):
        for _ in range(repeat + 2):
            synchronize(device)
            start = time.perf_counter()
            product(a, b)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    peak = gemm_peak(device)
    print(
        f"# rnnkit.nn explicit vs fused, forward+backward, fp32; {describe(device)}; "
        f"fp32 GEMM peak {peak / 1e9:.0f} GFLOP/s"
    )
    print(f"# python benchmarks/cells.py --device {args.device} --repeat {args.repeat}\n")
    print("| cell | B | T | H | fused ms | hand-written ms | autograd ms | hand-written/fused "
          "| autograd/fused | % GEMM peak: fused / hand-written / autograd |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, gates, make_explicit, make_fused in CASES:
        for batch, steps, hidden in SIZES:
            fused = make_fused(hidden).to(device)
            mine, old = (make_explicit(hidden, b).to(device) for b in ("handwritten", "autograd"))
            assert fused.fused and not mine.fused and mine.bptt == "handwritten"
            x = torch.randn(steps, batch, hidden, device=device)
            seconds = compare([fused, mine, old], x, args.repeat)
            flops = 2 * steps * batch * gates * hidden * (2 * hidden + 3 * hidden)
            share = " / ".join(f"{100 * flops / t / peak:.0f}" for t in seconds)
            t_fused, t_mine, t_old = seconds
            print(
                f"| {label} | {batch} | {steps} | {hidden} | {1e3 * t_fused:.2f} | "
                f"{1e3 * t_mine:.2f} | {1e3 * t_old:.2f} | **{t_mine / t_fused:.2f}** | "
                f"{t_old / t_fused:.2f} | {share} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
