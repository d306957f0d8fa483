"""Which statements an analysis may make: the gates every claim must pass.

The analysis measures, per group type (void, cluster), how much more one parameter relies on
it than the other (the paired difference) and how much more weight each parameter gives it
than its share of groups (the preference). Each of these is a *candidate* statement; it
becomes a **claim** only when

* the models have skill: every training seed's test R² ≥ ``min_r2`` on every parameter
  (:func:`~sop_cosmo.cosmo.maths.skill.ensemble_skill`), since the groups of a model that
  predicts nothing explain nothing;
* the test set has at least ``min_cosmologies`` cosmologies (the bootstrap units; fewer give
  intervals that mean little);
* its 95% CI over test cosmologies × seeds excludes 0;
* every seed's own value has the sign of the ensemble's;
* when a null summary is given (the permuted-label null's analysis), its |value| exceeds the
  null's |value| for the same candidate, and the null made no claim at all.

Every candidate also carries the smallest effect the run could have detected
(:func:`detectable`): (z_0.975 + z_0.8) · SE, with SE the bootstrap standard error of that
quantity over cosmologies × seeds, i.e. 80% power at two-sided 5%. When there is no claim,
``no_claim`` says which gate stopped the candidates and what the run could have detected.

:func:`make_claims` returns the claims, every candidate with the gates it passed, and the
reason when there is no claim. Pure: no file I/O.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

__all__ = [
    "CLAIM_TYPES",
    "DETECTABLE_FACTOR",
    "PARAM_LABELS",
    "check_null_summary",
    "detectable",
    "label",
    "make_claims",
]

#: The group types statements are made about ("other" is what is left: 1 − void − cluster).
CLAIM_TYPES: tuple[str, ...] = ("void", "cluster")
#: How parameter names are written in statements.
PARAM_LABELS: dict[str, str] = {"Om": "Ωm", "s8": "σ8", "S8": "S8"}
#: z_{0.975} + z_{0.8} = 2.80: an effect this many SEs from 0 is detected (two-sided 5%) in
#: 80% of repeated runs, under a normal approximation of the bootstrap distribution.
DETECTABLE_FACTOR: float = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)


def label(name: str) -> str:
    """The written name of a parameter (Ωm for "Om", σ8 for "s8"; others unchanged)."""
    return PARAM_LABELS.get(name, name)


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def detectable(se: float | None, n_units: int) -> float | None:
    """The smallest |effect| the run could have detected: :data:`DETECTABLE_FACTOR` · SE.

    ``se`` is the bootstrap standard error of the quantity over cosmologies × seeds. None
    when it is unknown or rests on fewer than 2 test cosmologies (the bootstrap then sees no
    cosmology-to-cosmology variation, and an SE of ~0 would promise any effect detectable).
    """
    if se is None or int(n_units) < 2:
        return None
    return float(DETECTABLE_FACTOR * float(se))


def _key(c: dict[str, Any]) -> tuple[str, ...]:
    """Which candidate this is, whatever its sign (a difference names the larger side first)."""
    if c["kind"] == "difference":
        return ("difference", c["type"])
    return ("preference", c["type"], c["parameter"])


def check_null_summary(null: Any, source: str) -> dict[str, Any]:
    """``null`` checked to be an analysis summary with candidates; a one-line error otherwise.

    Raises
    ------
    ValueError
        Naming ``source`` (the file) when ``null`` lacks ``claims`` or ``claim_checks`` with
        finite values.
    """
    hint = "give the summary.json of the permuted-label null's analysis (sop-cosmo analyze)"
    if not isinstance(null, dict) or not isinstance(null.get("claim_checks"), list):
        raise ValueError(f"null_summary: {source} has no claim_checks; {hint}")
    if not isinstance(null.get("claims"), list):
        raise ValueError(f"null_summary: {source} has no claims list; {hint}")
    for c in null["claim_checks"]:
        if not (isinstance(c, dict) and {"kind", "type", "parameter", "value"} <= set(c)):
            raise ValueError(f"null_summary: {source}: a claim_checks entry lacks kind, type, "
                             f"parameter or value; {hint}")  # fmt: skip
    return null


def _candidates(contrib: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement the numbers could support, with its value, CI, SE and per-seed values."""
    seeds = contrib["per_seed"]
    se = contrib.get("se", {})
    over = f"over {contrib['n_units']} test cosmologies × {contrib['n_seeds']} seed(s)"
    out = []
    if "differences" in contrib:
        a, b = contrib["difference_params"]
        for t in CLAIM_TYPES:
            d = contrib["differences"][t]
            first, second = (a, b) if d["value"] >= 0 else (b, a)
            out.append({
                "kind": "difference", "type": t, "parameter": first, "compared_to": second,
                "value": d["value"], "ci95": d["ci95"],
                "se": se.get("differences", {}).get(t),
                "per_seed": [s["differences"][t]["value"] for s in seeds],
                "text": f"{label(first)} relies more on {t} groups than {label(second)} does: "
                        f"{label(a)} − {label(b)} = {d['value']:+.3f}, 95% CI {_ci(d['ci95'])} "
                        f"{over}",
            })  # fmt: skip
    for p, block in contrib["preference"].items():
        for t in CLAIM_TYPES:
            d = block[t]
            c = contrib["contributions"][p][t]
            more = "more" if d["value"] >= 0 else "less"
            out.append({
                "kind": "preference", "type": t, "parameter": p, "compared_to": "base_rate",
                "value": d["value"], "ci95": d["ci95"],
                "se": se.get("preference", {}).get(p, {}).get(t),
                "per_seed": [s["preference"][p][t]["value"] for s in seeds],
                "contribution": c, "base_rate": contrib["base_rates"][t],
                "text": f"{label(p)} gives {t} groups {more} weight than their share of groups: "
                        f"{c:.3f} against a base rate of {contrib['base_rates'][t]:.3f} "
                        f"(excess {d['value']:+.3f}, 95% CI {_ci(d['ci95'])} {over})",
            })  # fmt: skip
    return out


