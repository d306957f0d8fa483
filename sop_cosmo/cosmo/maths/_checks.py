"""Input checks shared by the statistics modules (patch batches, pixel scale, ν edges)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _as_patches(kappa: ArrayLike, name: str = "kappa", min_side: int = 3) -> NDArray:
    """``kappa`` as a finite float array of shape (N, C, H, W) with H, W >= ``min_side``."""
    arr = np.asarray(kappa)
    if arr.ndim != 4:
        raise ValueError(
            f"{name}: expected a 4-D array (N, C, H, W) of patches; got shape {arr.shape}."
        )
    if arr.shape[-2] < min_side or arr.shape[-1] < min_side:
        raise ValueError(
            f"{name}: patches must be at least {min_side}x{min_side}; got {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values.")
    return arr


def _check_pixel(pixel_arcmin: float) -> float:
    """Validated pixel scale in arcmin."""
    try:
        value = float(pixel_arcmin)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pixel_arcmin: expected a number; got {pixel_arcmin!r}.") from exc
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel_arcmin: must be finite and > 0; got {pixel_arcmin!r}.")
    return value


def _check_nu_bins(nu_bins: ArrayLike) -> NDArray[np.float64]:
    """Validated histogram edges: 1-D, at least 2, finite, strictly increasing."""
    edges = np.asarray(nu_bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(
            f"nu_bins: expected at least 2 bin edges in a 1-D array; got shape {edges.shape}."
        )
    if not np.isfinite(edges).all() or np.any(np.diff(edges) <= 0):
        raise ValueError("nu_bins: edges must be finite and strictly increasing.")
    return edges
