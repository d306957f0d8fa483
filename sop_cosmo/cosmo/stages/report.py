"""Findings of a void/cluster analysis in words: tables and prose derived from ``summary.json``.

The notebook ``notebooks/void_cluster_findings.ipynb`` calls these, so that no claim is written
into its text: its findings are the summary's ``claims`` (the statements that passed every gate,
:mod:`sop_cosmo.cosmo.maths.claims`), and skill comes first.
"""

from __future__ import annotations

from typing import Any

from sop_cosmo._io import load_json
from sop_cosmo.cosmo.config import GROUP_TYPES
from sop_cosmo.cosmo.maths.claims import label as _label
from sop_cosmo.cosmo.maths.planted import CONTROL_KINDS

__all__ = [
    "contribution_rows",
    "describe_baselines",
    "describe_controls",
    "describe_findings",
    "describe_skill",
    "describe_type_base_rates",
    "load_json",
    "region_importance_rows",
    "type_base_rate_rows",
]


def _ci(ci: Any, fmt: str = ".3f") -> str:
    lo, hi = ci
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


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


def type_base_rate_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group type from ``type_base_rates``: its share of the SOP's selected groups
    next to the share of random masks of the same sizes on the same maps, and per parameter the
    type's weight share next to the same weights put on the random masks (empty for a summary
    without the block)."""
    block = summary.get("type_base_rates")
    if not block:
        return []
    ci = block.get("ci95")  # absent in summaries written before the CIs
    rows = []
    for t in GROUP_TYPES:
        row: dict[str, Any] = {
            "type": t,
            "selected groups": block["generator"][t],
            "random masks": block["random"][t],
            "groups − random": block["generator"][t] - block["random"][t],
        }
        if ci:
            row["95% CI"] = _ci(ci["groups"]["excess"][t], "+.3f")
        for p, shares in block["weighted"]["generator"].items():
            row[f"weight share {p}"] = shares[t]
            row[f"random, {p} weights"] = block["weighted"]["random"][p][t]
            if ci:
                row[f"{p} excess 95% CI"] = _ci(ci["weighted"][p]["excess"][t], "+.3f")
        rows.append(row)
    return rows


def describe_type_base_rates(summary: dict[str, Any]) -> str:
    """Markdown: the type shares of the selected groups against random masks of their sizes."""
    block = summary.get("type_base_rates")
    if not block:
        return "This summary has no random-mask base rates: rerun `sop-cosmo analyze`."
    gen, rand = block["generator"], block["random"]
    text = (
        f"Of the SOP's {block['n_selected_groups']} selected groups ({block['n_maps']} maps × "
        f"{block['n_seeds']} seed(s)), "
        + ", ".join(f"{gen[t]:.1%} are {t}" for t in GROUP_TYPES)
        + "; random masks with as many attention cells on the same maps, typed by the same "
        "rule, give "
        + ", ".join(f"{rand[t]:.1%} {t}" for t in GROUP_TYPES)
        + ". A type above its random share is picked out beyond what the group sizes give "
        "by chance"
    )
    ci = block.get("ci95")
    if not ci:
        return text + "."
    excess = ci["groups"]["excess"]
    above = [t for t in GROUP_TYPES if excess[t][0] > 0]
    below = [t for t in GROUP_TYPES if excess[t][1] < 0]
    return (
        text
        + "; groups − random, with 95% CIs over test cosmologies × seeds: "
        + ", ".join(f"{t} {gen[t] - rand[t]:+.1%} {_ci(excess[t], '+.1%')}" for t in GROUP_TYPES)
        + ". "
        + (f"Above chance: {', '.join(above)}. " if above else "No type is above chance. ")
        + (f"Below chance: {', '.join(below)}." if below else "")
    ).rstrip()


def region_importance_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (region type, parameter): ΔMSE when the region is replaced by the baseline
    and by the Gaussianised map, each with its 95% CI and its excess over as many random
    pixels, and the baseline − gaussianised difference (the importance that a Gaussian field
    of the same spectrum would also carry)."""
    sources = {"baseline": summary.get("region_importance") or {},
               "gaussianised": summary.get("region_importance_gaussianised") or {}}  # fmt: skip
    rows = []
    for t, per in sources["baseline"].items():
        for p, e in per.items():
            row: dict[str, Any] = {"region": t, "parameter": p, "replaced": e["area_fraction"]}
            for name, block in sources.items():
                if t not in block:
                    continue
                g = block[t][p]
                row[f"ΔMSE {name}"] = g["delta_mse"]
                row[f"{name} CI"] = "[{:.3g}, {:.3g}]".format(*g["ci95"])
                row[f"excess {name}"] = g["excess"]
                row[f"excess {name} CI"] = "[{:.3g}, {:.3g}]".format(*g["excess_ci95"])
            if t in sources["gaussianised"]:
                row["baseline − gaussianised"] = (
                    e["delta_mse"] - sources["gaussianised"][t][p]["delta_mse"]
                )
            rows.append(row)
    return rows


def _r2(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.2f}"


