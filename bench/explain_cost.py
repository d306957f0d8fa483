"""Cost of one SOP explanation against KernelShap-200, IG-50 and Lime-200, side by side.

    python bench/explain_cost.py [--maps 6] [--repeats 2] [--threads 1] [--workdir DIR]

Self-contained: it writes small synthetic patch files in the project's format (66×66, one bin,
skewed log-normal-like fields whose amplitude follows σ8 and whose skewness follows Ωm), trains
the anchor's CNN on them (with random patch masking, docs/training.md) and an SOP around it (the
anchor's grid: 6-px attention patches, G = 20, k = 0.2), then measures on the same test maps:

* one SOP explanation: one forward pass of the SOP model (all G groups, their weights and
  contributions, for every parameter at once);
* KernelShap-200, IG-50 and Lime-200 on the SOP's frozen backbone, for one parameter (and,
  printed too, for all parameters, which is what a full explanation of the map needs).

The methods alternate map by map and repeat, so drift hits all of them alike; the medians are
compared. The target is SOP ≤ 1/20 of KernelShap-200. It then prints the deletion AUC of every
method on the same maps under the one patch rule of ``sop-cosmo baselines`` (higher is better),
and SOP's grouped deletion AUC over its own groups (ordered by |w·y|).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sop_cosmo.attribution.baselines import METHODS
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.contracts.patchfile import write_patch_file
from sop_cosmo.cosmo.dataset import Normalization, load_split
from sop_cosmo.cosmo.explain import MethodResult, backbone_forward, explain_map
from sop_cosmo.cosmo.models import load_model
from sop_cosmo.cosmo.stages.train import train

SIZE = 66
BENCH = {  # name -> (method, its settings)
    "KernelShap-200": ("kernel_shap", {"n_samples": 200}),
    "IG-50": ("integrated_gradients", {"n_steps": 50}),
    "Lime-200": ("lime", {"n_samples": 200}),
}


def synthetic_patches(path: Path, n: int, seed: int) -> None:
    """n patches (n, 1, 66, 66) in the patch-file layout of docs/contracts.md, physical units."""
    rng = np.random.default_rng(seed)
    om = rng.uniform(0.15, 0.45, n)
    s8 = rng.uniform(0.6, 1.0, n)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(SIZE), np.fft.fftfreq(SIZE), indexing="ij"))
    amp = np.where(k > 0, (k + 0.02) ** -1.5, 0.0)
    white = rng.standard_normal((n, SIZE, SIZE))
    g = np.fft.ifft2(np.fft.fft2(white) * amp).real
    g /= g.std(axis=(1, 2), keepdims=True)
    # Log-normal-like: the shift λ sets the skewness (Ωm), the amplitude follows σ8.
    lam = 0.5 + 4.0 * (om - 0.15)
    sigma = 0.3 * s8
    field = np.exp(sigma[:, None, None] * g - sigma[:, None, None] ** 2 / 2) - 1
    kappa = (0.02 * field / lam[:, None, None]).astype("f4")[:, None]
    write_patch_file(
        path,
        kappa=kappa,
        params=np.stack([om, s8], 1).astype("f4"),
        cosmo_id=np.arange(n, dtype="i8") + 100_000 * seed,
        param_names=["Om", "s8"],
        attrs={
            "pixel_arcmin": 2.0,
            "patch_size": SIZE,
            "nside": 2048,
            "bins": [1],
            "smoothing_arcmin": 0.0,
            "noise": "none",
            "source": "simulated",
        },
    )


def build(work: Path, seed: int, epochs: int) -> Path:
    """Train the CNN and the SOP; return the SOP checkpoint."""
    for i, (split, n) in enumerate([("train", 512), ("val", 64), ("test", 64)]):
        synthetic_patches(work / f"{split}.h5", n, seed + i)
    common = {"seed": seed, "device": "cpu", "checkpoint_every": 0, "batch_size": 32}
    cnn_opts = {"mask_prob": 0.5, "mask_keep": 0.2, "mask_patch": 6}
    train(work / "train.h5", work / "val.h5", work / "cnn",
          TrainConfig(kind="cnn", epochs=epochs, model_options=cnn_opts, **common),
          progress=False)  # fmt: skip
    sop_opts = {"attention_patch": 6, "n_groups": 20, "keep_fraction": 0.2}
    train(work / "train.h5", work / "val.h5", work / "sop",
          TrainConfig(kind="sop", epochs=1, lr=3e-4, model_options=sop_opts,
                      backbone=str(work / "cnn" / "model.pt"), **common),
          progress=False)  # fmt: skip
    return work / "sop" / "model.pt"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=6, help="test maps to explain")
    parser.add_argument("--repeats", type=int, default=2, help="timing rounds per map")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=4, help="CNN epochs (SOP: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # KernelShap's least-squares fit runs in scipy's BLAS, whose own thread pool ignores torch's
    # setting: on a shared machine an unbounded pool makes it several times slower. The
    # libraries must be loaded before their pools can be limited.
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    threadpool_limits(limits=args.threads)
    start = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt_path = build(work, args.seed, args.epochs)
        model, ckpt = load_model(ckpt_path, "cpu")
        norm = Normalization.from_dict(ckpt.norm)
        test = load_split(work / "test.h5", "sop", norm=norm)
        print(f"built synthetic data and models in {time.perf_counter() - start:.0f} s "
              f"(torch threads {torch.get_num_threads()})", flush=True)  # fmt: skip

        bb, forward = backbone_forward(model)
        grid = {"patch_size": bb.patch_size, "baseline": float(bb.baseline)}
        explainers = {
            name: METHODS[method].from_settings(forward, **settings)
            for name, (method, settings) in BENCH.items()
        }
        x = test.x[: args.maps]
        n_out = int(bb.n_outputs)

        def sop_once(xi: torch.Tensor) -> None:
            with torch.no_grad():
                model.explain(xi[None])

        def method_once(xi: torch.Tensor, name: str, seed: int) -> None:
            explainers[name].attribute(xi, 0, seed=seed, **grid)

        sop_once(x[0])  # warm-up: first calls pay for lazy imports and allocations
        for name in BENCH:
            method_once(x[0], name, 0)
        times: dict[str, list[float]] = {"SOP": [], **{name: [] for name in BENCH}}
        for r in range(args.repeats):
            for i, xi in enumerate(x):
                times["SOP"].append(timed(lambda xi=xi: sop_once(xi)))
                for name in BENCH:
                    times[name].append(
                        timed(lambda xi=xi, name=name, s=i + r: method_once(xi, name, s))
                    )
        med = {k: statistics.median(v) for k, v in times.items()}

        print(f"\nwall time per map, median of {args.maps} maps x {args.repeats} rounds")
        print(f"{'method':>16} {'ms (1 param)':>13} {'ms (all ' + str(n_out) + ')':>12} "
              f"{'/ SOP (1 param)':>16} {'/ SOP (all)':>12}")  # fmt: skip
        print(f"{'SOP (forward)':>16} {1e3 * med['SOP']:>13.1f} {1e3 * med['SOP']:>12.1f} "
              f"{1.0:>16.1f} {1.0:>12.1f}")  # fmt: skip
        for name in BENCH:
            ms, rel = 1e3 * med[name], med[name] / med["SOP"]
            print(f"{name:>16} {ms:>13.1f} {n_out * ms:>12.1f} {rel:>16.1f} {n_out * rel:>12.1f}")
        ratio = med["KernelShap-200"] / med["SOP"]
        print(f"backbone passes: SOP {model.n_groups} masked inputs + 1 feature pass for all "
              f"{n_out} parameters at once; per parameter, KernelShap/Lime 200 + a "
              "least-squares fit, IG 50 forwards and backwards")  # fmt: skip
        for label, r in (("one parameter", ratio), (f"all {n_out} parameters", n_out * ratio)):
            verdict = "met" if r >= 20 else "NOT met"
            print(f"SOP = 1/{r:.1f} of KernelShap-200 explaining {label}; "
                  f"target <= 1/20: {verdict}")  # fmt: skip

        # Deletion AUCs on the same maps under the one patch rule of `sop-cosmo baselines`.
        k = float(ckpt.options["keep_fraction"])
        results = {name: MethodResult() for name in ("sop", *(m for m, _ in BENCH.values()))}
        for i, xi in enumerate(x):
            for method, res in results.items():
                explain_map(method, model, xi, res, keep_fraction=k, n_samples=200,
                            ig_steps=50, seed=args.seed + i)  # fmt: skip
        print(f"\ndeletion AUC over {args.maps} maps (squared error to the full prediction, "
              "standardised units; higher is better)")  # fmt: skip
        labels = {"sop": "SOP", **{m: name for name, (m, _) in BENCH.items()}}
        for method, res in results.items():
            d = np.stack(res.aucs["deletion"])
            print(f"{labels[method]:>16} patch rule {d.mean():.4f} "
                  f"(per parameter {', '.join(f'{v:.4f}' for v in d.mean(0))})")  # fmt: skip
        g = np.stack(results["sop"].aucs["grouped_deletion"])
        per = ", ".join(f"{v:.4f}" for v in g.mean(0))
        print(f"{'SOP':>16} grouped over its own G=20 groups (x = fraction of groups) "
              f"{g.mean():.4f} (per parameter {per})")  # fmt: skip
        masks = np.stack(results["sop"].masks)  # (N, G, gh, gw)
        cover = masks.any(1).reshape(len(masks), -1).mean(1).mean()
        distinct = np.mean([len(np.unique(m.reshape(len(m), -1), axis=0)) for m in masks])
        print(f"{'':>16} (the union of all SOP groups covers {cover:.2f} of the patches; "
              f"{distinct:.1f} distinct masks of 20 per map)")  # fmt: skip
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
