"""How well the sum of an input's attributions reproduces the model output.

SOP is exact by construction (its prediction is the sum of its group contributions), so its gap
is zero up to rounding; additive post-hoc methods (Integrated Gradients, SHAP, ...) aim at
``sum(attr) = f(x) - f(baseline)`` ("completeness") and are only approximately complete.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["completeness_gap", "fidelity_r2"]


def completeness_gap(attribution_sums: Any, outputs: Any, baseline_outputs: Any = None) -> Tensor:
    """Per-sample absolute completeness gap ``|sum(attr) - (f(x) - f(baseline))|``.

    Parameters
    ----------
    attribution_sums : Tensor or array_like
        Sum of each sample's attributions for the explained output, shape (N,) or (N, C).
    outputs : Tensor or array_like
        Model outputs f(x), same shape as ``attribution_sums``.
    baseline_outputs : Tensor, array_like or float, optional
        Model outputs on the baseline f(baseline), broadcastable to ``outputs`` (a float or a
        (C,) row is fine). None drops the term, as for SOP whose prediction is exactly the sum
        of its contributions.

    Returns
    -------
    Tensor
        Gap of the same shape as ``outputs``; 0 means the attributions are complete. Lower is
        better.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    sums = _as_float(attribution_sums)
    out = _as_float(outputs, like=sums)
    if sums.shape != out.shape:
        raise ValueError(
            f"attribution_sums: must have the shape of outputs {tuple(out.shape)}; got "
            f"{tuple(sums.shape)}. Pass one sum per sample (and output column)."
        )
    target = out
    if baseline_outputs is not None:
        base = _as_float(baseline_outputs, like=sums)
        try:
            shape = torch.broadcast_shapes(base.shape, out.shape)
        except RuntimeError:
            shape = None
        if shape != out.shape:
            raise ValueError(
                f"baseline_outputs: must be broadcastable to outputs' shape {tuple(out.shape)}; "
                f"got {tuple(base.shape)}. Pass f(baseline) per sample, a (C,) row, or None."
            )
        target = out - base
    return (sums - target).abs()


def fidelity_r2(attribution_sums: Any, outputs: Any) -> Tensor:
    """Coefficient of determination of the outputs by the attribution sums, over a batch.

    ``R^2 = 1 - sum_i (f_i - s_i)^2 / sum_i (f_i - mean(f))^2`` with s_i the attribution sum
    and f_i the output of sample i. 1 means the sums reproduce the outputs exactly; 0 means no
    better than predicting the batch mean; it can be negative. Higher is better.

    Parameters
    ----------
    attribution_sums : Tensor or array_like
        (N,) or (N, C) sums of attributions, N >= 2.
    outputs : Tensor or array_like
        Model outputs of the same shape (for post-hoc methods with a baseline, pass
        ``f(x) - f(baseline)``).

    Returns
    -------
    Tensor
        0-d for (N,) inputs, (C,) per output column for (N, C) inputs. When the outputs are
        constant over the batch, R^2 is undefined: the result is 1 if the sums match exactly
        and NaN otherwise.

    Raises
    ------
    ValueError
        If the shapes do not match or N < 2.
    """
    sums = _as_float(attribution_sums)
    out = _as_float(outputs, like=sums)
    if sums.shape != out.shape or out.dim() not in (1, 2):
        raise ValueError(
            f"attribution_sums: must have the shape of outputs, (N,) or (N, C); got "
            f"{tuple(sums.shape)} and outputs {tuple(out.shape)}."
        )
    if out.shape[0] < 2:
        raise ValueError(
            f"outputs: R^2 needs at least 2 samples along the first axis; got {out.shape[0]}."
        )
    ss_res = ((out - sums) ** 2).sum(0)
    ss_tot = ((out - out.mean(0)) ** 2).sum(0)
    r2 = 1 - ss_res / ss_tot
    # Constant outputs make the ratio 0/0 or x/0; only an exact match is meaningful there.
    undefined = ss_tot == 0
    fill = torch.where(ss_res == 0, torch.ones_like(r2), torch.full_like(r2, float("nan")))
    return torch.where(undefined, fill, r2)


def _as_float(values: Any, like: Tensor | None = None) -> Tensor:
    """Detached float64 tensor (on ``like``'s device when given)."""
    t = torch.as_tensor(values).detach()
    device = like.device if like is not None else t.device
    return t.to(device=device, dtype=torch.float64)
