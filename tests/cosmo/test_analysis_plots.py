"""Gallery outlines follow the group cells (the PNGs themselves: test_analysis_cli.py)."""

import numpy as np
import pytest

from sop_cosmo.cosmo.figures import _outline, distinct_selected, groups_gallery


def _edges(segs):
    return {tuple(map(tuple, np.round(s, 6))) for s in segs}


def test_outline_of_one_cell_is_its_square():
    cells = np.zeros((3, 3), np.uint8)
    cells[1, 1] = 1
    segs = _outline(cells, 4, (12, 12), 1.0)
    assert len(segs) == 4
    # the cell covers pixels 4..7, whose outer edges are at 3.5 and 7.5
    xs, ys = segs[..., 0], segs[..., 1]
    assert xs.min() == ys.min() == 3.5 and xs.max() == ys.max() == 7.5


def test_outline_skips_shared_sides_and_cuts_at_the_image_edge():
    cells = np.zeros((2, 2), np.uint8)
    cells[0, :] = 1  # two cells side by side; the right one is cut (5 px image, patch 3)
    segs = _outline(cells, 3, (5, 5), 2.0)
    assert len(segs) == 6  # 2 top + 2 bottom + left + right, no shared middle side
    assert segs[..., 0].max() == pytest.approx(4.5 * 2.0)  # last pixel edge, scaled
    assert ((-0.5 * 2, -0.5 * 2), (2.5 * 2, -0.5 * 2)) in _edges(segs)


def test_outline_inset_moves_sides_inwards_and_keeps_straight_joins():
    cells = np.zeros((2, 2), np.uint8)
    cells[0, :] = 1
    segs = _outline(cells, 3, (6, 6), 1.0, inset=0.5)
    tops = segs[np.isclose(segs[:, 0, 1], 0.0) & np.isclose(segs[:, 1, 1], 0.0)]
    # both top sides moved down 0.5; they still meet at x = 2.5 (a straight join)
    assert len(tops) == 2
    assert sorted(tops[:, :, 0].ravel().tolist()) == [0.0, 2.5, 2.5, 5.0]


def test_copies_of_one_mask_are_drawn_once_with_their_summed_weight():
    masks = np.zeros((5, 2, 2), np.uint8)
    masks[0, 0, 0] = masks[1, 0, 0] = masks[3, 0, 0] = 1  # groups 0, 1, 3: one region
    masks[2, 1, 1] = 1
    weights = np.array([0.2, 0.3, 0.4, 0.1, 0.0])  # group 4 (empty) is not selected
    got = distinct_selected(masks, weights)
    assert [(g, c) for g, _, c in got] == [(1, 3), (2, 1)]  # heaviest first, first of the copies
    assert [w for _, w, _ in got] == pytest.approx([0.6, 0.4])
    assert distinct_selected(masks, np.zeros(5)) == []


def test_gallery_draws_a_collapsed_generator_as_one_outline(tmp_path):
    rng = np.random.default_rng(0)
    masks = np.zeros((1, 4, 2, 2), np.uint8)
    masks[0, :, 0, 0] = 1  # every group the same cell
    weights = np.full((1, 4, 1), 0.25)
    path = groups_gallery(tmp_path / "g.png", rng.normal(size=(1, 8, 8)), masks, weights,
                          np.zeros((1, 4), int), ["Om"], patch=4, n_maps=1)  # fmt: skip
    assert path.stat().st_size > 0
    assert distinct_selected(masks[0], weights[0, :, 0]) == [(0, 1.0, 4)]
