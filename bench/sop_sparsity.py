"""SOP/CNN test MSE against the mean number of active groups, on planted and lognormal data.

    python bench/sop_sparsity.py [--data planted lognormal] [--seeds 0 1 2]
                                 [--budgets 1 2 4 8 20] [--workdir bench/.sop_sparsity]
                                 [--model-options '{"keep_fraction": 0.4}']
                                 [--train-options '{"generator_lr_ratio": 0.3}']

For each data set and seed: one CNN with the CLI defaults, then one SOP per selector budget
(``active_groups``; the last budget equal to G keeps every group), all other options the CLI
defaults or ``--model-options`` (SOP options) and ``--train-options`` (training settings of
the SOPs, not of the CNN); ``--tag`` suffixes the SOP run folders and the CSV and PNG
names, so sweeps of other options sit side by side and share the CNN. Every model is scored on
the same test split. Writes ``sop_sparsity.csv`` (one row
per data set, seed and budget: test MSE per parameter, SOP/CNN, the constant predictor's MSE,
mean active groups, distinct masks and coverage on the test maps) and ``sop_sparsity.png``
(SOP/CNN against mean active groups, one line per data set, a band over seeds).

``planted`` is the positive control's data (:mod:`sop_cosmo.cosmo.maths.planted`): Ωm in the
voids and σ8 in the peaks, with falling dependences. ``lognormal`` is the built-in simulator,
cut into 4-bin 32-px patches as in the demo: without shape noise by default, because with
``--noise des-y3`` (and 60′ smoothing) Ωm has no skill on these patches and the ratio compares
two near-constant predictors.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from sop_cosmo.core import mean_group_diagnostics
from sop_cosmo.cosmo.config import NOISE_MODELS, SOPOptions, TrainConfig
from sop_cosmo.cosmo.dataset import Normalization, load_split
from sop_cosmo.cosmo.maths.planted import ControlSpec
from sop_cosmo.cosmo.models import load_model
from sop_cosmo.cosmo.stages.controls import write_control
from sop_cosmo.cosmo.stages.evaluate import evaluate
from sop_cosmo.cosmo.stages.preprocess import preprocess
from sop_cosmo.cosmo.stages.simulate import simulate_grid
from sop_cosmo.cosmo.stages.train import train


def make_data(kind: str, seed: int, out: Path, args: argparse.Namespace) -> Path:
    """The data set's split files under ``out`` (reused when present)."""
    if (out / "test.h5").exists():
        return out
    if kind == "planted":
        spec = ControlSpec(kind="positive", n_cosmologies=args.planted_cosmologies,
                           n_perms=4, patch_size=32, seed=seed)  # fmt: skip
        write_control(spec, out)
    else:
        sim = out.parent / "sim"
        simulate_grid(sim, n_cosmologies=args.lognormal_cosmologies, n_perms=2, nside=128,
                      seed=seed, progress=False)  # fmt: skip
        smoothing = 60.0 if args.noise != "none" else 0.0
        preprocess(sim, out, patch_size=32, noise=args.noise, smoothing_arcmin=smoothing,
                   centres_nside=4, seed=seed, progress=False)  # fmt: skip
    return out


