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
* every seed's own value has the sign of the ensemble's.

:func:`make_claims` returns the claims, every candidate with the gates it passed, and the
reason when there is no claim. Pure: no file I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLAIM_TYPES", "PARAM_LABELS", "label", "make_claims"]

#: The group types statements are made about ("other" is what is left: 1 − void − cluster).
CLAIM_TYPES: tuple[str, ...] = ("void", "cluster")
#: How parameter names are written in statements.
PARAM_LABELS: dict[str, str] = {"Om": "Ωm", "s8": "σ8", "S8": "S8"}


def label(name: str) -> str:
    """The written name of a parameter (Ωm for "Om", σ8 for "s8"; others unchanged)."""
    return PARAM_LABELS.get(name, name)


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def _candidates(contrib: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement the numbers could support, with its value, CI and per-seed values."""
    seeds = contrib["per_seed"]
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
                "per_seed": [s["preference"][p][t]["value"] for s in seeds],
                "contribution": c, "base_rate": contrib["base_rates"][t],
                "text": f"{label(p)} gives {t} groups {more} weight than their share of groups: "
                        f"{c:.3f} against a base rate of {contrib['base_rates'][t]:.3f} "
                        f"(excess {d['value']:+.3f}, 95% CI {_ci(d['ci95'])} {over})",
            })  # fmt: skip
    return out


def make_claims(
    contrib: dict[str, Any], skill: dict[str, Any], *, min_cosmologies: int
) -> dict[str, Any]:
    """Apply the gates to every candidate statement.

    Parameters
    ----------
    contrib : dict
        The output of :func:`~sop_cosmo.cosmo.maths.bootstrap.contributions` (with
        ``per_seed``, ``n_units`` and ``n_seeds``).
    skill : dict
        The output of :func:`~sop_cosmo.cosmo.maths.skill.ensemble_skill`.
    min_cosmologies : int
        The fewest test cosmologies a claim may rest on.

    Returns
    -------
    dict
        ``claims`` (the candidates that pass every gate, each with ``kind``, ``type``,
        ``parameter``, ``compared_to``, ``value``, ``ci95``, ``per_seed``, ``text`` and
        ``n_cosmologies``, ``n_seeds``), ``claim_checks`` (every candidate with its
        ``gates`` and ``passed``) and ``no_claim`` (why there is none; None when there are
        claims).
    """
    n_units, n_seeds = int(contrib["n_units"]), int(contrib["n_seeds"])
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
        checks.append({**cand, "n_cosmologies": n_units, "n_seeds": n_seeds, "gates": gates,
                       "passed": all(gates.values())})  # fmt: skip
    claims = [{k: v for k, v in c.items() if k not in ("gates", "passed")}
              for c in checks if c["passed"]]  # fmt: skip
    return {"claims": claims, "claim_checks": checks, "no_claim": _reason(checks, skill, n_units,
            n_seeds, min_cosmologies) if not claims else None}  # fmt: skip


def _reason(
    checks: list[dict[str, Any]], skill: dict[str, Any], n_units: int, n_seeds: int,
    min_cosmologies: int,
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
    which = "; ".join(f"{c['kind']} {label(c['parameter'])}/{c['type']}" for c in excluding)
    return f"the CIs that exclude 0 ({which}) rest on seeds that disagree in sign"
