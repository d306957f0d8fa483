"""The ``sop-cosmo`` command line. Each subcommand is a thin layer over one package function."""

from __future__ import annotations

import argparse
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