@torch.no_grad()
def test_diagnostics(model_path: Path, test: Path) -> dict[str, float]:
    """Mean active groups, distinct masks and coverage over the test maps."""
    model, ckpt = load_model(model_path, "cpu")
    data = load_split(test, ckpt.kind, norm=Normalization.from_dict(ckpt.norm), in_memory=True)
    model.eval()
    return mean_group_diagnostics(
        model.explain(data.x[s : s + 256]) for s in range(0, len(data), 256)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["planted", "lognormal"],
                        choices=["planted", "lognormal"])  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=int, default=[1, 2, 4, 8, SOPOptions.n_groups])
    parser.add_argument("--planted-cosmologies", type=int, default=300)
    parser.add_argument("--lognormal-cosmologies", type=int, default=60)
    parser.add_argument("--noise", default="none", choices=sorted(NOISE_MODELS))
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument(
        "--model-options",
        type=json.loads,
        default={},
        help="JSON of SOP options applied to every budget (CLI defaults else)",
    )
    parser.add_argument(
        "--train-options",
        type=json.loads,
        default={},
        help='JSON of SOP training settings, e.g. {"generator_lr_ratio": 0.3} (CLI defaults else)',
    )
    parser.add_argument("--tag", default="", help="suffix of the SOP run folders and the CSV")
    parser.add_argument("--workdir", default="bench/.sop_sparsity")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread per run is fastest on shared cores

    work = Path(args.workdir)
    rows: list[dict] = []
    start = time.perf_counter()
    for kind in args.data:
        for seed in args.seeds:
            base = work / kind / f"seed{seed}"
            data = make_data(kind, seed, base / "data", args)
            split = {s: data / f"{s}.h5" for s in ("train", "val", "test")}
            common = {"seed": seed, "device": "cpu", "epochs": args.epochs}
            # one CNN per data set, seed and epoch count, shared by every SOP sweep (--tag)
            cnn_dir = base / f"cnn_e{args.epochs}"
            cnn = cnn_dir / "model.pt"
            if not cnn.exists():
                cnn = train(split["train"], split["val"], cnn_dir,
                            TrainConfig(kind="cnn", **common), progress=False)  # fmt: skip
            m_cnn = evaluate(cnn, split["test"], cnn_dir / "test_metrics.json", device="cpu")
            for budget in args.budgets:
                run = base / f"sop_k{budget}{args.tag}"
                options = {**args.model_options, "active_groups": budget}
                sop = train(split["train"], split["val"], run, TrainConfig(
                    kind="sop", backbone=str(cnn), model_options=options,
                    **{**common, **args.train_options}), progress=False)  # fmt: skip
                m = evaluate(sop, split["test"], run / "test_metrics.json", device="cpu")
                row = {"data": kind, "seed": seed, "budget": budget,
                       "sop_over_cnn": m["mse_mean"] / m_cnn["mse_mean"],
                       "mse_sop": m["mse_mean"], "mse_cnn": m_cnn["mse_mean"],
                       "mse_constant": float(np.mean(list(m["mse_constant"].values()))),
                       **{f"mse_sop_{p}": v for p, v in m["mse"].items()},
                       **{f"mse_cnn_{p}": v for p, v in m_cnn["mse"].items()},
                       **test_diagnostics(sop, split["test"])}  # fmt: skip
                rows.append(row)
                print(f"{kind:>9} seed {seed} budget {budget:>2}: SOP/CNN "
                      f"{row['sop_over_cnn']:.3f}, active {row['active_groups']:.2f}, "
                      f"distinct {row['distinct_masks']:.2f}, coverage {row['coverage']:.2f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    table = work / f"sop_sparsity{args.tag}.csv"
    tmp = table.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}, key=str))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(table)
    figure(rows, table.with_suffix(".png"))
    print(f"wrote {table} and {table.with_suffix('.png')} ({time.perf_counter() - start:.0f} s)")


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for kind in sorted({r["data"] for r in rows}):
        budgets = sorted({r["budget"] for r in rows if r["data"] == kind})
        cells = [[r for r in rows if r["data"] == kind and r["budget"] == b] for b in budgets]
        act = [np.mean([r["active_groups"] for r in cell]) for cell in cells]
        ratio = np.array([[r["sop_over_cnn"] for r in cell] for cell in cells])
        ax.plot(act, ratio.mean(1), "o-", label=f"{kind} ({ratio.shape[1]} seeds)")
        ax.fill_between(act, ratio.min(1), ratio.max(1), alpha=0.2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("mean active groups per map and parameter")
    ax.set_ylabel("SOP / CNN test MSE")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png.tmp"), format="png", dpi=120)
    path.with_suffix(".png.tmp").replace(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