def make_claims(
    contrib: dict[str, Any],
    skill: dict[str, Any],
    *,
    min_cosmologies: int,
    null: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply the gates to every candidate statement.

    Parameters
    ----------
    contrib : dict
        The output of :func:`~sop_cosmo.cosmo.maths.bootstrap.contributions` (with
        ``per_seed``, ``n_units``, ``n_seeds`` and ``se``).
    skill : dict
        The output of :func:`~sop_cosmo.cosmo.maths.skill.ensemble_skill`.
    min_cosmologies : int
        The fewest test cosmologies a claim may rest on.
    null : dict, optional
        The summary of the permuted-label null's analysis (:func:`check_null_summary`). A
        candidate then passes the null gate only when its |value| exceeds the null's |value|
        for the same candidate, and none passes when the null made a claim. None: the gate is
        "not run" and does not stop a claim.

    Returns
    -------
    dict
        ``claims`` (the candidates that pass every gate, each with ``kind``, ``type``,
        ``parameter``, ``compared_to``, ``value``, ``ci95``, ``se``, ``detectable``,
        ``per_seed``, ``text`` and ``n_cosmologies``, ``n_seeds``), ``claim_checks`` (every
        candidate with its ``gates``, ``null_gate`` ("passed", "failed" or "not run"),
        ``null_value`` and ``passed``) and ``no_claim`` (why there is none, and what the run
        could have detected; None when there are claims).
    """
    n_units, n_seeds = int(contrib["n_units"]), int(contrib["n_seeds"])
    null_values = {_key(c): float(c["value"]) for c in null["claim_checks"]} if null else {}
    null_claimed = bool(null and null["claims"])
    checks = []
    for cand in _candidates(contrib):
        lo, hi = cand["ci95"]
        sign = _sign(cand["value"])
        gates = {
            "skill": bool(skill["passed"]),
            "cosmologies": n_units >= int(min_cosmologies),
            "ci_excludes_zero": bool(lo > 0 or hi < 0),
            "seeds_agree": sign != 0 and all(_sign(v) == sign for v in cand["per_seed"]),
        }
        null_value = null_values.get(_key(cand))
        if null is None:
            null_gate = "not run"
        elif null_value is None:  # the null has no such candidate: it cannot clear this one
            null_gate = "failed"
        else:
            beats = abs(cand["value"]) > abs(null_value)
            null_gate = "passed" if beats and not null_claimed else "failed"
        checks.append({**cand, "detectable": detectable(cand["se"], n_units),
                       "n_cosmologies": n_units, "n_seeds": n_seeds, "gates": gates,
                       "null_gate": null_gate, "null_value": null_value,
                       "passed": all(gates.values()) and null_gate != "failed"})  # fmt: skip
    drop = ("gates", "passed", "null_gate", "null_value")
    claims = [{k: v for k, v in c.items() if k not in drop} for c in checks if c["passed"]]
    if claims:
        return {"claims": claims, "claim_checks": checks, "no_claim": None}
    reason = _reason(checks, skill, n_units, n_seeds, min_cosmologies, null)
    if null_claimed and not reason.startswith("the permuted-label null"):
        reason += (f"; the permuted-label null made {len(null['claims'])} claim(s) too, so "
                   "nothing would be claimed")  # fmt: skip
    return {"claims": [], "claim_checks": checks,
            "no_claim": reason + _detectable_note(checks, contrib)}  # fmt: skip


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"{lo:.3f} to {hi:.3f}"


def _detectable_note(checks: list[dict[str, Any]], contrib: dict[str, Any]) -> str:
    """The note "; no evidence: the run could have detected ..." from the detectable sizes."""
    diff = [c for c in checks if c["kind"] == "difference" and c["detectable"] is not None]
    pref = [c["detectable"] for c in checks
            if c["kind"] == "preference" and c["detectable"] is not None]  # fmt: skip
    if not diff and not pref:
        if int(contrib["n_units"]) < 2:
            return (f"; no evidence, and no detectable size: it needs ≥ 2 test cosmologies "
                    f"(there are {int(contrib['n_units'])})")  # fmt: skip
        return "; no evidence (no bootstrap SE, so no detectable size)"
    parts = []
    if diff:
        a, b = (label(p) for p in contrib["difference_params"])
        by_type = " and ".join(f"{c['detectable']:.3f} ({c['type']})" for c in diff)
        parts.append(f"{a} − {b} differences of |Δ| ≥ {by_type}")
    if pref:
        parts.append(f"excesses over the base rate of |Δ| ≥ {_span(pref)}")
    return ("; no evidence: the run could have detected (80% power, two-sided 5%) "
            + " and ".join(parts))  # fmt: skip


def _reason(
    checks: list[dict[str, Any]], skill: dict[str, Any], n_units: int, n_seeds: int,
    min_cosmologies: int, null: dict[str, Any] | None,
) -> str:  # fmt: skip
    """One sentence: the first gate that stopped every candidate."""
    if not skill["passed"]:
        r2 = ", ".join(
            f"{label(p)} " + "/".join("undefined" if v is None else f"{v:.2f}" for v in vals)
            for p, vals in skill["r2_per_seed"].items()
        )
        return (
            f"the models have no skill to interpret: test R² per seed {r2}, and every seed "
            f"needs R² ≥ {skill['min_r2']:g} on every parameter"
        )
    if n_units < int(min_cosmologies):
        return (
            f"{n_units} test cosmologies are too few for a CI over cosmologies "
            f"(need ≥ {int(min_cosmologies)})"
        )
    excluding = [c for c in checks if c["gates"]["ci_excludes_zero"]]
    if not excluding:
        return (
            f"no 95% CI over {n_units} test cosmologies × {n_seeds} seed(s) excludes 0: no "
            "evidence that a parameter relies on voids or clusters more than the other, or "
            "more than their share of groups"
        )
    agreeing = [c for c in excluding if c["gates"]["seeds_agree"]]
    if not agreeing:
        which = "; ".join(f"{c['kind']} {label(c['parameter'])}/{c['type']}" for c in excluding)
        return f"the CIs that exclude 0 ({which}) rest on seeds that disagree in sign"
    if null is not None and null["claims"]:
        return (
            f"the permuted-label null made {len(null['claims'])} claim(s) (e.g. "
            f"{null['claims'][0].get('text', '?')}): the pipeline finds effects where the "
            "labels carry none, so nothing is claimed"
        )
    which = "; ".join(
        f"{c['kind']} {label(c['parameter'])}/{c['type']} |{c['value']:.3f}| vs "
        + ("none" if c["null_value"] is None else f"|{c['null_value']:.3f}|")
        for c in agreeing
    )
    return f"the effects that pass the other gates do not exceed the permuted-label null's: {which}"
