"""Forward+backward time of rnnkit's explicit cells against torch's fused kernels.

For each cell and (B, T, H), one layer with input size H: the time of ``out, h = layer(x);
out.sum().backward()``, explicit path (``fused=False``) and fused path on the same weights,
measured interleaved in one run (median of --repeat timings each), and their ratio.
The variants no kernel computes (peephole LSTM, reset-before GRU) are timed against the fused
plain LSTM/GRU of the same size.

    python benchmarks/cells.py                      # CPU, fp32, the table of RESULTS.md
    python benchmarks/cells.py --device cuda        # on a GPU
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from rnnkit.nn import GRU, LSTM, RNN

SIZES = [(20, 35, 200), (64, 50, 256), (32, 100, 512)]
# (row label, explicit layer, fused layer it is timed against)
CASES = [
    ("LSTM", lambda h: LSTM(h, h, fused=False), lambda h: LSTM(h, h)),
    ("GRU", lambda h: GRU(h, h, fused=False), lambda h: GRU(h, h)),
    ("RNN tanh", lambda h: RNN(h, h, fused=False), lambda h: RNN(h, h)),
    ("LSTM peephole", lambda h: LSTM(h, h, peephole=True), lambda h: LSTM(h, h)),
    ("GRU reset=before", lambda h: GRU(h, h, reset="before"), lambda h: GRU(h, h)),
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


def compare(
    explicit: torch.nn.Module, fused: torch.nn.Module, x: torch.Tensor, repeat: int
) -> tuple[float, float]:
    """Median seconds of each, timings interleaved so that machine noise hits both alike."""
    for _ in range(2):  # warm-up: allocator, oneDNN/cuDNN plans
        fwd_bwd_seconds(explicit, x), fwd_bwd_seconds(fused, x)
    explicit_times, fused_times = [], []
    for _ in range(repeat):
        explicit_times.append(fwd_bwd_seconds(explicit, x))
        fused_times.append(fwd_bwd_seconds(fused, x))
    return statistics.median(explicit_times), statistics.median(fused_times)


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
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    print(
        f"# rnnkit.nn explicit vs fused, forward+backward, fp32, {name}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"# python benchmarks/cells.py --device {args.device} --repeat {args.repeat}\n")
    print("| cell | B | T | H | explicit ms | fused ms | explicit/fused |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, make_explicit, make_fused in CASES:
        for batch, steps, hidden in SIZES:
            explicit, fused = make_explicit(hidden).to(device), make_fused(hidden).to(device)
            assert not explicit.fused and fused.fused
            x = torch.randn(steps, batch, hidden, device=device)
            t_explicit, t_fused = compare(explicit, fused, x, args.repeat)
            print(
                f"| {label} | {batch} | {steps} | {hidden} | {1e3 * t_explicit:.2f} | "
                f"{1e3 * t_fused:.2f} | {t_explicit / t_fused:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
