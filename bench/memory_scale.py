"""Peak memory of a short training run at 1x, 4x and 16x the patches: streamed against in-RAM.

    python bench/memory_scale.py [--base 4096] [--size 32] [--bins 4] [--steps 50] [--batch 32]

One patch file per size (base × 1, 4, 16 random patches of bins × size² float32) and one val
file of 512; each run is a fresh process (bench/_train_steps.py: load_split, the CNN, the same
steps at the same batch, then validation) whose own peak RSS (getrusage) is reported.
Printed: peak RSS per size and path, and 16x / 1x for each (target for the streamed default:
≤ 1.3). The in-RAM rows show what streaming saves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _train_steps import write_split  # bench/ is on sys.path when this script runs

HERE = Path(__file__).resolve().parent
SCALES = (1, 4, 16)


def child(train: Path, val: Path, in_memory: bool, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(HERE / "_train_steps.py"), "--train", str(train),
           "--val", str(val), "--steps", str(args.steps), "--batch", str(args.batch)]  # fmt: skip
    if in_memory:
        cmd.append("--in-memory")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=4096, help="patches at 1x")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    mb = args.base * args.bins * args.size**2 * 4 / 2**20
    print(f"1x = {args.base} patches of {args.bins}x{args.size}x{args.size} float32 "
          f"({mb:.0f} MiB of kappa); {args.steps} steps of batch {args.batch}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        val = write_split(folder / "val.h5", 512, bins=args.bins, size=args.size, seed=99)
        rss: dict[tuple[bool, int], float] = {}
        for scale in SCALES:
            train = write_split(folder / f"train{scale}.h5", scale * args.base,
                                bins=args.bins, size=args.size, seed=scale)  # fmt: skip
            for in_memory in (False, True):
                r = child(train, val, in_memory, args)
                rss[in_memory, scale] = r["peak_rss_mb"]
                path = "in-RAM  " if in_memory else "streamed"
                rate = f"load {r['load_s']:.2f} s, {r['samples_per_s']:.0f} samples/s"
                print(f"{scale:>3}x {r['n']:>7} patches  {path}  "
                      f"peak RSS {r['peak_rss_mb']:7.1f} MiB  ({rate})")  # fmt: skip
            train.unlink()
    for in_memory, name in ((False, "streamed"), (True, "in-RAM")):
        ratio = rss[in_memory, 16] / rss[in_memory, 1]
        note = " (target <= 1.3)" if not in_memory else ""
        print(f"{name}: peak RSS 16x / 1x = {ratio:.3f}{note}")


if __name__ == "__main__":
    main()
