"""Findings of a void/cluster analysis in words: tables and prose derived from ``summary.json``.

The notebook ``notebooks/void_cluster_findings.ipynb`` calls these, so that no claim is written
into its text: every sentence is chosen by the numbers (a CI that excludes a value, or not).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sop_cosmo.cosmo.config import GROUP_TYPES
from sop_cosmo.cosmo.maths.planted import CONTROL_KINDS

__all__ = [
    "contribution_rows",
    "describe_baselines",
    "describe_controls",
    "describe_findings",
    "load_json",
]

_LABEL = {"Om": "Ωm", "s8": "σ8"}


def load_json(path: str | os.PathLike, *, what: str) -> dict[str, Any]:
    """Read a JSON file, with an error that names the file and what produces it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rerun {what}") from None


def _label(name: str) -> str:
    return _LABEL.get(name, name)


def _ci(ci: Any) -> str:
    lo, hi = ci
    return f"[{lo:.3f}, {hi:.3f}]"


def _params(summary: dict[str, Any]) -> list[str]:
    return list(summary["contributions"])


def contribution_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (parameter, group type): contribution, its 95% CI and the base rate.

    ``excess`` is contribution − base rate: the weight a type gets beyond its share of groups.
    """
    rates = summary["group_type_rates"]
    rows = []
    for p in _params(summary):
        block = summary["contributions"][p]
        for t in GROUP_TYPES:
            lo, hi = block["ci95"][t]
            rows.append(
                {
                    "parameter": p,
                    "type": t,
                    "contribution": block[t],
                    "ci_low": lo,
                    "ci_high": hi,
                    "base_rate": rates[t],
                    "excess": block[t] - rates[t],
                }
            )
    return rows


def _preference(value: float, ci: Any, rate: float) -> str:
    lo, hi = ci
    if lo > rate:
        return "more than its share of groups"
    if hi < rate:
        return "less than its share of groups"
    return "about its share of groups (the CI contains the base rate)"


def describe_findings(summary: dict[str, Any]) -> str:
    """Markdown prose on which structures each parameter relies, chosen by the CIs.

    A parameter *prefers* a type only when the contribution's CI lies wholly above the type's
    base rate; the parameters *differ* only when the paired CI of the difference excludes 0.
    """
    n = summary["n_maps"]
    rates = summary["group_type_rates"]
    params = _params(summary)
    lines = [
        f"**{n} test maps** were analysed. Of all SOP groups, "
        + ", ".join(f"{rates[t]:.1%} are {t}" for t in GROUP_TYPES)
        + ". These base rates are what a selector that ignores structure would give each type.",
        "",
    ]
    if n < 30:
        lines += [
            f"*Caution:* with only {n} maps the bootstrap CIs are rough; rerun on more maps "
            "before drawing conclusions.",
            "",
        ]
    for p in params:
        block = summary["contributions"][p]
        parts = [
            f"{t} groups get {block[t]:.3f} {_ci(block['ci95'][t])}, "
            f"{_preference(block[t], block['ci95'][t], rates[t])}"
            for t in GROUP_TYPES
        ]
        lines.append(f"- **{_label(p)}**: " + "; ".join(parts) + ".")
    lines.append("")
    diffs = summary.get("differences", {})
    if len(params) == 2 and diffs:
        a, b = (_label(p) for p in params)
        found = []
        for t in GROUP_TYPES:
            d = diffs[t]
            lo, hi = d["ci95"]
            if lo > 0:
                found.append(f"{a} relies more on {t} groups than {b} does")
            elif hi < 0:
                found.append(f"{b} relies more on {t} groups than {a} does")
            lines.append(
                f"- {t}: {a} − {b} = {d['value']:+.3f}, paired 95% CI {_ci(d['ci95'])}"
                + (" (excludes 0)" if lo > 0 or hi < 0 else " (includes 0)")
            )
        lines.append("")
        if found:
            lines.append("**Conclusion:** " + "; ".join(found) + ".")
        else:
            lines.append(
                f"**Conclusion:** no group type is used significantly differently by {a} and "
                f"{b} on these maps: every paired CI includes 0."
            )
    lines += ["", f"Purity (anchor definition): {summary['purity']:.3f}."]
    return "\n".join(lines)


def describe_baselines(rows: list[dict[str, Any]]) -> str:
    """Markdown comparison of SOP with the post-hoc "-F" baselines (lower MSE, higher purity).

    The random ranking is a floor to compare against, not a method, so it is never "the best".
    """
    if not rows:
        return "No baseline rows."
    by = {r["method"]: r for r in rows}
    others = [r for r in rows if r["method"] not in ("sop", "random")]
    lines = []
    if "sop" in by and others:
        sop = by["sop"]
        best_mse = min(others, key=lambda r: r["mse_mean"])
        best_pur = max(others, key=lambda r: r["purity"])
        verdict = "lower" if sop["mse_mean"] < best_mse["mse_mean"] else "higher"
        lines.append(
            f"SOP's MSE {sop['mse_mean']:.4g} is {verdict} than the best -F baseline "
            f"({best_mse['method']}, {best_mse['mse_mean']:.4g})."
        )
        verdict = "higher" if sop["purity"] > best_pur["purity"] else "lower"
        lines.append(
            f"SOP's purity {sop['purity']:.3f} is {verdict} than the best baseline's "
            f"({best_pur['method']}, {best_pur['purity']:.3f})."
        )
    lines.append(
        "For reference, the anchor paper reports SOP MSE 0.025 and purity 0.647, against SHAP-F "
        "MSE 0.028 and FullGrad-F purity 0.529, on other data."
    )
    return " ".join(lines)


def describe_controls(controls: dict[str, Any]) -> str:
    """Markdown verdicts of the positive and negative controls."""
    meaning = {
        "positive": (
            "the analysis recovers a planted preference at this size",
            "the analysis could not recover a planted preference: a null result on real data "
            "would then say little",
        ),
        "negative": (
            "the method itself creates no spurious difference between the parameters",
            "the method alone produces a difference: treat differences on real data with care",
        ),
    }
    lines = []
    for name in CONTROL_KINDS:
        if name not in controls:
            continue
        ok = bool(controls[name].get("passed"))
        lines.append(
            f"- **{name} control {'passed' if ok else 'FAILED'}**: "
            + meaning[name][0 if ok else 1]
            + "."
        )
    return "\n".join(lines) if lines else "No controls found."
