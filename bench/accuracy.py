"""Accuracy of SOP against the black-box CNN and the classical statistics, on one split.

    python bench/accuracy.py [--workdir bench/.accuracy] [--n-cosmologies 40] [--nside 128]

One run, same simulated grid, same split by cosmology, every model scored on the same test file:

1. ``sop-cosmo simulate`` a fixed grid (kept in the workdir and reused when its settings match);
2. ``sop-cosmo preprocess`` it into 4-bin patches with DES-Y3-like noise and smoothing;
3. train ``cnn``; ``sop`` around it (frozen backbone); ``stats`` on the classical statistics;
   and, as the lever docs/core.md names, a ``cnn`` trained on randomly masked inputs with an
   ``sop`` around that one too;
4. evaluate all on the test split and print MSEs (physical units) and the ratios
   SOP/CNN (target ≤ 1.15; the anchor paper had 2.9) and SOP/stats (target < 0.8).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.stages.evaluate import evaluate
from sop_cosmo.cosmo.stages.preprocess import preprocess
from sop_cosmo.cosmo.stages.simulate import simulate_grid
from sop_cosmo.cosmo.stages.train import train


def run_model(name: str, data: Path, runs: Path, config: TrainConfig) -> dict:
    start = time.perf_counter()
    run = runs / name
    train(data / "train.h5", data / "val.h5", run, config, progress=False)
    metrics = evaluate(run / "model.pt", data / "test.h5", run / "test_metrics.json")
    metrics["train_seconds"] = time.perf_counter() - start
    line = ", ".join(f"{k} {v:.5f}" for k, v in metrics["mse"].items())
    print(f"{name:>12}: test MSE {line}, mean {metrics['mse_mean']:.5f} "
          f"({metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="bench/.accuracy")
    parser.add_argument("--n-cosmologies", type=int, default=40)
    parser.add_argument("--n-perms", type=int, default=2)
    parser.add_argument("--nside", type=int, default=128)
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--centres-nside", type=int, default=4)
    parser.add_argument("--cnn-epochs", type=int, default=12)
    parser.add_argument("--sop-epochs", type=int, default=3)
    parser.add_argument("--stats-epochs", type=int, default=60)
    parser.add_argument("--groups", type=int, default=16)
    parser.add_argument("--keep", type=float, default=0.2, help="SOP keep fraction k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    work = Path(args.workdir)
    root, data, runs = work / "sim", work / "patches", work / "runs"
    simulate_grid(
        root, n_cosmologies=args.n_cosmologies, n_perms=args.n_perms, nside=args.nside,
        seed=args.seed, progress=False,
    )  # fmt: skip
    counts = preprocess(
        root, data, patch_size=args.patch_size, noise="des-y3", smoothing_arcmin=60.0,
        centres_nside=args.centres_nside, seed=args.seed, progress=False,
    )  # fmt: skip
    print(f"grid: {args.n_cosmologies} cosmologies x {args.n_perms} perms, nside {args.nside}; "
          f"patches {counts} of 4x{args.patch_size}^2 "
          f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip

    sop_options = {"attention_patch": 4, "n_groups": args.groups, "keep_fraction": args.keep}
    common = {"seed": args.seed, "device": "cpu", "checkpoint_every": 10_000, "patience": 5}
    cnn_opts = {"widths": [16, 32, 48], "hidden": [128, 64, 32]}
    masked_opts = {**cnn_opts, "mask_prob": 0.5, "mask_keep": args.keep, "mask_patch": 4}
    results = {}
    results["cnn"] = run_model("cnn", data, runs, TrainConfig(
        kind="cnn", epochs=args.cnn_epochs, model_options=cnn_opts, **common))  # fmt: skip
    results["stats"] = run_model("stats", data, runs, TrainConfig(
        kind="stats", epochs=args.stats_epochs, lr=1e-3, **common))  # fmt: skip
    results["sop"] = run_model("sop", data, runs, TrainConfig(
        kind="sop", epochs=args.sop_epochs, lr=3e-4, model_options=sop_options,
        backbone=str(runs / "cnn" / "model.pt"), **common))  # fmt: skip
    results["cnn_masked"] = run_model("cnn_masked", data, runs, TrainConfig(
        kind="cnn", epochs=args.cnn_epochs, model_options=masked_opts, **common))  # fmt: skip
    results["sop_masked"] = run_model("sop_masked", data, runs, TrainConfig(
        kind="sop", epochs=args.sop_epochs, lr=3e-4, model_options=sop_options,
        backbone=str(runs / "cnn_masked" / "model.pt"), **common))  # fmt: skip

    mse = {k: v["mse_mean"] for k, v in results.items()}
    print()
    print(f"SOP / CNN           = {mse['sop'] / mse['cnn']:.2f}   (target <= 1.15; anchor 2.9)")
    print(f"SOP / stats         = {mse['sop'] / mse['stats']:.2f}   (target < 0.8)")
    print(f"CNN / stats         = {mse['cnn'] / mse['stats']:.2f}")
    print(f"masked-trained backbone: SOP / CNN(plain) = {mse['sop_masked'] / mse['cnn']:.2f}, "
          f"SOP / stats = {mse['sop_masked'] / mse['stats']:.2f}, "
          f"CNN(masked) / CNN(plain) = {mse['cnn_masked'] / mse['cnn']:.2f}")  # fmt: skip
    print(f"SOP / its own backbone: plain {mse['sop'] / mse['cnn']:.2f}, "
          f"masked-trained {mse['sop_masked'] / mse['cnn_masked']:.2f}")  # fmt: skip
    best_sop, best_cnn = min(mse["sop"], mse["sop_masked"]), min(mse["cnn"], mse["cnn_masked"])
    print(f"best SOP / best CNN = {best_sop / best_cnn:.2f} (target <= 1.15); "
          f"best SOP / stats = {best_sop / mse['stats']:.2f} (target < 0.8)")  # fmt: skip
    for name in ("sop", "sop_masked"):
        info = results[name].get("sop", {})
        print(f"{name}: mean active groups {info.get('mean_active_groups', float('nan')):.1f} "
              f"of {info.get('n_groups', '?')}")  # fmt: skip
    summary = work / "summary.json"
    summary.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"total {time.perf_counter() - start:.0f} s; details in {summary}")


if __name__ == "__main__":
    main()
