"""The ``sop-cosmo`` command line: a thin dispatcher over the pipeline stages.

Every stage's options are built from its config dataclass (:mod:`sop_cosmo.cosmo.config`), so
the defaults shown by ``--help`` are the ones the code and the workflow use. Each handler
builds the dataclass, calls one stage function and prints what it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sop_cosmo import _cli_checks as checks
from sop_cosmo._cli_checks import CHECKPOINT, OUT_DIR, OUT_FILE, PATCHES, ROOT, SOP_CHECKPOINT
from sop_cosmo._options import add_options, from_args
from sop_cosmo.cosmo import config as cfg

__all__ = ["TEXT_SUMMARY_KEYS", "VISION_SUMMARY_KEYS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _theory(args: argparse.Namespace) -> int:
    from sop_cosmo.theory import TheoryRunConfig, run_theory

    run = from_args(TheoryRunConfig, args)
    rows = run_theory(run.max_d, args.out, run.training(), progress=not args.quiet)
    print(f"{'function':>9} {'d':>3} {'per-feature':>12} {'SOP':>8} {'SOP budget':>11} "
          f"{'SOP uniform':>12}")  # fmt: skip
    for r in (r for r in rows if r["kind"] == "insertion"):
        print(
            f"{r['function']:>9} {r['d']:>3} {r['per_feature_error']:>12.4f} "
            f"{r['grouped_error']:>8.4f} {r['grouped_error_budget_selector']:>11.4f} "
            f"{r['grouped_error_uniform_selector']:>12.4f}"
        )
    print(f"wrote {args.out}/theory.csv and {args.out}/theory.png (insertion shown; see CSV)")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.simulate import simulate_grid

    config = from_args(cfg.SimulateConfig, args)
    meta = simulate_grid(args.out, config, progress=not args.quiet)
    n = config.n_cosmologies * config.n_perms
    if config.metainfo_only:
        print(f"wrote the metainfo of {config.n_cosmologies} cosmologies (no maps): {meta}")
    else:
        print(f"wrote {n} maps (nside {config.nside}) under {args.out}/CosmoGrid; metainfo {meta}")
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.preprocess import preprocess

    config = from_args(cfg.PreprocessConfig, args)
    counts = preprocess(args.root, args.out, config, chunk=args.chunk, progress=not args.quiet)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    what = "" if args.chunk is None else f" (chunk {args.chunk} of {config.chunks})"
    print(f"wrote {args.out}/{{train,val,test}}.h5{what}: {summary} patches")
    return 0


def _gather(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.preprocess import gather

    counts = gather(args.chunk_dirs, args.out, progress=not args.quiet)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"wrote {args.out}/{{train,val,test}}.h5 from {len(args.chunk_dirs)} chunks: {summary}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import logging

    from sop_cosmo.cosmo.stages.train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = from_args(cfg.TrainConfig, args)
    model = train(args.train, args.val, args.out, config, progress=not args.quiet)
    print(f"best checkpoint {model}; metrics {args.out}/metrics.jsonl")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.evaluate import evaluate

    metrics = evaluate(args.checkpoint, args.data, args.out, from_args(cfg.EvaluateConfig, args))
    print(json.dumps(metrics, indent=2))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.analyse import analyze
    from sop_cosmo.cosmo.stages.report import describe_findings

    config = from_args(cfg.AnalyzeConfig, args)
    summary = analyze(args.checkpoint, args.data, args.out, config, ensemble=args.ensemble,
                      progress=not args.quiet)  # fmt: skip
    print(describe_findings(summary))
    print(f"wrote {args.out}/summary.json, groups.csv, groups.h5, threshold_sweep.csv, figures/")
    return 0


def _baselines(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.attribute import run_baselines

    config = from_args(cfg.BaselinesConfig, args)
    summary = run_baselines(args.checkpoint, args.data, args.out, config, progress=not args.quiet)
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
    from sop_cosmo.cosmo.maths.planted import CONTROL_KINDS
    from sop_cosmo.cosmo.stages.controls import run_controls
    from sop_cosmo.cosmo.stages.report import describe_controls

    result = run_controls(args.out, from_args(cfg.ControlsConfig, args), progress=not args.quiet)
    print(describe_controls(result))
    for kind in CONTROL_KINDS:
        failed = [name for name, ok in result[kind]["checks"].items() if not ok]
        if failed:
            print(f"  {kind}: failed checks: {', '.join(failed)}")
    print(f"wrote {args.out}/controls.json and {args.out}/figures/controls.png "
          f"({result['seconds']:.0f} s)")  # fmt: skip
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sop_cosmo.cosmo.stages.compare import compare_runs, describe_comparison

    metrics: dict[str, dict[str, str]] = {}
    for name, model, path in args.metrics:
        metrics.setdefault(name, {})[model] = path
    summaries = dict(args.summary) if args.summary else None
    result = compare_runs(metrics, args.out, args.name, summaries)
    print(describe_comparison(result))
    print(f"wrote {args.out}/{args.name}.csv, {args.name}.png and {args.name}.json")
    return 0


def _demo_kwargs(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    # Options left out keep run_demo's own defaults (their one source).
    return {n: getattr(args, n) for n in names if hasattr(args, n)}


# What the demo commands print of their metrics: skill first, then the explanations' scores.
VISION_SUMMARY_KEYS = (
    "backbone_test_accuracy",
    "backbone_after_sop_test_accuracy",  # the SOP retrains the ViT unless it is frozen
    "sop_test_accuracy",
    "untrained_sop_test_accuracy",
    "aucs",
    "runtime_s",
)
TEXT_SUMMARY_KEYS = (
    "bert_test_accuracy",
    "sop_test_accuracy",
    "untrained_sop_test_accuracy",
    "sop_both_in_top_group_rate",
    "token_credit",
    "insertion_deletion_auc",
    "runtime_s",
)


def _vision_demo(args: argparse.Namespace) -> int:
    from sop_cosmo.vision.demo import run_demo

    kwargs = _demo_kwargs(args, ("seed", "masking"))
    metrics = run_demo(args.out, quick=args.quick, progress=not args.quiet, **kwargs)
    print(json.dumps({k: metrics[k] for k in VISION_SUMMARY_KEYS}, indent=2))
    print(f"wrote {args.out}/vision_metrics.json and {args.out}/vision_groups.png")
    return 0


def _text_demo(args: argparse.Namespace) -> int:
    from sop_cosmo.text.demo import run_demo

    kwargs = _demo_kwargs(args, ("seed",))
    metrics = run_demo(args.out, quick=args.quick, progress=not args.quiet, **kwargs)
    print(json.dumps({k: metrics[k] for k in TEXT_SUMMARY_KEYS}, indent=2))
    print(f"wrote {args.out}/text_metrics.json and {args.out}/text_groups.png")
    return 0


@dataclass(frozen=True)
class _Command:
    help: str
    description: str
    handler: Handler
    #: (flag, help, kind) of the files and folders the command reads and writes; all required,
    #: and checked before the command starts (:mod:`sop_cosmo._cli_checks`).
    paths: tuple[tuple[str, str, str], ...]
    config: type | None = None
    required: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    extra: Callable[[argparse.ArgumentParser], None] | None = None
    quiet: bool = True


def _theory_options(p: argparse.ArgumentParser) -> None:
    from sop_cosmo.theory import TheoryRunConfig

    add_options(p, TheoryRunConfig)


def _preprocess_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        metavar="I",
        help="cut only the maps of chunk I (0-based) of --chunks, for `sop-cosmo gather` "
        "(default: every map)",
    )


def _gather_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "chunk_dirs", nargs="+", metavar="CHUNK_DIR", help="the --out folder of every chunk"
    )


def _analyze_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ensemble",
        nargs="+",
        default=(),
        metavar="RUN/model.pt",
        help="SOP checkpoints of further training seeds, analysed with --checkpoint as one "
        "ensemble: CIs over test cosmologies × seeds (default: --checkpoint alone)",
    )


def _compare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", nargs=3, action="append", required=True,
                   metavar=("LABEL", "MODEL", "FILE"),
                   help="a test_metrics.json of `sop-cosmo evaluate` (repeat; the first label is "
                   "the reference, every label needs the same models)")  # fmt: skip
    p.add_argument("--summary", nargs=2, action="append", default=[], metavar=("LABEL", "FILE"),
                   help="the summary.json of a label's analysis, for every label or none "
                   "(default: none, skill only)")  # fmt: skip
    p.add_argument("--name", default="comparison", help="stem of the files (default: comparison)")


def _vision_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (default: off)")
    p.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="seed (default: 0)")
    p.add_argument(
        "--masking",
        choices=("pixels", "tokens"),
        default=argparse.SUPPRESS,
        help="SOP hides a group's patches by blanking pixels or dropping ViT tokens "
        "(default: pixels)",
    )


def _text_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help="a short run, about 30 s on one core (default: off)"
    )
    p.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="seed (default: 0)")


_COMMANDS: dict[str, _Command] = {
    "theory": _Command(
        "per-feature LP optimum vs trained SOP on the monomial/binomial",
        "Write theory.csv and theory.png: the smallest worst-case insertion/deletion error of "
        "any per-feature attribution (LP) next to a trained SOP's grouped error.",
        _theory,
        (("--out", "output directory", OUT_DIR),),
        extra=_theory_options,
    ),
    "simulate": _Command(
        "write a lognormal simulated grid in the CosmoGridV1 layout (offline)",
        "Draw cosmologies (Sobol, Om-s8 polygon cut), simulate correlated lognormal "
        "convergence maps for 4 tomographic bins, and write them with a metainfo file in the "
        "exact CosmoGridV1 layout under OUT/CosmoGrid (docs/contracts.md).",
        _simulate,
        (("--out", "ROOT folder to write CosmoGrid/ into", OUT_DIR),),
        config=cfg.SimulateConfig,
    ),
    "preprocess": _Command(
        "cut CosmoGridV1 (or simulated) maps into train/val/test patch files",
        "Read every map under ROOT, add noise and smoothing on the sphere, cut gnomonic "
        "patches and write DIR/{train,val,test}.h5, split by cosmology (docs/contracts.md).",
        _preprocess,
        (("--root", "folder containing CosmoGrid/", ROOT), ("--out", "output folder DIR", OUT_DIR)),
        config=cfg.PreprocessConfig,
        extra=_preprocess_options,
    ),
    "gather": _Command(
        "join the chunks of a scattered preprocess into train/val/test patch files",
        "Concatenate CHUNK_DIR/{train,val,test}.h5 of every chunk written by `sop-cosmo "
        "preprocess --chunks N --chunk I`, in chunk order, into DIR/{train,val,test}.h5: the "
        "same rows as one preprocess over every map. A missing or repeated chunk, or chunks "
        "made with other settings, are refused.",
        _gather,
        (("--out", "output folder DIR", OUT_DIR),),
        extra=_gather_options,
    ),
    "train": _Command(
        "train a cnn, sop or stats regressor of the parameters on patch files",
        "Train on DIR/train.h5 with early stopping on DIR/val.h5; write RUN/model.pt (best), "
        "RUN/last.pt (resumable) and RUN/metrics.jsonl. Started again with the same "
        "arguments, a killed run resumes from RUN/last.pt.",
        _train,
        (
            ("--train", "DIR/train.h5", PATCHES),
            ("--val", "DIR/val.h5", PATCHES),
            ("--out", "run folder RUN", OUT_DIR),
        ),
        config=cfg.TrainConfig,
        required=("kind",),
    ),
    "evaluate": _Command(
        "skill per parameter of a checkpoint on a patch file: MSE (physical units), R²",
        "Write {'mse': {...}, 'mse_mean': ..., 'n': ..., 'r2': {...}, 'mse_constant': {...}} "
        "(R² = 1 - MSE/Var(y); mse_constant: the MSE of always predicting the training mean; "
        "plus SOP group statistics for sop models) to OUT.",
        _evaluate,
        (
            ("--checkpoint", "RUN/model.pt", CHECKPOINT),
            ("--data", "DIR/test.h5", PATCHES),
            ("--out", "RUN/test_metrics.json", OUT_FILE),
        ),
        config=cfg.EvaluateConfig,
        quiet=False,
    ),
    "analyze": _Command(
        "void/cluster analysis of a trained SOP's groups on a patch file",
        "Score the SOP's skill (R², constant-predictor MSE), classify its groups on each map "
        "as void, cluster or other (in noise units ν = κ/σ_noise on every bin, or the per-patch "
        "rule on one bin), and write OUT/summary.json (skill; contributions per parameter with "
        "bootstrap CIs over test cosmologies and seeds; paired Om - s8 differences; purity; "
        "the claims that pass the gates), groups.csv, groups.h5, threshold_sweep.csv and "
        "figures/. See docs/analysis.md.",
        _analyze,
        (
            ("--checkpoint", "RUN/model.pt of a sop run", SOP_CHECKPOINT),
            ("--data", "DIR/test.h5", PATCHES),
            ("--out", "output folder", OUT_DIR),
        ),
        config=cfg.AnalyzeConfig,
        extra=_analyze_options,
    ),
    "baselines": _Command(
        "post-hoc -F baselines (captum, RISE) against the SOP: MSE, purity, ins./del.",
        "Explain the SOP's frozen backbone with post-hoc methods per parameter, keep each "
        "method's top patches (the SOP's keep fraction) and predict with the backbone on them "
        "(-F). Write OUT/baselines.csv, baselines.json (MSE, purity, insertion/deletion AUC, "
        "seconds per map; SOP included) and figures/. See docs/baselines.md.",
        _baselines,
        (
            ("--checkpoint", "RUN_SOP/model.pt of a sop run", SOP_CHECKPOINT),
            ("--data", "DIR/test.h5", PATCHES),
            ("--out", "output folder", OUT_DIR),
        ),
        config=cfg.BaselinesConfig,
    ),
    "controls": _Command(
        "positive, negative and swapped controls of the void/cluster analysis on planted data",
        "Plant a known preference (positive: Om in the voids, s8 in the peaks, both falling; "
        "swapped: the reverse) or none (negative: Om and s8 exchangeable) into Gaussian random "
        "fields, train a CNN and an SOP on each (three training seeds, each on planted maps of "
        "its own: about 30 min on one CPU thread; --quick: one seed, a minute), analyse them "
        "with the trained and the untrained SOP, and write OUT/controls.json, "
        "OUT/figures/controls.png and OUT/{positive,negative,swapped}/. See docs/controls.md.",
        _controls,
        (("--out", "output folder", OUT_DIR),),
        config=cfg.ControlsConfig,
    ),
    "compare": _Command(
        "test skill, and with analyses effects and claims, of several runs side by side",
        "Write OUT/NAME.csv (R², MSE and the constant predictor's MSE per label, model and "
        "parameter), OUT/NAME.png (R² against the label) and OUT/NAME.json (with --summary also "
        "every candidate effect of the first label's analysis in each run, and the claims). "
        "The workflow compares noise levels and the Gaussian-maps null this way.",
        _compare,
        (("--out", "output folder", OUT_DIR),),
        extra=_compare_options,
        quiet=False,
    ),
    "vision-demo": _Command(
        "SOP around a tiny ViT on scikit-learn's digits, against captum baselines",
        "Train a tiny ViT and SOP on upsampled digits (offline, CPU) and write accuracy and "
        "insertion/deletion AUCs (vision_metrics.json) and a figure.",
        _vision_demo,
        (("--out", "output folder", OUT_DIR),),
        extra=_vision_options,
    ),
    "text-demo": _Command(
        "SOP around a tiny BERT on the conjunction task, against captum baselines",
        "Train a tiny BERT and SOP on 'label 1 iff words A and B both occur' (offline, CPU) "
        "and write accuracy, how often SOP's top group holds both words, per-token credit of "
        "IG/feature ablation/KernelSHAP and insertion/deletion AUCs (text_metrics.json) and a "
        "figure of the highlighted groups (text_groups.png).",
        _text_demo,
        (("--out", "output folder", OUT_DIR),),
        extra=_text_options,
    ),
}


class _Parser(argparse.ArgumentParser):
    """An option error is one line (what is wrong, and where the help is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    parser = _Parser(prog="sop-cosmo", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the full traceback (default: off)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in _COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description)
        for flag, help_text, _kind in command.paths:
            p.add_argument(flag, required=True, help=help_text)
        if command.config is not None:
            add_options(p, command.config, required=command.required, skip=command.skip)
        if command.extra is not None:
            command.extra(p)
        if command.quiet:
            p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
        p.set_defaults(func=command.handler)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sop-cosmo")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sop-cosmo`` console script.

    A user error (a missing or wrong input, an unusable ``--out``, an unavailable device, a bad
    value) exits 2 with one line on stderr, after the inputs are checked and before anything is
    created; a folder the failed run created and left empty is removed. ``--debug`` re-raises.
    """
    args = build_parser().parse_args(argv)
    paths = _COMMANDS[args.command].paths
    try:
        with checks.remove_created_dirs(checks.out_path(args, paths)):
            checks.check_paths(args.command, args, paths)
            return args.func(args)
    except (ValueError, OSError) as err:
        if args.debug:
            raise
        print(f"sop-cosmo {args.command}: error: {checks.one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
