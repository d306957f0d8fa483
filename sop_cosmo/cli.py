"""The ``sop-cosmo`` command line. Each subcommand is a thin layer over one package function."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def _theory(args: argparse.Namespace) -> int:
    from sop_cosmo.theory import TheoryConfig, run_theory

    config = TheoryConfig(
        n_groups=args.groups, steps=args.steps, restarts=args.restarts, seed=args.seed
    )
    rows = run_theory(args.max_d, args.out, config, progress=not args.quiet)
    worst = [r for r in rows if r["kind"] == "insertion"]
    print(f"{'function':>9} {'d':>3} {'per-feature':>12} {'SOP':>8} {'SOP uniform':>12}")
    for r in worst:
        print(
            f"{r['function']:>9} {r['d']:>3} {r['per_feature_error']:>12.4f} "
            f"{r['grouped_error']:>8.4f} {r['grouped_error_uniform_selector']:>12.4f}"
        )
    print(f"wrote {args.out}/theory.csv and {args.out}/theory.png (insertion shown; see CSV)")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _simulate(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.simulate import simulate_grid

    vary = tuple(v for v in args.vary.split(",") if v) if args.vary else ()
    meta = simulate_grid(
        args.out,
        args.n_cosmologies,
        args.n_perms,
        args.nside,
        args.seed,
        progress=not args.quiet,
        vary=vary,
    )
    n = args.n_cosmologies * args.n_perms
    print(f"wrote {n} maps (nside {args.nside}) under {args.out}/CosmoGrid; metainfo {meta}")
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.patches import preprocess

    counts = preprocess(
        args.root,
        args.out,
        patch_size=args.patch_size,
        noise=args.noise,
        smoothing_arcmin=args.smoothing_arcmin,
        bins=args.bins,
        seed=args.seed,
        pixel_arcmin=args.pixel_arcmin,
        centres_nside=args.centres_nside,
        augment=args.augment,
        a_ia=args.a_ia,
        variant=args.variant,
        sets=args.sets.split(","),
        metainfo=args.metainfo,
        progress=not args.quiet,
    )
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"wrote {args.out}/{{train,val,test}}.h5: {summary} patches")
    return 0


def _train(args: argparse.Namespace) -> int:
    import logging

    from sop_cosmo.cosmo.train import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = TrainConfig(
        kind=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        compile=args.compile,
        checkpoint_every=args.checkpoint_every,
        backbone=args.backbone,
        model_options=json.loads(args.model_options) if args.model_options else {},
    )
    model = train(args.train, args.val, args.out, config, progress=not args.quiet)
    print(f"best checkpoint {model}; metrics {args.out}/metrics.jsonl")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.train import evaluate

    metrics = evaluate(args.checkpoint, args.data, args.out, device=args.device)
    print(json.dumps(metrics, indent=2))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.analysis import analyze

    summary = analyze(
        args.checkpoint,
        args.data,
        args.out,
        void_sigma=args.void_sigma,
        cluster_sigma=args.cluster_sigma,
        tau_void=args.tau_void,
        tau_cluster=args.tau_cluster,
        bin=args.bin,
        max_maps=args.max_maps,
        n_boot=args.n_boot,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        batch_size=args.batch_size,
    )
    for name, c in summary["contributions"].items():
        parts = ", ".join(
            f"{t} {c[t]:.3f} [{c['ci95'][t][0]:.3f}, {c['ci95'][t][1]:.3f}]"
            for t in ("void", "cluster", "other")
        )
        print(f"{name}: {parts}")
    rates = ", ".join(f"{t} {v:.3f}" for t, v in summary["group_type_rates"].items())
    print(f"group type rates: {rates}; purity {summary['purity']:.3f}; {summary['n_maps']} maps")
    print(f"wrote {args.out}/summary.json, groups.csv, groups.h5, threshold_sweep.csv, figures/")
    return 0


def _baselines(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.posthoc import run_baselines

    summary = run_baselines(
        args.checkpoint,
        args.data,
        args.out,
        methods=args.methods,
        max_maps=args.max_maps,
        keep_fraction=args.keep_fraction,
        n_samples=args.n_samples,
        ig_steps=args.ig_steps,
        seed=args.seed,
        device=args.device,
        void_sigma=args.void_sigma,
        cluster_sigma=args.cluster_sigma,
        tau_void=args.tau_void,
        tau_cluster=args.tau_cluster,
        bin=args.bin,
        id_steps=args.id_steps,
        progress=not args.quiet,
    )
    print(
        f"{'method':>22} {'mse_mean':>10} {'purity':>7} {'ins_auc':>8} {'del_auc':>8} {'s/map':>7}"
    )
    for name, r in summary["methods"].items():
        print(
            f"{name:>22} {r['mse_mean']:>10.5f} {r['purity']:>7.3f} {r['insertion_auc']:>8.4f} "
            f"{r['deletion_auc']:>8.4f} {r['seconds_per_map']:>7.3f}"
        )
    print(f"{summary['n_maps']} maps, keep fraction {summary['keep_fraction']}")
    print(f"wrote {args.out}/baselines.csv, baselines.json, figures/")
    return 0


def _controls(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.controls import run_controls

    result = run_controls(
        args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, threads=args.threads
    )
    for kind in ("positive", "negative"):
        r = result[kind]
        diffs = ", ".join(
            f"{t} {d['value']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            for t, d in r["differences"].items()
        )
        print(f"{kind}: {'passed' if r['passed'] else 'FAILED'}; Om - s8: {diffs}")
        failed = [name for name, ok in r["checks"].items() if not ok]
        if failed:
            print(f"  failed checks: {', '.join(failed)}")
    print(f"wrote {args.out}/controls.json and {args.out}/figures/controls.png "
          f"({result['seconds']:.0f} s)")  # fmt: skip
    return 0


def _vision_demo(args: argparse.Namespace) -> int:
    from sop_cosmo.vision.demo import run_demo

    metrics = run_demo(
        args.out, quick=args.quick, seed=args.seed, masking=args.masking, progress=not args.quiet
    )
    keys = ("backbone_test_accuracy", "sop_test_accuracy", "aucs", "runtime_s")
    print(json.dumps({k: metrics[k] for k in keys}, indent=2))
    print(f"wrote {args.out}/vision_metrics.json and {args.out}/vision_groups.png")
    return 0


def _text_demo(args: argparse.Namespace) -> int:
    from sop_cosmo.text.demo import run_demo

    metrics = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet)
    keys = (
        "bert_test_accuracy",
        "sop_test_accuracy",
        "sop_both_in_top_group_rate",
        "token_credit",
        "insertion_deletion_auc",
        "runtime_s",
    )
    print(json.dumps({k: metrics[k] for k in keys}, indent=2))
    print(f"wrote {args.out}/text_metrics.json and {args.out}/text_groups.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    parser = argparse.ArgumentParser(prog="sop-cosmo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "theory",
        help="per-feature LP optimum vs trained SOP on the monomial/binomial",
        description="Write theory.csv and theory.png: the smallest worst-case insertion/deletion "
        "error of any per-feature attribution (LP) next to a trained SOP's grouped error.",
    )
    p.add_argument("--max-d", type=int, default=12, help="largest d (default 12)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=1500, help="SOP training steps per fit")
    p.add_argument("--groups", type=int, default=4, help="SOP groups G")
    p.add_argument(
        "--restarts", type=int, default=1, help="fits per cell; lowest validation MSE kept"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_theory)

    p = sub.add_parser(
        "simulate",
        help="write a lognormal simulated grid in the CosmoGridV1 layout (offline)",
        description="Draw cosmologies (Sobol, Om-s8 polygon cut), simulate correlated "
        "lognormal convergence maps for 4 tomographic bins, and write them with a metainfo "
        "file in the exact CosmoGridV1 layout under OUT/CosmoGrid.",
    )
    p.add_argument("--out", required=True, help="ROOT folder to write CosmoGrid/ into")
    p.add_argument("--n-cosmologies", type=int, required=True)
    p.add_argument("--n-perms", type=int, default=1, help="maps per cosmology")
    p.add_argument("--nside", type=int, default=512, help="HEALPix nside (power of two)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vary", default="", help="also draw these, e.g. H0,Ob,ns,w0")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_simulate)

    p = sub.add_parser(
        "preprocess",
        help="cut CosmoGridV1 (or simulated) maps into train/val/test patch files",
        description="Read every map under ROOT, add noise and smoothing on the sphere, cut "
        "gnomonic patches and write DIR/{train,val,test}.h5, split by cosmology.",
    )
    p.add_argument("--root", required=True, help="folder containing CosmoGrid/")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--patch-size", type=int, required=True, help="pixels per patch side")
    p.add_argument("--noise", default="none", help="shape noise: none or des-y3")
    p.add_argument("--smoothing-arcmin", type=float, default=0.0, help="Gaussian FWHM")
    p.add_argument("--bins", type=_int_list, default=[1, 2, 3, 4], help="e.g. 1,2,3,4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pixel-arcmin", type=float, default=None, help="default: map pixel scale")
    p.add_argument("--centres-nside", type=int, default=None, help="patch centre grid")
    p.add_argument("--augment", action="store_true", help="random rot90/flip of train patches")
    p.add_argument("--a-ia", type=float, default=0.0, help="intrinsic-alignment amplitude")
    p.add_argument("--variant", default="nobaryons", help="nobaryons or baryonified")
    p.add_argument("--sets", default="grid", help="grid, fiducial or grid,fiducial")
    p.add_argument("--metainfo", default=None, help="default: ROOT/CosmoGrid/...metainfo.h5")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_preprocess)

    p = sub.add_parser(
        "train",
        help="train a cnn, sop or stats regressor of the parameters on patch files",
        description="Train on DIR/train.h5 with early stopping on DIR/val.h5; write RUN/model.pt "
        "(best), RUN/last.pt (resumable) and RUN/metrics.jsonl. Started again with the same "
        "arguments, a killed run resumes from RUN/last.pt.",
    )
    p.add_argument("--train", required=True, help="DIR/train.h5")
    p.add_argument("--val", required=True, help="DIR/val.h5")
    p.add_argument("--model", required=True, choices=["sop", "cnn", "stats"])
    p.add_argument("--out", required=True, help="run folder RUN")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone", default=None, help="RUN_CNN/model.pt (required for sop)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--model-options", default=None, help="JSON, e.g. '{\"n_groups\": 16}'")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the model on CUDA")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "evaluate",
        help="MSE per parameter (physical units) of a checkpoint on a patch file",
        description="Write {'mse': {...}, 'mse_mean': ..., 'n': ...} (plus SOP group statistics "
        "for sop models) to OUT.",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/model.pt")
    p.add_argument("--data", required=True, help="DIR/test.h5")
    p.add_argument("--out", required=True, help="RUN/test_metrics.json")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "analyze",
        help="void/cluster analysis of a trained SOP's groups on a patch file",
        description="Classify the SOP groups of each map as void, cluster or other on the "
        "physical κ of one bin, and write OUT/summary.json (contributions per parameter with "
        "bootstrap CIs, paired Om - s8 differences, purity), groups.csv, groups.h5, "
        "threshold_sweep.csv and figures/. See docs/analysis.md.",
    )
    p.add_argument("--checkpoint", required=True, help="RUN/model.pt of a sop run")
    p.add_argument("--data", required=True, help="DIR/test.h5")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--void-sigma", type=float, default=0.0, help="void pixel: κ < this·σ")
    p.add_argument("--cluster-sigma", type=float, default=3.0, help="cluster pixel: κ > this·σ")
    p.add_argument("--tau-void", type=float, default=0.6, help="min. void-pixel fraction")
    p.add_argument("--tau-cluster", type=float, default=0.015, help="min. cluster-pixel fraction")
    p.add_argument("--bin", type=int, default=-1, help="bin index to analyse (-1: last, highest z)")
    p.add_argument("--max-maps", type=int, default=None, help="at most N maps, spread evenly")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over maps")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=int, default=64, help="maps per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_analyze)

    p = sub.add_parser(
        "baselines",
        help="post-hoc -F baselines (captum, RISE) against the SOP: MSE, purity, ins./del.",
        description="Explain the SOP's frozen backbone with post-hoc methods per parameter, keep "
        "each method's top patches (the SOP's keep fraction) and predict with the backbone on "
        "them (-F). Write OUT/baselines.csv, baselines.json (MSE, purity, insertion/deletion "
        "AUC, seconds per map; SOP included) and figures/. See docs/baselines.md.",
    )
    p.add_argument("--checkpoint", required=True, help="RUN_SOP/model.pt of a sop run")
    p.add_argument("--data", required=True, help="DIR/test.h5")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--methods", default="all", help="all, or e.g. kernel_shap,rise,random")
    p.add_argument("--max-maps", type=int, default=32, help="at most N maps, spread evenly")
    p.add_argument(
        "--keep-fraction", type=float, default=None, help="default: the SOP's keep_fraction"
    )
    p.add_argument("--n-samples", type=int, default=200, help="KernelShap/Lime/RISE samples")
    p.add_argument("--ig-steps", type=int, default=50, help="IntegratedGradients steps")
    p.add_argument("--id-steps", type=int, default=None, help="ins./del. steps (default: 1/patch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--void-sigma", type=float, default=0.0, help="void pixel: κ < this·σ")
    p.add_argument("--cluster-sigma", type=float, default=3.0, help="cluster pixel: κ > this·σ")
    p.add_argument("--tau-void", type=float, default=0.6, help="min. void-pixel fraction")
    p.add_argument("--tau-cluster", type=float, default=0.015, help="min. cluster-pixel fraction")
    p.add_argument("--bin", type=int, default=-1, help="bin index for purity (-1: last)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_baselines)

    p = sub.add_parser(
        "controls",
        help="positive and negative controls of the void/cluster analysis on planted data",
        description="Plant a known preference (positive: Om in the voids, s8 in the peaks, both "
        "falling) or none (negative: Om and s8 exchangeable) into Gaussian random fields, train "
        "a CNN and an SOP on each, analyse them with the trained and the untrained SOP, and "
        "write OUT/controls.json (pass/fail and every number), OUT/figures/controls.png and "
        "OUT/{positive,negative}/. See docs/controls.md.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="about a minute on one CPU core")
    p.add_argument("--seed", type=int, default=0, help="seeds data, training and bootstraps")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: fastest here)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_controls)

    p = sub.add_parser(
        "vision-demo",
        help="SOP around a tiny ViT on scikit-learn's digits, against captum baselines",
        description="Train a tiny ViT and SOP on upsampled digits (offline, CPU) and write "
        "accuracy and insertion/deletion AUCs (vision_metrics.json) and a figure.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--masking",
        choices=("pixels", "tokens"),
        default="pixels",
        help="SOP hides a group's patches by blanking pixels or by dropping ViT tokens",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_vision_demo)

    p = sub.add_parser(
        "text-demo",
        help="SOP around a tiny BERT on the conjunction task, against captum baselines",
        description="Train a tiny BERT and SOP on 'label 1 iff words A and B both occur' "
        "(offline, CPU) and write accuracy, how often SOP's top group holds both words, "
        "per-token credit of IG/feature ablation/KernelSHAP and insertion/deletion AUCs "
        "(text_metrics.json) and a figure of the highlighted groups (text_groups.png).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="a short run (about 30 s on one core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_text_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sop-cosmo`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"sop-cosmo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
