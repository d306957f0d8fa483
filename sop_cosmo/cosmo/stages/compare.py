"""Runs side by side: test skill per labelled run and model, and, with their analyses, how the
void/cluster effects and claims move from a reference run to the others.

The workflow uses it twice (docs/pipeline.md): the Gaussian-maps null against the lognormal run
(``results/nulls/gaussian_vs_lognormal.*``: how much of a finding needs non-Gaussian
structure) and the skill per noise level (``results/levels/skill_by_level.*``). The first label
is the reference; :func:`compare_runs` writes ``NAME.csv`` (one row per label, model and
parameter), ``NAME.png`` (R² against the label) and ``NAME.json`` (the same numbers, plus the
analyses' effects and claims when summaries are given).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sop_cosmo._io import atomic_path, load_json
from sop_cosmo.cosmo.figures_skill import skill_by_label
from sop_cosmo.cosmo.maths.claims import label

__all__ = ["SKILL_COLUMNS", "compare_runs", "describe_comparison", "skill_rows"]

#: Columns of ``NAME.csv``: R² and MSE against the constant (training-mean) predictor.
SKILL_COLUMNS: tuple[str, ...] = (
    "label", "model", "parameter", "r2", "mse", "mse_constant", "mse_over_constant", "n",
)  # fmt: skip
_METRICS_FIX = "give the test_metrics.json of `sop-cosmo evaluate`"
_SUMMARY_FIX = "give the summary.json of `sop-cosmo analyze`"


def skill_rows(metrics: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per label, model and parameter of ``{label: {model: test_metrics}}``.

    ``mse_over_constant`` is MSE / MSE of the constant predictor: below 1 the model beats
    always predicting the training mean. R² is None where the test targets are constant.
    """
    rows = []
    for name, models in metrics.items():
        for model, m in models.items():
            for p, mse in m["mse"].items():
                const = m["mse_constant"][p]
                rows.append({
                    "label": name, "model": model, "parameter": p, "r2": m["r2"][p],
                    "mse": mse, "mse_constant": const,
                    "mse_over_constant": mse / const if const else None, "n": m["n"],
                })  # fmt: skip
    return rows


def _candidate_key(c: Mapping[str, Any]) -> tuple[str, ...]:
    # a difference names its larger side first, so only its type identifies it
    if c["kind"] == "difference":
        return ("difference", c["type"])
    return ("preference", c["type"], c["parameter"])


def _candidate_name(key: tuple[str, ...], pair: list[str]) -> str:
    if key[0] == "difference":
        return f"{key[1]}: {label(pair[0])} − {label(pair[1])}"
    return f"{key[1]}: {label(key[2])} excess over the base rate"


def _analysis(summary: Mapping[str, Any], source: str) -> dict[str, Any]:
    """What one analysis found: its skill, candidates (value, CI, claimed) and claims."""
    if not isinstance(summary.get("claim_checks"), list):
        raise ValueError(f"{source}: no claim_checks; {_SUMMARY_FIX} (a current one)")
    claimed = {_candidate_key(c) for c in summary.get("claims", [])}
    candidates = {}
    for c in summary["claim_checks"]:
        key = _candidate_key(c)
        candidates[key] = {"value": c["value"], "ci95": c["ci95"], "claimed": key in claimed}
    return {
        "summary": source,
        "seeds": summary.get("seeds"),
        "skill": {k: summary["skill"][k] for k in ("r2", "passed") if k in summary["skill"]},
        "difference_params": summary.get("difference_params", []),
        "candidates": candidates,
        "claims": [c["text"] for c in summary.get("claims", [])],
        "no_claim": summary.get("no_claim"),
    }


