"""Regenerate the numbers tables of README.md from the results of a run of the current code.

Each table lives between two markers, written once by hand::

    <!-- numbers:NAME:start -->
    (generated; do not edit)
    <!-- numbers:NAME:end -->

and this script rewrites what is between them from the files under ``--results`` (what
``make demo`` writes):

``demo-models``
    test MSE and R² of every model, mean over training seeds (``evaluate/<model>/``).
``demo-analysis``
    selector contributions by group type with 95% CIs, the base rates, the Ωm − σ8
    differences, the active groups and the verdict (``analyze/summary.json``).
``demo-baselines``
    the "-F" table, best MSE first (``baselines/baselines.csv``).
``theory``
    worst-case insertion errors of the theory experiment (``theory/theory.csv``).

Usage::

    python scripts/readme_numbers.py                  # rewrite the blocks (make numbers)
    python scripts/readme_numbers.py --check          # exit 1 if a block is stale
    python scripts/readme_numbers.py --results R --file README.md --file docs/x.md
    python scripts/readme_numbers.py --theory T/theory.csv   # a longer `sop-cosmo theory` run

A missing results file exits 2 with one line naming it. Output depends only on the files'
content, so ``--check`` after ``make demo`` on the same code passes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["BLOCKS", "InputError", "main", "render", "rewrite"]

MODELS = ("cnn", "sop", "stats")
PARAM_LABELS = {"Om": "Ωm", "s8": "σ8"}
MARKER = re.compile(
    r"(<!-- numbers:(?P<name>[\w-]+):start -->\n)(?P<body>.*?)(<!-- numbers:(?P=name):end -->)",
    re.S,
)


class InputError(Exception):
    """A results file that is missing or unreadable; the message names it and the fix."""


def _num(value: float | None, digits: int = 3) -> str:
    """A table cell: fixed decimals, an em dash for undefined values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _ci(value: float, ci: Iterable[float]) -> str:
    low, high = ci
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def _label(param: str) -> str:
    return PARAM_LABELS.get(param, param)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{path} not found; run `make demo` first (or pass --results DIR)"
        ) from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path} is not readable JSON ({err}); rerun `make demo`") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise InputError(
            f"{path} not found; run `make demo` first (or pass --results DIR)"
        ) from None


def _mean(values: list[float | None]) -> float | None:
    # One undefined seed (R² of a constant target) makes the mean undefined, not optimistic.
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def demo_models(results: Path) -> str:
    """Test MSE and R² per model and parameter, mean over the seeds found."""
    rows, params = [], None
    for model in MODELS:
        folder = results / "evaluate" / model
        files = sorted(folder.glob("seed*/test_metrics.json")) or [folder / "test_metrics.json"]
        metrics = [_read_json(f) for f in files]
        params = params or list(metrics[0]["mse"])
        mse = [_mean([m["mse"][p] for m in metrics]) for p in params]
        r2 = [_mean([(m.get("r2") or {}).get(p) for m in metrics]) for p in params]
        rows.append([model, str(len(metrics)), *map(_num, mse), *map(_num, r2)])
    header = ["model", "seeds"]
    header += [f"test MSE {_label(p)}" for p in params]
    header += [f"R² {_label(p)}" for p in params]
    return _table(header, rows)


def demo_analysis(results: Path) -> str:
    """Contributions by group type against base rates, the differences, and the verdict."""
    s = _read_json(results / "analyze" / "summary.json")
    params = list(s["contributions"])
    header = ["group type", "base rate"]
    header += [f"{_label(p)} contribution [95% CI]" for p in params]
    pair = s.get("difference_params", params[:2]) if s.get("differences") else []
    if pair:  # the pair the analysis chose: Ωm − σ8, or first − second of two
        header.append(f"{_label(pair[0])} − {_label(pair[1])} [95% CI]")
    rows = []
    for kind, rate in s["group_type_rates"].items():
        row = [kind, _num(rate)]
        row += [
            _ci(s["contributions"][p][kind], s["contributions"][p]["ci95"][kind]) for p in params
        ]
        if pair:
            diff = s["differences"][kind]
            row.append(_ci(diff["value"], diff["ci95"]))
        rows.append(row)
    lines = [_table(header, rows), ""]
    facts = [f"{s['n_maps']} test maps"]
    if "mean_active_groups" in s and "n_groups" in s:
        active = ", ".join(f"{_label(p)} {_num(v, 1)}" for p, v in s["mean_active_groups"].items())
        facts.append(f"active groups of {s['n_groups']}: {active}")
    lines.append("; ".join(facts) + ".")
    claims = [_claim_text(c, s) for c in s.get("claims") or []]
    if claims:
        lines += ["", "Claims the analysis makes:", *(f"- {c}" for c in claims)]
    elif s.get("no_claim"):
        lines += ["", f"No claim: {s['no_claim'].rstrip('.')}."]
    null = results / "analyze_null_permuted" / "summary.json"
    if null.is_file():
        lines += ["", _null_line(_read_json(null))]
    return "\n".join(lines)


def _claim_text(claim: dict | str, s: dict) -> str:
    """A claim's text, with the same candidate's effect in the permuted-label null if one ran."""
    if not isinstance(claim, dict):
        return str(claim)
    key = ("type", "parameter", "compared_to")
    for check in s.get("claim_checks") or []:
        if all(check.get(k) == claim.get(k) for k in key) and check.get("null_value") is not None:
            return f"{claim['text']}; the permuted-label null gave {check['null_value']:+.3f}"
    return claim["text"]


