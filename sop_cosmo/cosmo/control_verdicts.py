"""The verdicts of the controls: what the analysis of a planted data set must show to pass.

:func:`judge` applies the pass criteria of ``docs/controls.md`` to an analysis summary;
:func:`paired_gain` compares a trained SOP's groups with its untrained twin's, from the two
analyses' ``groups.h5``; :func:`planted_signs` gives the answer each control plants.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from sop_cosmo.cosmo.config import GROUP_TYPES
from sop_cosmo.cosmo.maths.bootstrap import paired_differences
from sop_cosmo.cosmo.maths.group_types import type_weights
from sop_cosmo.cosmo.maths.planted import CONTROL_KINDS

__all__ = ["judge", "paired_gain", "planted_signs"]

#: The planted sign of contribution(Ωm) − contribution(σ8) per type (positive control).
_PLANTED_SIGN: dict[str, int] = {"void": +1, "cluster": -1}


def _per_map_differences(
    groups_h5: str | os.PathLike,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per map and type, Σ_g∈type (w_Ωm − w_σ8), (N, 3), and each map's cosmology (N,), from
    an analysis' ``groups.h5``."""
    with h5py.File(groups_h5, "r") as f:
        weights, types = f["weights"][()], f["types"][()]
        cosmo_id = f["cosmo_id"][()]
        names = [str(n) for n in f.attrs["param_names"]]
    per_type = type_weights(weights, types)  # (N, P, 3)
    diff = per_type[:, names.index("Om")] - per_type[:, names.index("s8")]  # GROUP_TYPES order
    return diff, np.asarray(cosmo_id)


def paired_gain(
    trained_groups: str | os.PathLike, untrained_groups: str | os.PathLike, *, n_boot: int,
    seed: int,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Trained minus untrained difference per type, with a paired bootstrap CI over cosmologies.

    Both ``groups.h5`` files must come from analyses of the same maps (same order). For each
    map and type the difference is Σ_g∈type (w_Ωm − w_σ8); the gain is its mean over maps for
    the trained model minus the untrained one. The resamples draw test cosmologies, all maps
    of a drawn cosmology together, as the analysis does, and keep the trained/untrained pairs
    together (:func:`~sop_cosmo.cosmo.maths.bootstrap.paired_differences`).
    """
    (a, ids), (b, ids_b) = (_per_map_differences(p) for p in (trained_groups, untrained_groups))
    if a.shape != b.shape or not np.array_equal(ids, ids_b):
        raise ValueError(f"{trained_groups}, {untrained_groups}: analyses of different map sets "
                         f"({a.shape[0]} vs {b.shape[0]} maps)")  # fmt: skip
    value, ci = paired_differences(a, b, units=ids, n_boot=n_boot, seed=seed)  # (3,), (3, 2)
    return {
        t: {"value": float(value[i]), "ci95": [float(ci[i, 0]), float(ci[i, 1])],
            "trained": float(a[:, i].mean()), "untrained": float(b[:, i].mean())}
        for i, t in enumerate(GROUP_TYPES)
    }  # fmt: skip


def planted_signs(kind: str) -> dict[str, int]:
    """The planted sign of contribution(Ωm) − contribution(σ8) per type: positive as
    :data:`_PLANTED_SIGN`, swapped the opposite; the negative control plants none (empty)."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"kind: expected one of {CONTROL_KINDS}, got {kind!r}")
    flip = {"positive": 1, "swapped": -1}.get(kind, 0)
    return {t: flip * s for t, s in _PLANTED_SIGN.items()} if flip else {}


def _claimed(summary: dict[str, Any], group_type: str, sign: int) -> bool:
    """Whether the analysis claims a difference on ``group_type`` with that sign (> 0: Ωm)."""
    larger = "Om" if sign > 0 else "s8"
    return any(
        c["kind"] == "difference" and c["type"] == group_type and c["parameter"] == larger
        for c in summary.get("claims", [])
    )


def _passes_all_but_skill(summary: dict[str, Any], group_type: str) -> bool:
    """Whether a difference on ``group_type`` passes every claim gate except skill.

    The negative control's parameters are exchangeable, which caps each one's R² near 0.5: the
    skill gate alone would then keep every claim out, and the check could not fail.
    """
    return any(
        c["kind"] == "difference"
        and c["type"] == group_type
        and all(ok for gate, ok in c["gates"].items() if gate != "skill")
        for c in summary.get("claim_checks", [])
    )


def judge(kind: str, summary: dict[str, Any], gain: dict[str, Any] | None) -> dict[str, Any]:
    """Apply the pass criteria of ``docs/controls.md`` to an analysis summary.

    Positive and swapped: for each planted type (positive: void Ωm > σ8, cluster σ8 > Ωm;
    swapped: the reverse) the difference CI excludes 0 with the planted sign, the analysis
    states it as a claim (every gate of :func:`~sop_cosmo.cosmo.maths.claims.make_claims`
    passed), and the paired gain of the trained over the untrained SOP, signed the planted
    way, has a CI above 0. Negative: every type's difference CI includes 0 and no difference
    passes the claim gates, the skill gate set aside (:func:`_passes_all_but_skill`).
    """
    diffs = summary["differences"]
    checks: dict[str, bool] = {}
    signs = planted_signs(kind)
    if signs:
        if gain is None:
            raise ValueError(f"gain: the {kind} control needs the trained-vs-untrained gain")
        for t, sign in signs.items():
            lo, hi = diffs[t]["ci95"]
            checks[f"{t}_sign"] = bool(lo > 0) if sign > 0 else bool(hi < 0)
            checks[f"{t}_claimed"] = _claimed(summary, t, sign)
            glo, ghi = gain[t]["ci95"]
            checks[f"{t}_beats_untrained"] = bool(glo > 0) if sign > 0 else bool(ghi < 0)
    else:
        for t in GROUP_TYPES:
            lo, hi = diffs[t]["ci95"]
            checks[f"{t}_includes_zero"] = bool(lo <= 0 <= hi)
        checks["no_difference_claimable"] = not any(
            _passes_all_but_skill(summary, t) for t in GROUP_TYPES
        )
    return {"checks": checks, "passed": all(checks.values())}
