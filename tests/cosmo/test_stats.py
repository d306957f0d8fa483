"""Tests for the classical weak-lensing summary statistics."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.stats
from scipy import ndimage

from sop_cosmo.cosmo.maths.extrema import (
    find_minima,
    find_minima_batch,
    find_peaks,
    find_peaks_batch,
)
from sop_cosmo.cosmo.maths.spectra import (
    DEFAULT_PS_BINS,
    ell_bin_edges,
    pixel_area_sr,
    power_spectrum,
)
from sop_cosmo.cosmo.maths.summaries import (
    DEFAULT_NU_BINS,
    MOMENT_NAMES,
    minima_counts,
    moments,
    peak_counts,
    summary_statistics,
)

PIX = 2.0  # arcmin


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], width: float = 2.0):
    """Gaussian random field smoothed over the last two axes (generic: no exact ties)."""
    sigma = (0,) * (len(shape) - 2) + (width, width)
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")


def _bump(shape, centre, width=2.0, amp=1.0):
    yy, xx = np.indices(shape, dtype=float)
    r2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return amp * np.exp(-r2 / (2 * width**2))


def _reference_peaks(img: np.ndarray) -> list[tuple[tuple[int, int], float]]:
    """Flood-fill reference: plateaus strictly above all surroundings, off the 1-pixel border.

    Returns (first pixel in raster order, height) per peak.
    """
    h, w = img.shape
    seen = np.zeros(img.shape, dtype=bool)
    out = []
    for i in range(h):
        for j in range(w):
            if seen[i, j]:
                continue
            v = img[i, j]
            plateau, stack, ok = [], [(i, j)], True
            seen[i, j] = True
            while stack:
                y, x = stack.pop()
                plateau.append((y, x))
                if y in (0, h - 1) or x in (0, w - 1):
                    ok = False
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if not (0 <= yy < h and 0 <= xx < w) or (dy, dx) == (0, 0):
                            continue
                        if img[yy, xx] > v:
                            ok = False
                        elif img[yy, xx] == v and not seen[yy, xx]:
                            seen[yy, xx] = True
                            stack.append((yy, xx))
            if ok:
                out.append((min(plateau), float(v)))
    return sorted(out)


# ------------------------------------------------------------------------------ power spectrum


def test_power_spectrum_white_noise_normalisation():
    rng = np.random.default_rng(1)
    sig = 0.01
    x = rng.normal(scale=sig, size=(2000, 1, 32, 32))
    _, cl = power_spectrum(x, PIX)
    expected = sig**2 * pixel_area_sr(PIX)
    ratio = cl.mean(axis=(0, 1)) / expected
    assert np.all(np.abs(ratio - 1) < 0.05), ratio
    assert abs(ratio.mean() - 1) < 0.015
    assert pixel_area_sr(60.0) == pytest.approx(np.deg2rad(1.0) ** 2)


@pytest.mark.parametrize(("my", "mx"), [(0, 5), (5, 0), (3, 4)])
def test_power_spectrum_cosine_lands_in_its_bin(my, mx):
    n = 64
    yy, xx = np.indices((n, n))
    img = 0.02 * np.cos(2 * np.pi * (my * yy + mx * xx) / n)
    delta = np.deg2rad(PIX / 60)
    ell_true = 2 * np.pi * np.hypot(my, mx) / (n * delta)
    edges = ell_bin_edges((n, n), PIX, 8)
    b = np.searchsorted(edges, ell_true, side="right") - 1
    ell, cl = power_spectrum(img[None, None], PIX, 8)
    assert int(np.argmax(cl[0, 0])) == b
    assert edges[b] <= ell[b] < edges[b + 1]
    others = np.delete(cl[0, 0], b)
    assert np.all(others < 1e-20 * cl[0, 0, b])


def test_power_spectrum_shape_and_ell_range():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 40, 50))
    ell, cl = power_spectrum(x, PIX, n_bins=6)
    assert ell.shape == (6,) and cl.shape == (3, 2, 6)
    delta = np.deg2rad(PIX / 60)
    edges = ell_bin_edges((40, 50), PIX, 6)
    assert edges[0] == pytest.approx(2 * np.pi / (50 * delta))
    assert edges[-1] == pytest.approx(np.pi / delta)
    assert np.all((ell >= edges[:-1]) & (ell < edges[1:]))
    assert np.all(np.diff(ell) > 0) and np.all(cl > 0)
    # Default bin count; custom range; the mean does not enter (ℓ = 0 excluded).
    assert power_spectrum(x, PIX)[1].shape == (3, 2, DEFAULT_PS_BINS)
    ell2, _ = power_spectrum(x, PIX, 4, ell_min=1000.0, ell_max=4000.0)
    assert ell2.min() >= 1000.0 and ell2.max() <= 4000.0
    np.testing.assert_allclose(power_spectrum(x + 3.0, PIX, 6)[1], cl, rtol=1e-9)


def test_power_spectrum_cross():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 1, 32, 32))
    b = rng.normal(size=(400, 1, 32, 32))
    x = np.concatenate([a, a, b], axis=1)  # bins 0 and 1 identical, 2 independent
    _, auto = power_spectrum(x, PIX, 5)
    _, cross = power_spectrum(x, PIX, 5, cross=True)
    assert cross.shape == (400, 6, 5)
    iu = np.triu_indices(3)
    diag = np.flatnonzero(iu[0] == iu[1])
    np.testing.assert_allclose(cross[:, diag], auto, rtol=1e-12)
    np.testing.assert_allclose(cross[:, 1], auto[:, 0], rtol=1e-12)  # pair (0, 1)
    indep = cross[:, 2].mean(0) / auto[:, 0].mean(0)  # pair (0, 2)
    assert np.all(np.abs(indep) < 0.2)


def test_power_spectrum_empty_bin_raises():
    x = np.zeros((1, 1, 16, 16))
    with pytest.raises(ValueError, match="n_bins"):
        power_spectrum(x, PIX, n_bins=30)


# ----------------------------------------------------------------------------------- extrema


def test_single_bump_one_peak():
    img = _bump((32, 32), (12, 17), amp=0.05)
    pos, h = find_peaks(img)
    assert pos.shape == (1, 2)
    np.testing.assert_array_equal(pos[0], [12.0, 17.0])
    assert h[0] == img.max() == pytest.approx(0.05)
    # Off-grid centre: the nearest pixel.
    pos, _ = find_peaks(_bump((32, 32), (12.3, 17.6)))
    np.testing.assert_array_equal(pos, [[12.0, 18.0]])


def test_two_bumps_two_peaks():
    img = _bump((40, 40), (10, 10), amp=1.0) + _bump((40, 40), (28, 25), amp=0.5)
    pos, h = find_peaks(img)
    assert len(h) == 2
    np.testing.assert_allclose(pos, [[10, 10], [28, 25]])
    np.testing.assert_allclose(h, [1.0, 0.5], atol=1e-6)
    # A sum of two Gaussian bumps has no interior local minimum.
    assert len(find_minima(img)[1]) == 0


def test_plateau_pitfall_repeated_pixels():
    """np.repeat x3 makes 3x3 plateaus, like a gnomonic projection at native resolution."""
    rng = np.random.default_rng(4)
    base = _smooth_field(rng, (60, 60))
    rep = np.repeat(np.repeat(base, 3, axis=0), 3, axis=1)
    for finder in (find_peaks, find_minima):
        pos0, h0 = finder(base)
        pos1, h1 = finder(rep)
        assert len(h0) > 10
        # A border peak of the original becomes a plateau touching the border, also dropped,
        # so the counts agree on the whole image.
        assert len(h1) == len(h0)
        np.testing.assert_array_equal(h1, h0)
        np.testing.assert_allclose((pos1 - 1) / 3, pos0)
    naive = int((rep == ndimage.maximum_filter(rep, size=3))[1:-1, 1:-1].sum())
    n_true = len(find_peaks(rep)[1])
    assert naive > 5 * n_true  # the naive max filter is badly wrong: the test has teeth
    # The same holds in a batch of float32 patches.
    batch = np.stack([base, -base])[:, None].astype(np.float32)
    rep_b = np.repeat(np.repeat(batch, 3, axis=2), 3, axis=3)
    np.testing.assert_array_equal(peak_counts(rep_b), peak_counts(batch))


def test_extrema_match_flood_fill_reference():
    rng = np.random.default_rng(5)
    for _ in range(30):
        img = rng.integers(0, 4, size=(11, 13)).astype(float)  # many plateaus and shoulders
        ext = find_peaks_batch(img[None, None])
        got = sorted(
            (tuple(int(v) for v in p), float(h)) for p, h in zip(ext.pixel, ext.height, strict=True)
        )
        assert got == _reference_peaks(img)
        # Every pixel of the plateau has the height; the centroid is the plateau mean.
        for p, c, h in zip(ext.pixel, ext.position, ext.height, strict=True):
            lab, _ = ndimage.label(img == h, structure=np.ones((3, 3)))
            rows, cols = np.nonzero(lab == lab[tuple(p)])
            np.testing.assert_allclose(c, [rows.mean(), cols.mean()])


def test_shoulder_and_border_plateaus_are_not_peaks():
    img = np.zeros((7, 9))
    img[1:6, 1:4] = 1.0  # plateau ...
    img[3, 4] = 2.0  # ... with a higher neighbour: a shoulder, plus one true peak
    pos, h = find_peaks(img)
    np.testing.assert_array_equal(pos, [[3.0, 4.0]])
    assert h.tolist() == [2.0]
    edge = np.zeros((7, 9))
    edge[0:3, 5:8] = 1.0  # plateau touching the border: dropped
    edge[0, 1] = 5.0  # border pixel: ignored
    assert len(find_peaks(edge)[1]) == 0
    inner = np.zeros((7, 9))
    inner[2:5, 3:6] = 1.0  # 3x3 interior plateau: one peak at its centre
    np.testing.assert_array_equal(find_peaks(inner)[0], [[3.0, 4.0]])


def test_minima_mirror_peaks_and_batch_matches_2d():
    rng = np.random.default_rng(6)
    x = _smooth_field(rng, (3, 2, 40, 40))
    mins = find_minima_batch(x)
    mirrored = find_peaks_batch(-x)
    for a, b in zip(mins[:3], mirrored[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mins.height, -mirrored.height)
    peaks = find_peaks_batch(x)
    for batch, finder in ((mins, find_minima), (peaks, find_peaks)):
        for n in range(3):
            for c in range(2):
                sel = (batch.index[:, 0] == n) & (batch.index[:, 1] == c)
                pos, h = finder(x[n, c])
                np.testing.assert_array_equal(pos, batch.position[sel])
                np.testing.assert_array_equal(h, batch.height[sel])
    edges = np.linspace(-3, 3, 9)
    np.testing.assert_array_equal(
        minima_counts(x, edges, sigma=1.0), peak_counts(-x, -edges[::-1], sigma=1.0)[..., ::-1]
    )


def test_no_extrema_gives_empty_arrays():
    ext = find_peaks_batch(np.zeros((2, 1, 5, 5)))
    assert ext.index.shape == (0, 2) and ext.position.shape == (0, 2) and ext.height.shape == (0,)
    assert peak_counts(np.zeros((2, 1, 5, 5)), sigma=1.0).sum() == 0


# -------------------------------------------------------------------------------- histograms


def test_peak_counts_binning_and_sigma_options():
    rng = np.random.default_rng(7)
    x = 0.01 * _smooth_field(rng, (4, 2, 48, 48))
    edges = np.array([-1.0, 0.0, 0.5, 1.5, 4.0])
    ext = find_peaks_batch(x)
    std = x.std(axis=(-2, -1))
    counts = peak_counts(x, edges)
    assert counts.shape == (4, 2, 4) and counts.dtype == np.int64
    for n in range(4):
        for c in range(2):
            sel = (ext.index[:, 0] == n) & (ext.index[:, 1] == c)
            ref, _ = np.histogram(ext.height[sel] / std[n, c], edges)
            np.testing.assert_array_equal(counts[n, c], ref)
    # Explicit σ equal to the patch std reproduces the default.
    np.testing.assert_array_equal(peak_counts(x, edges, sigma=std), counts)
    # Default σ: scale-free. A fixed σ: the amplitude shows in the counts.
    np.testing.assert_array_equal(peak_counts(3 * x, edges), counts)
    fixed = np.array([0.004, 0.006])
    per_bin = peak_counts(x, edges, sigma=fixed)
    np.testing.assert_array_equal(per_bin, peak_counts(2 * x, edges, sigma=2 * fixed))
    np.testing.assert_array_equal(
        peak_counts(x, edges, sigma=0.005), peak_counts(x, edges, sigma=[0.005, 0.005])
    )
    assert not np.array_equal(peak_counts(3 * x, edges, sigma=fixed), per_bin)
    # The all-range histogram counts every peak (the last edge is closed).
    wide = peak_counts(x, [ext.height.min(), ext.height.max()], sigma=1.0)
    assert wide.sum() == len(ext.height)
    # Minima counts mirror the same convention.
    assert minima_counts(x, DEFAULT_NU_BINS).shape == (4, 2, len(DEFAULT_NU_BINS) - 1)


# ----------------------------------------------------------------------------------- moments


def test_moments_match_scipy():
    rng = np.random.default_rng(8)
    x = rng.gamma(2.0, 0.01, size=(3, 2, 30, 30)) - 0.02
    m = moments(x)
    assert m.shape == (3, 2, 4) and len(MOMENT_NAMES) == 4
    flat = x.reshape(3, 2, -1)
    np.testing.assert_allclose(m[..., 0], flat.mean(-1), rtol=1e-12)
    np.testing.assert_allclose(m[..., 1], flat.var(-1), rtol=1e-12)
    np.testing.assert_allclose(m[..., 2], scipy.stats.skew(flat, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(m[..., 3], scipy.stats.kurtosis(flat, axis=-1), rtol=1e-10)
    assert np.all(m[..., 2] > 0.8)  # gamma(2): skewness √2
    const = moments(np.full((1, 1, 4, 4), 0.3))
    np.testing.assert_allclose(const[0, 0], [0.3, 0.0, 0.0, 0.0], atol=1e-15)


# ---------------------------------------------------------------------------------- features


def test_summary_statistics_shapes_names_finite():
    rng = np.random.default_rng(9)
    x = 0.01 * _smooth_field(rng, (5, 3, 40, 40), width=1.5)
    nu = np.linspace(-2, 4, 7)
    feats, names = summary_statistics(x, 6.87, ps_bins=6, nu_bins=nu)
    n_feat = 3 * (6 + 2 * 6 + 4)
    assert feats.shape == (5, n_feat) and feats.dtype == np.float32
    assert len(names) == n_feat == len(set(names))
    assert np.isfinite(feats).all()
    assert names[0].startswith("ps_b1_ell") and "peaks_b2_nu1.5" in names
    assert names[-4:] == ["mean_b3", "var_b3", "skew_b3", "kurt_b3"]
    pattern = re.compile(r"^(ps_b\d+_ell\d+|(peaks|minima)_b\d+_nu-?[\d.]+|[a-z]+_b\d+)$")
    assert all(pattern.match(s) for s in names)
    _, cl = power_spectrum(x, 6.87, 6)
    np.testing.assert_allclose(feats[:, :18], np.log10(cl).reshape(5, -1), rtol=1e-6)
    peaks = peak_counts(x, nu).reshape(5, -1)
    np.testing.assert_array_equal(feats[:, 18:36], peaks)
    short, short_names = summary_statistics(x, 6.87, ps_bins=6, nu_bins=nu, moments=False)
    assert short.shape == (5, n_feat - 12) and short_names == names[:-12]
    default, default_names = summary_statistics(x, 6.87, sigma=[0.01, 0.01, 0.01])
    assert (
        default.shape[1]
        == len(default_names)
        == 3 * (DEFAULT_PS_BINS + 2 * (len(DEFAULT_NU_BINS) - 1) + 4)
    )


# -------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: power_spectrum(np.zeros((4, 8, 8)), PIX), "kappa"),
        (lambda: power_spectrum(np.zeros((1, 1, 8, 8)), 0.0), "pixel_arcmin"),
        (lambda: power_spectrum(np.zeros((1, 1, 8, 8)), -1.0), "pixel_arcmin"),
        (lambda: power_spectrum(np.zeros((1, 1, 8, 8)), PIX, 0), "n_bins"),
        (lambda: power_spectrum(np.zeros((1, 1, 8, 8)), PIX, 2, ell_min=-5.0), "ell_min"),
        (lambda: power_spectrum(np.zeros((1, 1, 8, 8)), PIX, 2, ell_max=1.0), "ell_max"),
        (lambda: power_spectrum(np.full((1, 1, 8, 8), np.nan), PIX), "kappa"),
        (lambda: find_peaks(np.zeros((1, 8, 8))), "image"),
        (lambda: find_minima(np.zeros((2, 8))), "image"),
        (lambda: find_peaks_batch(np.zeros((8, 8))), "kappa"),
        (lambda: peak_counts(np.ones((1, 1, 8, 8)), []), "nu_bins"),
        (lambda: peak_counts(np.ones((1, 1, 8, 8)), [1.0]), "nu_bins"),
        (lambda: peak_counts(np.ones((1, 1, 8, 8)), [1.0, 0.0]), "nu_bins"),
        (lambda: peak_counts(np.ones((1, 1, 8, 8)), [0.0, 1.0]), "kappa"),  # constant: std 0
        (lambda: peak_counts(np.ones((1, 2, 8, 8)), [0.0, 1.0], sigma=0.0), "sigma"),
        (lambda: minima_counts(np.ones((1, 2, 8, 8)), [0.0, 1.0], sigma=[1, 2, 3]), "sigma"),
        (lambda: moments(np.zeros((8, 8))), "kappa"),
        (lambda: summary_statistics(np.zeros((2, 8, 8)), PIX), "kappa"),
        (lambda: summary_statistics(np.ones((1, 1, 8, 8)), 0.0), "pixel_arcmin"),
        (lambda: summary_statistics(np.ones((1, 1, 8, 8)), PIX, ps_bins=2), "kappa"),
    ],
)
def test_bad_inputs_raise(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
