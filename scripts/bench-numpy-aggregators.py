#!/usr/bin/env python3
"""numpy baseline for the coordinate-wise aggregators' criterion benchmarks.

Times, on float32 updates of shape (n, d) with rows = clients (the layout the
Rust benchmark reads):
  - median:       np.median(x, axis=0)
  - trimmed-mean: np.sort(x, axis=0)[k:n-k].mean(axis=0), k = floor(0.1 n)
and prints the median of several runs as milliseconds and as GB/s of input
read (n * d * 4 bytes / time), the unit of `cargo bench -p fedstake-aggregation
--bench aggregators`. numpy runs these on one core.

Install numpy first: scripts/install-bench-deps.sh, then
  .venv-bench/bin/python scripts/bench-numpy-aggregators.py
"""

import argparse
import statistics
import time

import numpy as np

TRIM_FRACTION = 0.1  # the same as the Rust benchmark's trimmed mean


def median(x):
    return np.median(x, axis=0)


def trimmed_mean(x):
    n = x.shape[0]
    k = int(TRIM_FRACTION * n)
    return np.sort(x, axis=0)[k : n - k].mean(axis=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case")
    parser.add_argument("--d", type=int, default=1_000_000, help="dimension")
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100], help="input counts")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, float32, median of {args.runs} runs")
    for n in args.n:
        x = rng.standard_normal((n, args.d), dtype=np.float32)
        read = x.nbytes
        for name, rule in [("median", median), ("trimmed-mean", trimmed_mean)]:
            rule(x)  # warm-up: page in, allocator
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                rule(x)
                times.append(time.perf_counter() - start)
            t = statistics.median(times)
            print(
                f"{name:>13} n={n:<4} d={args.d:<8} {t * 1e3:9.1f} ms  "
                f"{read / t / 1e9:6.3f} GB/s"
            )


if __name__ == "__main__":
    main()
