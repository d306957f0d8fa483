"""Trapezoid area under a curve whose x-axis is rescaled to the unit interval.

Every insertion/deletion curve in this package is summarised by this one function, so the areas
of curves with different numbers of steps (or different step spacings) are directly comparable:
the x-axis always runs from 0 (nothing changed) to 1 (everything changed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["trapezoid_auc"]


def trapezoid_auc(y: Any, x: Any = None) -> Any:
    """Area under ``y`` by the trapezoid rule, with the x-axis mapped onto [0, 1].

    Parameters
    ----------
    y : array_like or Tensor
        Curve values, shape (..., N) with N >= 2; leading axes are independent curves (rows).
        Integer values are promoted to floating point.
    x : array_like or Tensor, optional
        Strictly increasing abscissae, shape (N,) or broadcastable to ``y``'s shape. They are
        rescaled by ``(x - x[0]) / (x[-1] - x[0])`` so only relative spacing matters. When None,
        the N points are equally spaced on [0, 1].

    Returns
    -------
    float, numpy.ndarray or Tensor
        For a torch ``y``: a tensor of shape ``y.shape[:-1]`` (0-d for one curve), keeping
        ``y``'s dtype and device. Otherwise: a Python float for one curve, or a float64 array of
        shape ``y.shape[:-1]`` for batched rows.

    Raises
    ------
    ValueError
        If ``y`` has fewer than 2 points along its last axis, or ``x`` has the wrong length, is
        not finite, or is not strictly increasing.

    Examples
    --------
    >>> trapezoid_auc([0.0, 1.0, 0.0])
    0.5
    >>> round(trapezoid_auc([0.0, 1.0, 1.0], x=[0.0, 0.1, 1.0]), 12)
    0.95
    """
    is_torch = isinstance(y, Tensor)
    if is_torch:
        yy = y if y.is_floating_point() else y.to(torch.get_default_dtype())
    else:
        yy = np.asarray(y, dtype=np.float64)
    if yy.ndim == 0 or yy.shape[-1] < 2:
        raise ValueError(
            f"y: need at least 2 points along the last axis to form an area; got shape "
            f"{tuple(yy.shape)}. Pass a curve of length >= 2."
        )
    n = yy.shape[-1]
    mids = (yy[..., 1:] + yy[..., :-1]) / 2  # mean height of each trapezoid, parenthesised
    if x is None:
        # Equal widths 1 / (N - 1) on [0, 1].
        area = mids.sum(-1) / (n - 1)
    else:
        widths = _unit_widths(x, yy, is_torch)
        area = (mids * widths).sum(-1)
    if is_torch:
        return area
    return float(area) if area.ndim == 0 else area


def _unit_widths(x: Any, yy: Any, is_torch: bool) -> Any:
    """Segment widths of ``x`` after rescaling it to [0, 1], validated against ``yy``."""
    if is_torch:
        xx = torch.as_tensor(x, dtype=yy.dtype, device=yy.device)
        shape_ok = _broadcasts_to(tuple(xx.shape), tuple(yy.shape))
    else:
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        xx = np.asarray(x, dtype=np.float64)
        shape_ok = _broadcasts_to(xx.shape, yy.shape)
    if xx.ndim == 0 or not shape_ok:
        raise ValueError(
            f"x: must have shape ({yy.shape[-1]},) or be broadcastable to y's shape "
            f"{tuple(yy.shape)}; got {tuple(xx.shape)}. Pass one abscissa per curve point."
        )
    finite = torch.isfinite(xx).all() if is_torch else np.isfinite(xx).all()
    if not bool(finite):
        raise ValueError("x: contains NaN or infinite values; pass finite abscissae.")
    dx = xx[..., 1:] - xx[..., :-1]
    if not bool((dx > 0).all()):
        raise ValueError(
            "x: must be strictly increasing (each point larger than the one before); "
            "sort the curve by x before computing its area."
        )
    span = xx[..., -1:] - xx[..., :1]
    return dx / span


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to exactly ``target`` (the result keeps y's batch shape)."""
    try:
        return tuple(np.broadcast_shapes(shape, target)) == tuple(target)
    except ValueError:
        return False
