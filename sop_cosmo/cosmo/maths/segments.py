"""Watershed basins of a smoothed signal-to-noise map: physical candidate groups for SOP.

A map ν (one bin, (H, W)) is smoothed with a Gaussian of ``smoothing`` pixels, then cut at
``level`` into two sides, and each side into basins:

* **peak basins**: on the pixels with ν > level, the basins of −ν around its local maxima;
* **trough basins**: on the pixels with ν ≤ level, the basins of ν around its local minima.

Every pixel thus lies in exactly one basin, and every basin holds one extremum (a maximum
above the level, or a minimum at or below it). A pixel's basin is the extremum its steepest
path (ascent on the peak side, descent on the trough side, over the 8 neighbours, slope =
difference / distance) ends at; these are the catchment basins of the watershed by steepest
descent. A flat plateau is one extremum; a flat shoulder of a higher region drains into it.
(``scipy.ndimage.watershed_ift`` is not used: its path cost is the largest |Δν| between
neighbours, an IFT meant for gradient images, which does not give the basins of ν.)

:func:`grid_segments` maps the basins onto a model's unit grid of ``patch`` × ``patch``
cells (the last row and column of cells may be cut by the image edge): each cell goes to the
basin holding most of its pixels (ties: the basin with the more extreme extremum). Basins
that win no cell disappear. Segments are numbered 0, 1, … per map, **largest first** (cells
on the grid, pixels in :func:`basins`; ties: the more extreme |extremum − level|), which is the
order in which :func:`sop_cosmo.core.segments_to_masks` keeps the first G of them.

Every step is invariant under ν → aν + b (a > 0) when ``level`` moves with it, so the
standardised κ of one bin (κ minus the bin's mean, over its standard deviation) gives the
same basins as ν = κ/σ_noise with the level at the bin's mean. Pure maths: no I/O.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = ["PEAK", "SEGMENT_TYPES", "TROUGH", "Segments", "basins", "grid_segments"]

#: Segment type codes (int8), in the order of :data:`SEGMENT_TYPES`; −1 pads.
TROUGH, PEAK = 0, 1
SEGMENT_TYPES: tuple[str, str] = ("trough", "peak")

_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
)
# 8-connectivity inside each (H, W) map, none across maps.
_MAP_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_MAP_STRUCTURE[1] = True


class Segments(NamedTuple):
    """Basins of a batch of N maps; S is the largest number of segments of one map.

    Rows of ``types``, ``extremum`` and ``height`` beyond a map's own segments are padding.
    """

    #: (N, H, W) pixel ids (:func:`basins`) or (N, gh, gw) cell ids (:func:`grid_segments`),
    #: int64, 0 … S_n − 1 per map, largest first.
    ids: NDArray[np.int64]
    #: (N, S) int8: :data:`PEAK` or :data:`TROUGH`; −1 pads.
    types: NDArray[np.int8]
    #: (N, S, 2) int64: (row, col) pixel of the segment's extremum; −1 pads.
    extremum: NDArray[np.int64]
    #: (N, S) float64: smoothed ν at the extremum; NaN pads.
    height: NDArray[np.float64]


class _Keys(NamedTuple):
    # Per pixel a basin key unique in the batch (1 … K); per key its type, extremum, height.
    pixel: NDArray[np.int64]
    types: NDArray[np.int8]
    extremum: NDArray[np.int64]
    height: NDArray[np.float64]
    significance: NDArray[np.float64]


def _as_maps(nu: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(nu, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape[1:]) < 1 or arr.shape[0] < 1:
        raise ValueError(f"nu: expected maps (N, H, W) or one map (H, W); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("nu: contains NaN or infinite values")
    return arr


def _roots(a: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Steepest-ascent basins of ``a`` (N, H, W): each pixel's maximum, as a label of the
    maxima's 8-connected plateaus (1 … n), and the flat index of each plateau's first pixel."""
    _, h, w = a.shape
    pad = np.pad(a, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    index = np.arange(a.size, dtype=np.int64).reshape(a.shape)
    slope = np.zeros(a.shape)
    target = index.copy()
    for dy, dx in _OFFSETS:
        rise = (pad[:, 1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx] - a) / math.hypot(dy, dx)
        steeper = rise > slope  # ties keep the first offset: deterministic
        slope = np.where(steeper, rise, slope)
        target = np.where(steeper, index + dy * w + dx, target)
    flat = target == index  # no strictly higher neighbour: plateaus (maxima or shoulders)
    labels, n_lab = ndimage.label(flat, structure=_MAP_STRUCTURE)
    # A plateau with an equal-valued neighbour that climbs is a shoulder: it drains there.
    pad_flat = np.pad(flat, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    leaks = []  # (pixel, offset order, label, exit) of every plateau pixel with an exit
    for o, (dy, dx) in enumerate(_OFFSETS):
        nb = (slice(None), slice(1 + dy, h + 1 + dy), slice(1 + dx, w + 1 + dx))
        leak = flat & ~pad_flat[nb] & (pad[nb] == a)
        p = index[leak]
        leaks.append(np.stack([p, np.full_like(p, o), labels[leak], p + dy * w + dx]))
    cand = np.concatenate(leaks, 1)
    cand = cand[:, np.lexsort((cand[1], cand[0], cand[2]))]  # per label: first pixel, offset
    lab_of, first_row = np.unique(cand[2], return_index=True)
    exit_ = np.full(n_lab + 1, -1, dtype=np.int64)
    exit_[lab_of] = cand[3, first_row]
    lab = labels.reshape(-1)
    ptr = np.where(exit_[lab] >= 0, exit_[lab], target.reshape(-1))  # label 0: never an exit
    while True:  # pointer jumping: log steps to each pixel's maximum plateau
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    # Renumber the true maxima 1 … m; the first pixel of each in raster order.
    is_max = np.zeros(n_lab + 1, dtype=bool)
    is_max[lab[ptr]] = True
    is_max[0] = False
    new = np.cumsum(is_max) * is_max
    first = np.full(n_lab + 1, a.size, dtype=np.int64)
    np.minimum.at(first, lab, np.arange(a.size, dtype=np.int64))
    return new[lab[ptr]].reshape(a.shape), first[is_max], int(is_max.sum())


def _basin_keys(nu: NDArray[np.float64], smoothing: float, level: float) -> _Keys:
    if not smoothing >= 0:
        raise ValueError(f"smoothing: expected a Gaussian sigma ≥ 0 pixels, got {smoothing}")
    s = ndimage.gaussian_filter(nu, (0, smoothing, smoothing)) if smoothing > 0 else nu
    peak, peak_first, n_peak = _roots(s)
    trough, trough_first, _ = _roots(-s)
    above = s > level
    pixel = np.where(above, peak, trough + n_peak)
    first = np.concatenate([[0], peak_first, trough_first])
    types = np.concatenate([[-1], np.full(n_peak, PEAK), np.full(len(trough_first), TROUGH)])
    height = s.reshape(-1)[first]
    _, h, w = nu.shape
    extremum = np.stack([(first % (h * w)) // w, first % w], 1)
    return _Keys(pixel, types.astype(np.int8), extremum, height, np.abs(height - level))


def _number(unit_keys: NDArray[np.int64], keys: _Keys) -> Segments:
    """Segments numbered per map, largest first (ties: more extreme, then lower key)."""
    n, u = unit_keys.shape
    flat = unit_keys.reshape(-1)  # keys are unique in the batch: one map each
    present, size = np.unique(flat, return_counts=True)
    owner = np.zeros(len(keys.types), dtype=np.int64)
    owner[flat] = np.repeat(np.arange(n), u)
    m = owner[present]
    order = np.lexsort((present, -keys.significance[present], -size, m))
    present, m = present[order], m[order]
    rank = np.arange(len(present)) - np.searchsorted(m, m)
    ids = np.full(len(keys.types), -1, dtype=np.int64)
    ids[present] = rank
    s_max = int(rank.max()) + 1
    types = np.full((n, s_max), -1, dtype=np.int8)
    extremum = np.full((n, s_max, 2), -1, dtype=np.int64)
    height = np.full((n, s_max), np.nan)
    types[m, rank] = keys.types[present]
    extremum[m, rank] = keys.extremum[present]
    height[m, rank] = keys.height[present]
    return Segments(ids[unit_keys], types, extremum, height)


def basins(nu: ArrayLike, *, smoothing: float, level: float = 0.0) -> Segments:
    """Peak and trough basins of each map, per pixel (module docstring).

    Parameters
    ----------
    nu : array_like
        (N, H, W) maps, or one (H, W) map: ν, or any positive affine map of it.
    smoothing : float
        Gaussian σ in pixels (0: none); the border is reflected.
    level : float
        Pixels above it belong to peak basins, the others to trough basins.

    Returns
    -------
    Segments
        ``ids`` (N, H, W), numbered per map by pixel count, largest first.
    """
    maps = _as_maps(nu)
    keys = _basin_keys(maps, smoothing, level)
    seg = _number(keys.pixel.reshape(len(maps), -1), keys)
    return seg._replace(ids=seg.ids.reshape(maps.shape))


def grid_segments(nu: ArrayLike, patch: int, *, smoothing: float, level: float = 0.0) -> Segments:
    """The basins of :func:`basins` on a grid of ``patch`` × ``patch`` cells.

    Returns
    -------
    Segments
        ``ids`` (N, ⌈H/patch⌉, ⌈W/patch⌉): each cell's basin (the one holding most of its
        pixels), numbered per map by cell count, largest first; every cell has one.
    """
    if patch < 1:
        raise ValueError(f"patch: expected a cell side ≥ 1 pixel, got {patch}")
    maps = _as_maps(nu)
    keys = _basin_keys(maps, smoothing, level)
    n, h, w = maps.shape
    gh, gw = -(-h // patch), -(-w // patch)
    padded = np.zeros((n, gh * patch, gw * patch), dtype=np.int64)  # key 0: outside the image
    padded[:, :h, :w] = keys.pixel
    cells = padded.reshape(n, gh, patch, gw, patch).transpose(0, 1, 3, 2, 4)
    cell = np.repeat(np.arange(n * gh * gw), patch * patch)
    key = cells.reshape(-1)
    inside = key > 0
    n_keys = len(keys.types)
    pairs, votes = np.unique(cell[inside] * n_keys + key[inside], return_counts=True)
    c, k = pairs // n_keys, pairs % n_keys
    order = np.lexsort((k, -keys.significance[k], -votes, c))
    c, k = c[order], k[order]
    winner = k[np.searchsorted(c, np.arange(n * gh * gw))]  # first row of each cell
    seg = _number(winner.reshape(n, gh * gw), keys)
    return seg._replace(ids=seg.ids.reshape(n, gh, gw))
