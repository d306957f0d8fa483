"""Watershed basins of a smoothed map (sop_cosmo.cosmo.maths.segments)."""

import numpy as np
import pytest

from sop_cosmo.cosmo.maths.segments import PEAK, TROUGH, basins, grid_segments

PEAKS = ((8, 8), (24, 22))
TROUGH_AT = (8, 24)


def planted(size=32, offset=-0.2, noise=0.0, seed=0):
    """Two peaks and one trough on a slightly negative floor (plus optional noise)."""
    y, x = np.mgrid[:size, :size]

    def bump(cy, cx, s):
        return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))

    m = 3 * bump(*PEAKS[0], 3) + 2 * bump(*PEAKS[1], 3) - 2.5 * bump(*TROUGH_AT, 4) + offset
    return m + noise * np.random.default_rng(seed).standard_normal(m.shape)


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_two_peaks_and_a_trough_lie_in_basins_of_their_type(noise):
    seg = basins(planted(noise=noise), smoothing=1.0)
    ids, types = seg.ids[0], seg.types[0]
    peak_ids = [ids[p] for p in PEAKS]
    assert peak_ids[0] != peak_ids[1]
    assert [types[i] for i in peak_ids] == [PEAK, PEAK]
    assert types[ids[TROUGH_AT]] == TROUGH
    # each basin holds its extremum, and the peaks' basins lie above the level
    for i, p in zip(peak_ids, PEAKS, strict=True):
        assert np.abs(seg.extremum[0, i] - p).max() <= 1
    assert np.abs(seg.extremum[0, ids[TROUGH_AT]] - TROUGH_AT).max() <= 1
    assert (seg.height[0, peak_ids] > 0).all() and seg.height[0, ids[TROUGH_AT]] < 0
    # one id per pixel, numbered 0 … S-1 by area, largest first
    sizes = np.bincount(ids.ravel())
    assert (types >= 0).sum() == len(sizes) and (np.diff(sizes) <= 0).all()


def test_the_divide_between_two_maxima_is_at_the_saddle():
    a = np.array([[5, 4, 3, 2, 1, 0.5, 1, 2, 3, 4.0, 3.5]])
    seg = basins(a, smoothing=0, level=0.7)
    assert seg.ids.tolist() == [[[0, 0, 0, 0, 0, 2, 1, 1, 1, 1, 1]]]
    assert seg.types.tolist() == [[PEAK, PEAK, TROUGH]]
    # a flat shoulder drains into the higher region: one basin, not two
    shoulder = np.array([[0, 1, 1, 1, 2, 3, 2, 1, 1, 1, 0.0]])
    assert np.unique(basins(shoulder, smoothing=0, level=-1).ids).tolist() == [0]


def test_grid_segments_vote_per_cell_and_are_invariant_to_affine_maps():
    m = planted()
    seg = grid_segments(m, 6, smoothing=1.0)
    ids, types = seg.ids[0], seg.types[0]
    assert ids.shape == (6, 6)  # 32 px in 6-px cells: the last cells are cut
    assert types[ids[8 // 6, 8 // 6]] == PEAK and types[ids[24 // 6, 22 // 6]] == PEAK
    assert ids[8 // 6, 8 // 6] != ids[24 // 6, 22 // 6]
    assert types[ids[8 // 6, 24 // 6]] == TROUGH
    assert (np.diff(np.bincount(ids.ravel())) <= 0).all()  # largest first
    # standardising (a > 0, b) with the level moved along gives the same segments
    moved = grid_segments(3 * m + 1, 6, smoothing=1.0, level=1.0)
    assert np.array_equal(moved.ids, seg.ids) and np.array_equal(moved.types, seg.types)
    # a batch is its maps, one by one
    batch = grid_segments(np.stack([m, m[::-1]]), 6, smoothing=1.0)
    assert np.array_equal(batch.ids[0], ids)
    assert np.array_equal(batch.ids[1], grid_segments(m[::-1], 6, smoothing=1.0).ids[0])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="nu: expected maps"):
        basins(np.zeros(5), smoothing=1.0)
    with pytest.raises(ValueError, match="nu: contains NaN"):
        basins(np.full((4, 4), np.nan), smoothing=1.0)
    with pytest.raises(ValueError, match="smoothing"):
        basins(np.zeros((4, 4)), smoothing=-1.0)
    with pytest.raises(ValueError, match="patch"):
        grid_segments(np.zeros((4, 4)), 0, smoothing=1.0)
