"""Training throughput on streamed patches against the same patches in RAM (page cache warm).

    python bench/stream_throughput.py [--n 4096] [--size 66] [--bins 4] [--steps 100] [--repeats 3]

One patch file; the file is read once first so the OS page cache holds it. Then the same short
training run (bench/_train_steps.py: the CNN, seeded batch order, batch 32, one thread) runs
alternately streamed and in RAM, each in a fresh process, ``repeats`` times. Printed: samples/s
of the training steps of each (median) and streamed / in-RAM (target ≥ 0.8), and the load
times (the statistics pass for the streamed path, the read for the in-RAM one).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _train_steps import write_split  # bench/ is on sys.path when this script runs
from memory_scale import child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--size", type=int, default=66)
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = write_split(Path(tmp) / "train.h5", args.n, bins=args.bins, size=args.size)
        val = write_split(Path(tmp) / "val.h5", 256, bins=args.bins, size=args.size, seed=1)
        for path in (train, val):
            path.read_bytes()  # warm the page cache
        rate: dict[bool, list[float]] = {False: [], True: []}
        load: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for in_memory in (False, True):
                r = child(train, val, in_memory, args)
                rate[in_memory].append(r["samples_per_s"])
                load[in_memory].append(r["load_s"])
    mb = args.n * args.bins * args.size**2 * 4 / 2**20
    shape = f"{args.bins}x{args.size}x{args.size}"
    print(f"{args.n} patches of {shape} ({mb:.0f} MiB), {args.steps} steps of batch "
          f"{args.batch}, 1 thread, {args.repeats} runs each")  # fmt: skip
    med = {k: statistics.median(v) for k, v in rate.items()}
    for in_memory, name in ((False, "streamed"), (True, "in-RAM  ")):
        runs = ", ".join(f"{v:.0f}" for v in rate[in_memory])
        print(f"{name}: {med[in_memory]:.0f} samples/s (runs {runs}); "
              f"load {statistics.median(load[in_memory]):.2f} s")  # fmt: skip
    print(f"streamed / in-RAM throughput = {med[False] / med[True]:.3f} (target >= 0.8)")


if __name__ == "__main__":
    main()
