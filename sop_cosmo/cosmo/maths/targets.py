"""Target parameters: the metainfo fields stored per cosmology, and the derived ones.

Weak lensing constrains Ωm and σ8 mostly through the combination S8 = σ8 (Ωm / 0.3)^0.5, the
direction along the banana-shaped Ωm–σ8 degeneracy. ``preprocess --params`` takes any numeric
metainfo field (Om, s8, H0, Ob, ns, w0, As, ...) and the names in :data:`DERIVED_TARGETS`.
The **S8 basis** is ``S8,Om``: S8 and Ωm at fixed S8, which is the Ωm column of that basis,
because S8 and Ωm are nearly uncorrelated over the CosmoGridV1 Ωm–σ8 polygon (Pearson
r ≈ −0.09 over 4000 Sobol draws, where r(Ωm, σ8) ≈ −0.69; docs/analysis.md, "Target basis").
Pure maths: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["DERIVED_TARGETS", "S8_PIVOT", "allowed_targets", "check_targets", "target_values"]

#: The Ωm pivot of S8 = σ8 (Ωm / S8_PIVOT)^0.5.
S8_PIVOT: float = 0.3


def _s8(p: Mapping[str, float]) -> float:
    return float(p["s8"]) * math.sqrt(float(p["Om"]) / S8_PIVOT)


#: Derived targets: name → (the metainfo fields it needs, its value from those fields).
DERIVED_TARGETS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, float]], float]]] = {
    "S8": (("Om", "s8"), _s8),
}


def allowed_targets(fields: Sequence[str]) -> list[str]:
    """The target names a metainfo with these fields supports: the fields (sorted), then every
    derived name whose inputs are among them and that the metainfo does not store itself."""
    have = set(fields)
    derived = [k for k, (need, _) in DERIVED_TARGETS.items() if set(need) <= have]
    return sorted(have) + [k for k in derived if k not in have]


def check_targets(names: Sequence[str], fields: Sequence[str]) -> list[str]:
    """``names`` as a list, after checking each is a stored field or a derived target.

    Raises
    ------
    ValueError
        One line naming the unknown (or repeated) names and the allowed ones.
    """
    names = [str(n) for n in names]
    allowed = allowed_targets(fields)
    if not names:
        raise ValueError(f"params: expected at least one target; allowed: {', '.join(allowed)}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(
            f"params: unknown {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)} "
            "(S8,Om: S8 and Ωm at fixed S8)"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"params: {', '.join(map(repr, repeated))} named twice; name each once")
    return names


def target_values(params: Mapping[str, float], names: Sequence[str]) -> NDArray[np.float32]:
    """The targets ``names`` of one cosmology from its metainfo fields ``params``, float32.

    A stored field wins over a derived target of the same name (the metainfo is the truth).
    """
    out = []
    for n in names:
        if n in params:
            out.append(float(params[n]))
        elif n in DERIVED_TARGETS:
            out.append(DERIVED_TARGETS[n][1](params))
        else:
            raise KeyError(f"params: {n!r} is neither a metainfo field nor a derived target")
    return np.array(out, dtype=np.float32)