def _effects(analyses: dict[str, dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Every candidate of the reference analysis with each run's value; ``retained`` is a
    run's value over the reference's (1: the effect does not move, 0: it is gone), None where
    the reference's CI includes 0 (there is no effect to keep)."""
    ref = analyses[reference]
    rows = []
    for key, base in ref["candidates"].items():
        lo, hi = base["ci95"]
        effect = lo > 0 or hi < 0
        row: dict[str, Any] = {"candidate": _candidate_name(key, ref["difference_params"]),
                               "kind": key[0], "type": key[1], "by_label": {}}  # fmt: skip
        if key[0] == "preference":
            row["parameter"] = key[2]
        for name, a in analyses.items():
            c = a["candidates"].get(key)
            if c is not None and name != reference:
                c = {**c, "retained": c["value"] / base["value"] if effect else None}
            row["by_label"][name] = c
        rows.append(row)
    return rows


def _plain_analysis(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if k != "candidates"}


def compare_runs(
    metrics: Mapping[str, Mapping[str, str | os.PathLike]],
    out_dir: str | os.PathLike,
    name: str,
    summaries: Mapping[str, str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/name.{csv,png,json}`` for the labelled runs.

    Parameters
    ----------
    metrics : mapping
        ``{label: {model: test_metrics.json}}``; the first label is the reference. Every label
        must have the same models.
    out_dir : path-like
        Output folder.
    name : str
        Stem of the three files.
    summaries : mapping, optional
        ``{label: summary.json}`` of each run's analysis (for every label or none): the JSON
        then also holds each analysis's skill and claims and ``effects``, every candidate of
        the reference analysis with each run's value, CI, whether it was claimed and the share
        of the reference's value it keeps (``retained``; None where the reference's CI
        includes 0).

    Returns
    -------
    dict
        What ``name.json`` holds: ``labels``, ``reference``, ``skill`` (the CSV's rows) and,
        with summaries, ``analyses`` and ``effects``.
    """
    labels = list(metrics)
    if not labels:
        raise ValueError("metrics: no run given; give at least one label, model and file")
    models = {n: sorted(m) for n, m in metrics.items()}
    if any(m != models[labels[0]] for m in models.values()):
        raise ValueError(f"metrics: the labels have different models ({models}); give the "
                         "same models for every label")  # fmt: skip
    if summaries and set(summaries) != set(labels):
        raise ValueError(f"summary: labels {sorted(summaries)} do not match the metrics' "
                         f"{labels}; give one summary per label, or none")  # fmt: skip
    read = {n: {m: load_json(p, what=_METRICS_FIX) for m, p in ms.items()}
            for n, ms in metrics.items()}  # fmt: skip
    rows = skill_rows(read)
    result: dict[str, Any] = {"labels": labels, "reference": labels[0], "skill": rows}
    if summaries:
        analyses = {n: _analysis(load_json(summaries[n], what=_SUMMARY_FIX), str(summaries[n]))
                    for n in labels}  # fmt: skip
        result["analyses"] = {n: _plain_analysis(a) for n, a in analyses.items()}
        result["effects"] = _effects(analyses, labels[0])
    out = Path(out_dir)
    with atomic_path(out / f"{name}.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SKILL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    skill_by_label(out / f"{name}.png", rows, labels)
    with atomic_path(out / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _r2(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.2f}"


def describe_comparison(result: Mapping[str, Any]) -> str:
    """Markdown: each run's test R² per model and parameter next to the reference's, then (with
    analyses) each reference claim's value in every run and whether that run claims it too."""
    ref, labels = result["reference"], result["labels"]
    r2 = {(r["label"], r["model"], r["parameter"]): r["r2"] for r in result["skill"]}
    lines = [f"**Test R²** ({', '.join(labels)}):", ""]
    for _, model, p in (k for k in r2 if k[0] == ref):
        values = ", ".join(f"{n} {_r2(r2.get((n, model, p)))}" for n in labels)
        lines.append(f"- {model} {label(p)}: {values}")
    if "effects" not in result:
        return "\n".join(lines)
    lines += ["", f"**Effects of the {ref} analysis in each run** (value, 95% CI, claimed):", ""]
    for row in result["effects"]:
        parts = []
        for n in labels:
            c = row["by_label"].get(n)
            if c is None:
                parts.append(f"{n} —")
                continue
            kept = f", keeps {c['retained']:.0%}" if c.get("retained") is not None else ""
            parts.append(f"{n} {c['value']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
                         f"{' claimed' if c['claimed'] else ''}{kept}")  # fmt: skip
        lines.append(f"- {row['candidate']}: " + "; ".join(parts))
    for n in labels:
        a = result["analyses"][n]
        verdict = f"{len(a['claims'])} claim(s)" if a["claims"] else f"no claim ({a['no_claim']})"
        lines.append(f"\n{n}: {verdict}.")
    return "\n".join(lines)
