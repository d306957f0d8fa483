"""Plateau-safe peaks and minima of convergence patches (``docs/stats.md``).

A gnomonic projection at native HEALPix resolution repeats pixels, so a naive
``image == maximum_filter(image)`` marks every pixel of a flat plateau (and every shoulder) as
a peak. Here each connected plateau that is strictly higher than all pixels around it counts
once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ._checks import _as_patches

__all__ = ["Extrema", "find_minima", "find_minima_batch", "find_peaks", "find_peaks_batch"]

# The 8 neighbour offsets (row, col) of a pixel.
_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
)
# 8-connectivity inside each (H, W) plane, no connection across patches or bins.
_PLANE_STRUCTURE = np.zeros((3, 3, 3, 3), dtype=bool)
_PLANE_STRUCTURE[1, 1] = True


class Extrema(NamedTuple):
    """Peaks (or minima) found in a batch of patches, one row per extremum.

    Rows are ordered by patch, then bin, then the raster position of the plateau's first pixel.
    """

    #: (P, 2) int64: patch index ``n`` and tomographic bin ``c``.
    index: NDArray[np.int64]
    #: (P, 2) float64: (row, col) centroid of the plateau (a pixel centre for one pixel).
    position: NDArray[np.float64]
    #: (P, 2) int64: (row, col) of the plateau's first pixel in raster order (on the plateau).
    pixel: NDArray[np.int64]
    #: (P,) κ value of the plateau.
    height: NDArray[np.floating]


# ----------------------------------------------------------------------------------- extrema


def _extrema(x: NDArray, sign: float) -> Extrema:
    """Plateau-safe local maxima of ``sign * x`` over the 8 neighbours, x of shape (N, C, H, W).

    A pixel is a *candidate* when it is >= all 8 neighbours.  Two adjacent candidates are equal,
    so the 8-connected components of the candidates are flat plateaus.  A component is a true
    extremum only when no equal-valued pixel next to it is a non-candidate: such a pixel has a
    strictly higher neighbour, so the plateau is a shoulder of a higher region.  Border pixels
    are never candidates, so a plateau touching the 1-pixel border is dropped as well.
    """
    a = x if sign > 0 else -x
    c, h, w = a.shape[1:]
    centre = a[..., 1:-1, 1:-1]
    cand = np.ones(centre.shape, dtype=bool)
    for dy, dx in _OFFSETS:
        cand &= centre >= a[..., 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
    mask = np.zeros(a.shape, dtype=bool)
    mask[..., 1:-1, 1:-1] = cand

    flat_a = a.reshape(-1)
    flat_m = mask.reshape(-1)
    idx = np.flatnonzero(flat_m)  # candidates are interior, so idx + offset stays in the plane
    val = flat_a[idx]
    taint = np.zeros(idx.size, dtype=bool)
    for dy, dx in _OFFSETS:
        nb = idx + (dy * w + dx)
        taint |= (flat_a[nb] == val) & ~flat_m[nb]

    labels, n_lab = ndimage.label(mask, structure=_PLANE_STRUCTURE)
    lab = labels.reshape(-1)[idx]
    bad = np.zeros(n_lab + 1, dtype=bool)
    bad[lab[taint]] = True
    size = np.bincount(lab, minlength=n_lab + 1).astype(np.float64)
    row_sum = np.bincount(lab, weights=(idx // w) % h, minlength=n_lab + 1)
    col_sum = np.bincount(lab, weights=idx % w, minlength=n_lab + 1)
    _, first_at = np.unique(lab, return_index=True)  # labels 1..n_lab, each present
    keep = ~bad[1:]
    first = idx[first_at[keep]]
    good = np.flatnonzero(keep) + 1
    plane = first // (h * w)
    index = np.stack([plane // c, plane % c], axis=1).astype(np.int64)
    position = np.stack([row_sum[good] / size[good], col_sum[good] / size[good]], axis=1)
    pixel = np.stack([(first // w) % h, first % w], axis=1).astype(np.int64)
    return Extrema(index, position, pixel, x.reshape(-1)[first])


def find_peaks_batch(kappa: ArrayLike) -> Extrema:
    """Plateau-safe local maxima of every patch and bin of a (N, C, H, W) batch.

    A peak is a connected (8-connectivity) set of equal pixels, strictly higher than every
    pixel around it, counted once.  The 1-pixel border is ignored: border pixels are never
    peaks, and a plateau that touches the border is dropped, since its surroundings are not
    fully known.

    Parameters
    ----------
    kappa : array_like
        Patches, shape (N, C, H, W), finite, H and W >= 3.

    Returns
    -------
    Extrema
        ``index`` (n, c), ``position`` (plateau centroid), ``pixel`` (first plateau pixel) and
        ``height`` of each peak.

    Raises
    ------
    ValueError
        If ``kappa`` is not a finite 4-D array with sides >= 3.
    """
    return _extrema(_as_patches(kappa), 1.0)


def find_minima_batch(kappa: ArrayLike) -> Extrema:
    """Plateau-safe local minima of a (N, C, H, W) batch: the peaks of ``-kappa``.

    Same rules as :func:`find_peaks_batch`; ``height`` is the value of ``kappa`` (not negated).
    """
    return _extrema(_as_patches(kappa), -1.0)


def _as_image(image: ArrayLike) -> NDArray:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"image: expected a 2-D array (H, W); got shape {arr.shape}.")
    return _as_patches(arr[None, None], name="image")


def find_peaks(image: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.floating]]:
    """Plateau-safe local maxima of one 2-D image over its 8 neighbours.

    Each connected plateau strictly higher than its surroundings counts once; the 1-pixel
    border is ignored (see :func:`find_peaks_batch`).

    Parameters
    ----------
    image : array_like
        (H, W) finite image, H and W >= 3.

    Returns
    -------
    positions : numpy.ndarray
        (P, 2) float64 (row, col) plateau centroids, in raster order of the plateaus.
    heights : numpy.ndarray
        (P,) image value at each peak.

    Raises
    ------
    ValueError
        If ``image`` is not a finite 2-D array with sides >= 3.

    Examples
    --------
    >>> img = np.zeros((5, 5)); img[2, 2] = 1.0
    >>> find_peaks(img)
    (array([[2., 2.]]), array([1.]))
    """
    ext = _extrema(_as_image(image), 1.0)
    return ext.position, ext.height


def find_minima(image: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.floating]]:
    """Plateau-safe local minima of one 2-D image: the peaks of ``-image``.

    Same rules and return values as :func:`find_peaks`; heights are values of ``image``.
    """
    ext = _extrema(_as_image(image), -1.0)
    return ext.position, ext.height
