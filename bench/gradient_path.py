"""Ablation of the generator's gradient path: straight-through top-k vs the anchor's gate.

    python bench/gradient_path.py [--dims 3 5 8 9] [--seeds 3] [--steps 1500]

Both variants train the same SOP (uniform selector, so only the generator is tested) on the
binomial of :mod:`sop_cosmo.theory`, side by side with the same seeds. Printed per d: how many
seeds recovered exactly the two product terms, and the mean worst-case insertion error.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sop_cosmo.theory import TheoryConfig, binomial, grouped_error, train_sop

MODES = ("ste", "anchor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[3, 5, 8, 9])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    totals = {m: 0 for m in MODES}
    print(f"{'d':>3} " + " ".join(f"{m + ' found':>12} {m + ' err':>10}" for m in MODES))
    start = time.perf_counter()
    for d in args.dims:
        poly = binomial(d)
        terms = {tuple(t) for t in poly.terms}
        cells = []
        for mode in MODES:
            found, errors = 0, []
            for seed in range(args.seeds):
                cfg = TheoryConfig(steps=args.steps, selector="uniform", mask_mode=mode, seed=seed)
                fit = train_sop(poly, cfg)
                found += fit.active_groups() == terms
                errors.append(grouped_error(poly, fit.groups, fit.alpha, kind="insertion").worst)
            totals[mode] += found
            cells.append(f"{found:>6}/{args.seeds:<5} {np.mean(errors):>10.3f}")
        print(f"{d:>3} " + " ".join(cells), flush=True)
    n = len(args.dims) * args.seeds
    print("terms recovered: " + ", ".join(f"{m} {totals[m]}/{n}" for m in MODES)
          + f" ({time.perf_counter() - start:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