def _null_line(s: dict) -> str:
    """The permuted-label null in one sentence: its skill and whether it claimed anything."""
    r2 = ", ".join(f"{_label(p)} {_num(v, 2)}" for p, v in s["skill"]["r2"].items())
    n = len(s.get("claims") or [])
    verdict = f"{n} claim(s), which the real run must not trust" if n else "no claim"
    sig = sum(1 for c in s.get("claim_checks") or [] if c["ci95"][0] > 0 or c["ci95"][1] < 0)
    return (
        f"Permuted-label null (the same pipeline on training labels shuffled across cosmologies, "
        f"one seed): SOP test R² {r2}; {verdict}. {sig} of "
        f"{len(s.get('claim_checks') or [])} candidate effects still have a 95% CI excluding 0 "
        "there: a CI alone does not make a finding, which is why claims need skill."
    )


def demo_baselines(results: Path) -> str:
    """The "-F" table: every method's MSE, purity and insertion/deletion AUC, best MSE first."""
    table = _read_csv(results / "baselines" / "baselines.csv")
    table.sort(key=lambda r: float(r["mse_mean"]))
    rows = [
        [r["method"], *(_num(float(r[k])) for k in ("mse_mean", "purity"))]
        + [_num(float(r[k])) for k in ("insertion_auc", "deletion_auc")]
        for r in table
    ]
    header = ["method", "MSE (mean of parameters)", "purity", "insertion AUC", "deletion AUC"]
    return _table(header, rows)


def theory(results: Path, csv_path: Path | None = None) -> str:
    """Worst-case insertion error per d: per-feature optimum and SOP's own groups."""
    path = csv_path or results / "theory" / "theory.csv"
    table = [r for r in _read_csv(path) if r["kind"] == "insertion"]
    by = {(r["function"], int(r["d"])): r for r in table}
    ds = sorted({d for f, d in by if f == "binomial"} or {d for _, d in by})

    def cell(function: str, d: int, column: str) -> str:
        row = by.get((function, d))  # a column of a newer experiment may be missing
        return _num(float(row[column])) if row and row.get(column) else "—"

    rows = [
        [
            str(d),
            cell("monomial", d, "per_feature_error"),
            cell("monomial", d, "grouped_error"),
            cell("binomial", d, "per_feature_error"),
            cell("binomial", d, "grouped_error"),
            cell("binomial", d, "grouped_error_budget_selector"),
            cell("binomial", d, "grouped_error_uniform_selector"),
        ]
        for d in ds
    ]
    header = ["d", "monomial: per-feature", "monomial: SOP", "binomial: per-feature",
              "binomial: SOP (learned selector)", "binomial: SOP (budget selector, 2 groups)",
              "binomial: SOP (uniform selector)"]  # fmt: skip
    return _table(header, rows)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "demo-models": demo_models,
    "demo-analysis": demo_analysis,
    "demo-baselines": demo_baselines,
    "theory": theory,
}


def render(name: str, results: Path, theory_csv: Path | None = None) -> str:
    """The generated text of block ``name``; ``theory_csv`` overrides the theory block's file."""
    if name not in BLOCKS:
        raise InputError(f"unknown numbers block {name!r}; known: {', '.join(BLOCKS)}")
    try:
        if name == "theory":
            return theory(results, theory_csv)
        return BLOCKS[name](results)
    except (KeyError, TypeError, ValueError) as err:
        # Results written by other code than this checkout's: a key or column is missing.
        raise InputError(
            f"block {name}: the files under {results} lack {err!r}; rerun `make demo`"
        ) from None


def rewrite(
    text: str, results: Path, theory_csv: Path | None = None
) -> tuple[str, dict[str, bool]]:
    """``text`` with every marked block regenerated, and {block name: whether it changed}."""
    changed: dict[str, bool] = {}

    def fill(match: re.Match) -> str:
        body = render(match["name"], results, theory_csv) + "\n"
        changed[match["name"]] = changed.get(match["name"], False) or body != match["body"]
        return match.group(1) + body + match.group(4)

    return MARKER.sub(fill, text), changed


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # never a half-written README


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status (0 ok, 1 stale in --check, 2 user error)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="results folder of the run (default: %(default)s)")  # fmt: skip
    ap.add_argument("--theory", type=Path,
                    help="the theory block's CSV (default: RESULTS/theory/theory.csv)")  # fmt: skip
    ap.add_argument("--file", type=Path, action="append",
                    help="file with marked blocks; repeatable (default: README.md)")  # fmt: skip
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a block differs from the results")  # fmt: skip
    args = ap.parse_args(argv)
    stale = 0
    try:
        for path in args.file or [Path("README.md")]:
            try:
                old = path.read_text()
            except OSError as err:
                raise InputError(f"{path}: {err.strerror}; pass an existing --file") from None
            new, changed = rewrite(old, args.results, args.theory)
            if not changed:
                raise InputError(f"{path} has no <!-- numbers:NAME:start --> block")
            differ = [name for name, c in changed.items() if c]
            if not differ:
                print(f"{path}: up to date ({', '.join(changed)})")
            elif args.check:
                stale += 1
                print(f"{path}: stale {', '.join(differ)} (differ from {args.results});"
                      " run `make numbers`")  # fmt: skip
            else:
                _write(path, new)
                print(f"{path}: rewrote {', '.join(differ)} from {args.results}")
    except InputError as err:
        print(f"readme_numbers: error: {err}", file=sys.stderr)
        return 2
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