def describe_skill(summary: dict[str, Any]) -> str:
    """Markdown: the models' test skill, before anything they do is interpreted.

    R² per parameter (the mean over seeds, each seed's in brackets), the SOP's MSE next to the
    MSE of the constant training-mean predictor, and whether the skill gate passed.
    """
    skill = summary.get("skill")
    if skill is None:
        return "This summary predates the skill gate: rerun `sop-cosmo analyze`."
    boot = summary.get("bootstrap", {})
    lines = [
        f"**Skill** on {summary['n_maps']} test maps of {boot.get('n_cosmologies', '?')} "
        f"cosmologies, {skill['n_seeds']} training seed(s):",
        "",
    ]
    for p, r2 in skill["r2"].items():
        seeds = "/".join(_r2(v) for v in skill["r2_per_seed"][p])
        lines.append(
            f"- {_label(p)}: R² {_r2(r2)} (per seed {seeds}); MSE {skill['mse'][p]:.4g} "
            f"against {skill['mse_constant'][p]:.4g} for always predicting the training mean"
        )
    lines.append("")
    if skill["passed"]:
        lines.append(f"Every seed reaches R² ≥ {skill['min_r2']:g} on every parameter.")
    else:
        lines.append(
            f"**No skill:** not every seed reaches R² ≥ {skill['min_r2']:g} on every parameter, "
            "so the groups below belong to models that do not predict the parameters; they "
            "support no claim."
        )
    return "\n".join(lines)


def describe_findings(summary: dict[str, Any], *, skill: bool = True) -> str:
    """Markdown: skill first (``skill=False`` leaves it to :func:`describe_skill`), then the
    measured contributions, then the findings.

    The findings are the summary's ``claims`` word for word (the statements that passed every
    gate: skill, enough cosmologies, a CI over cosmologies × seeds that excludes 0, seeds that
    agree); with none, "No claim:" and the reason. Nothing else here states a finding.
    """
    n = summary["n_maps"]
    rates = summary["group_type_rates"]
    params = _params(summary)
    units = summary.get("type_units", "patch")
    typed = (
        f"in noise units (ν = κ/σ_noise) on bins {summary.get('typed_bins')}"
        if units == "noise" else f"with the per-patch rule on bin {summary.get('bin')}"
    )  # fmt: skip
    lines = [describe_skill(summary), ""] if skill else []
    lines += [
        f"**{n} test maps** were analysed; the groups are typed {typed}. Of all SOP groups, "
        + ", ".join(f"{rates[t]:.1%} are {t}" for t in GROUP_TYPES)
        + ". These base rates are what a selector that ignores structure would give each type.",
        "",
    ]
    for p in params:
        block = summary["contributions"][p]
        parts = [f"{t} {block[t]:.3f} {_ci(block['ci95'][t])}" for t in GROUP_TYPES]
        lines.append(f"- **{_label(p)}** weight on " + "; ".join(parts) + ".")
    diffs = summary.get("differences", {})
    if diffs:  # the pair the analysis chose (Ωm − σ8, or first − second of two)
        a, b = (_label(p) for p in summary.get("difference_params", params[:2]))
        for t in GROUP_TYPES:
            d = diffs[t]
            lines.append(f"- {t}: {a} − {b} = {d['value']:+.3f}, paired 95% CI {_ci(d['ci95'])}")
    lines += ["", "**Findings:**" if summary.get("claims") else ""]
    if "claims" not in summary:
        lines.append("No claim: this summary predates the claim gates; rerun `sop-cosmo analyze`.")
    elif summary["claims"]:
        lines += [f"- {c['text']}." for c in summary["claims"]]
    else:
        lines.append(f"No claim: {summary['no_claim']}.")
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


_GATE_REASONS = {
    "skill": "the SOP lacked skill (R² below the gate on some seed)",
    "cosmologies": "too few test cosmologies",
    "ci_excludes_zero": "the CI over cosmologies × seeds includes 0",
    "seeds_agree": "the training seeds disagree in sign",
}


def _stopping_gates(control: dict[str, Any], failed: list[str], quick: bool) -> str:
    """The claim gates that kept the planted differences out of the claims, in words."""
    gates = control.get("difference_gates")
    if gates is None:  # controls.json written before the gates were recorded
        skilled = control.get("skill", {}).get("passed", True)
        stopped = [] if skilled else ["skill"]
    else:
        types = [c.removesuffix("_claimed") for c in failed]
        stopped = [g for g in _GATE_REASONS
                   if any(not gates[t].get(g, True) for t in types if t in gates)]  # fmt: skip
    text = "; ".join(_GATE_REASONS[g] for g in stopped) or "a claim gate failed"
    if quick and "skill" in stopped:
        text += "; run the controls at the default size for a verdict"
    return text


def describe_controls(controls: dict[str, Any]) -> str:
    """Markdown verdicts of the planted controls (positive, negative, swapped)."""
    meaning = {
        "positive": (
            "the analysis recovers a planted preference at this size",
            "the analysis could not recover a planted preference: a null result on real data "
            "would then say little",
        ),
        "swapped": (
            "with the planted roles exchanged the verdict flips, so it follows the data",
            "the verdict did not flip with the planted roles: it may follow the method",
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
        control = controls[name]
        ok = bool(control.get("passed"))
        text = meaning[name][0 if ok else 1]
        failed = [c for c, v in control.get("checks", {}).items() if not v]
        if failed and all(c.endswith("_claimed") for c in failed):
            # the signs and gains held but no claim was made: name the gates that stopped it
            text = (
                "the planted signs were recovered and beat the untrained SOP, but the "
                "analysis (rightly) made no claim: "
                + _stopping_gates(control, failed, bool(controls.get("quick")))
            )
        lines.append(f"- **{name} control {'passed' if ok else 'FAILED'}**: {text}.")
    return "\n".join(lines) if lines else "No controls found."
