"""ΔMSE importance of the void and cluster regions (sop_cosmo.cosmo.maths.occlusion): the pixel
rules, the area-matched control, the phase-randomised (Gaussianised) copy, and a planted model
that reads Ωm from the voids only and σ8 from the peaks only."""

import numpy as np
import pytest
import torch

from sop_cosmo.cosmo.analysis import masked_predictor
from sop_cosmo.cosmo.dataset import Normalization
from sop_cosmo.cosmo.maths.occlusion import (
    phase_randomise,
    random_masks,
    region_importance,
    region_masks_nu,
    region_masks_patch,
)
from sop_cosmo.cosmo.maths.planted import KAPPA_SCALE, ControlSpec, draw_control

NAMES = ["Om", "s8"]


def test_noise_unit_regions_by_hand():
    kappa = np.array([[[[-0.02, 0.0], [0.03, 0.04]], [[-0.1, 0.05], [0.2, 0.0]]]])
    r = region_masks_nu(kappa, [0.01, 0.05], nu_void=0.0, nu_cluster=4.0)
    # ν bin 1: -2, 0, 3, 4; bin 2: -2, 1, 4, 0; void ν ≤ 0, cluster ν ≥ 4 (both inclusive)
    np.testing.assert_array_equal(r["void"][0, 0], [[True, True], [False, False]])
    np.testing.assert_array_equal(r["void"][0, 1], [[True, False], [False, True]])
    np.testing.assert_array_equal(r["cluster"][0, 0], [[False, False], [False, True]])
    np.testing.assert_array_equal(r["cluster"][0, 1], [[False, False], [True, False]])
    with pytest.raises(ValueError, match="sigma_noise"):
        region_masks_nu(kappa, [0.01], nu_void=0.0, nu_cluster=4.0)


def test_patch_unit_regions_are_typed_on_one_bin_and_replaced_on_all():
    rng = np.random.default_rng(0)
    kappa = rng.standard_normal((3, 2, 8, 8))
    r = region_masks_patch(kappa, -1, void_sigma=0.0, cluster_sigma=1.0)
    sigma = kappa[:, 1].std(axis=(1, 2))[:, None, None]
    for c in range(2):
        np.testing.assert_array_equal(r["void"][:, c], kappa[:, 1] < 0)
        np.testing.assert_array_equal(r["cluster"][:, c], kappa[:, 1] > sigma)


def test_random_masks_match_the_area_per_patch_and_bin():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 3, 8, 8)) < np.array([0.1, 0.5, 0.9])[None, :, None, None]
    rand = random_masks(masks, np.random.default_rng(2))
    np.testing.assert_array_equal(rand.sum((2, 3)), masks.sum((2, 3)))
    assert not np.array_equal(rand, masks)
    # a mask shared by every bin gets one random draw shared by every bin
    shared = np.repeat(masks[:, :1], 3, axis=1)
    rs = random_masks(shared, np.random.default_rng(3))
    assert (rs == rs[:, :1]).all() and (rs.sum((2, 3)) == shared.sum((2, 3))).all()
    # uniform over the pixels: every pixel is drawn about k / (H W) of the time
    one = np.zeros((2000, 1, 4, 4), dtype=bool)
    one[:, 0, 0, :2] = True
    freq = random_masks(one, np.random.default_rng(4)).mean(0)
    np.testing.assert_allclose(freq, 2 / 16, atol=0.03)


def _lognormal(n=40, seed=0):
    """Skewed two-bin κ, the second bin correlated with the first (as tomographic bins are)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal((n, 2, 32, 24)), (0, 0, 2, 2), mode="wrap")
    g /= g.std()
    k = np.exp(g) - np.exp(0.5)
    k[:, 1] = 2 * k[:, 1] + 0.5 * k[:, 0]
    return k


def _skewness(x):
    x = x.reshape(-1) - x.mean()
    return float((x**3).mean() / (x**2).mean() ** 1.5)


def test_phase_randomisation_keeps_the_spectra_and_changes_the_pixels():
    kappa = _lognormal()
    gauss = phase_randomise(kappa, np.random.default_rng(1))
    assert gauss.shape == kappa.shape and gauss.dtype == np.float64
    f, g = np.fft.rfft2(kappa), np.fft.rfft2(gauss)
    # every bin's power spectrum, mode by mode, and the cross-spectrum of the two bins
    np.testing.assert_allclose(np.abs(g), np.abs(f), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g[:, 0] * g[:, 1].conj(), f[:, 0] * f[:, 1].conj(), atol=1e-8)
    np.testing.assert_allclose(gauss.mean((2, 3)), kappa.mean((2, 3)), atol=1e-12)
    np.testing.assert_allclose(gauss.var((2, 3)), kappa.var((2, 3)), rtol=1e-9)
    # new pixels, Gaussian statistics: the lognormal skewness is gone
    assert np.abs(gauss - kappa).mean() > 0.5 * kappa.std()
    assert _skewness(kappa) > 3 and abs(_skewness(gauss)) < 0.5 * _skewness(kappa)
    # seeded: the same generator state gives the same copy, another seed another one
    np.testing.assert_array_equal(phase_randomise(kappa, np.random.default_rng(1)), gauss)
    assert not np.allclose(phase_randomise(kappa, np.random.default_rng(2)), gauss)


def test_the_gaussianised_replacement_takes_the_surrogate_pixels():
    kappa = _lognormal(n=12, seed=3)
    gauss = phase_randomise(kappa, np.random.default_rng(0))
    params = np.stack([kappa.min((1, 2, 3)), kappa.std((2, 3)).mean(1)], 1)
    unmasked = []

    def minimum_and_spread(k, replace):
        unmasked.append(replace is None)
        k = k if replace is None else np.where(replace, 0.0, k)
        return np.stack([k.min((1, 2, 3)), k.std((2, 3)).mean(1)], 1)

    regions = region_masks_nu(kappa, [1.0, 2.0], nu_void=0.3, nu_cluster=2.0)
    regions["all"] = np.ones_like(kappa, dtype=bool)
    kw = {"cosmo_id": np.arange(12) // 3, "n_boot": 100, "seed": 0}
    base = region_importance([minimum_and_spread], kappa, params, regions, NAMES, **kw)
    # the baseline replacement passes the masks to the model (after the unreplaced reference)
    assert unmasked[0] and not any(unmasked[1:])
    unmasked.clear()
    out = region_importance([minimum_and_spread], kappa, params, regions, NAMES,
                            surrogate=gauss, **kw)  # fmt: skip
    assert all(unmasked)  # the gaussianised one passes finished maps
    assert {t: set(v) for t, v in out.items()} == {t: set(v) for t, v in base.items()}
    # by hand: the region's pixels from the surrogate, the rest untouched
    mixed = np.where(regions["void"], gauss, kappa)
    want = ((minimum_and_spread(mixed, None) - params) ** 2).mean(0)
    assert out["void"]["Om"]["delta_mse"] == pytest.approx(want[0])
    assert out["void"]["Om"]["area_fraction"] == base["void"]["Om"]["area_fraction"]
    # the whole map Gaussianised keeps each bin's variance: a readout of the spread loses
    # nothing, while the baseline loses all of it; a readout of the minimum loses in both
    spread_g, spread_b = out["all"]["s8"], base["all"]["s8"]
    assert spread_g["delta_mse"] == pytest.approx(0.0, abs=1e-9 * spread_b["delta_mse"])
    assert spread_b["delta_mse"] == pytest.approx(np.mean(params[:, 1] ** 2))
    assert out["all"]["Om"]["delta_mse"] > 0 and out["all"]["Om"]["ci95"][0] > 0
    with pytest.raises(ValueError, match="surrogate"):
        region_importance([minimum_and_spread], kappa, params, regions, NAMES,
                          surrogate=gauss[:, :1], **kw)  # fmt: skip


def _planted():
    """Positive-control patches and a planted model: Ωm linear in the mean void part of κ,
    σ8 linear in the mean part above the plant's tail, each fitted on the training split."""
    spec = ControlSpec(kind="positive", n_cosmologies=40, n_perms=4, patch_size=16, seed=2)
    splits = draw_control(spec)
    t = spec.tail * KAPPA_SCALE

    def features(k):
        return np.stack([np.minimum(k, 0).mean((1, 2, 3)),
                         np.maximum(k - t, 0).mean((1, 2, 3))], 1)  # fmt: skip

    tr = splits["train"]
    f = features(tr.kappa.astype(float))
    coef = [np.polyfit(f[:, j], tr.params[:, j], 1) for j in range(2)]

    def predict(kappa, replace):
        k = kappa if replace is None else np.where(replace, 0.0, kappa)  # baseline κ = 0
        fk = features(k)
        return np.stack([np.polyval(coef[j], fk[:, j]) for j in range(2)], 1)

    return splits["test"], predict, t


def test_the_planted_region_matters_more_than_the_other_and_than_its_area():
    test, predict, t = _planted()
    kappa = test.kappa.astype(float)
    regions = region_masks_nu(kappa, [KAPPA_SCALE], nu_void=0.0, nu_cluster=t / KAPPA_SCALE)
    out = region_importance([predict], kappa, test.params, regions, NAMES,
                            cosmo_id=test.cosmo_id, n_boot=500, seed=0)  # fmt: skip
    om_v, om_c = out["void"]["Om"], out["cluster"]["Om"]
    s8_v, s8_c = out["void"]["s8"], out["cluster"]["s8"]
    # each parameter loses its skill with its own region, and nothing with the other one
    assert om_v["delta_mse"] > 0 and om_v["ci95"][0] > 0
    assert s8_c["delta_mse"] > 0 and s8_c["ci95"][0] > 0
    assert om_c["delta_mse"] == pytest.approx(0.0, abs=1e-12)
    assert s8_v["delta_mse"] == pytest.approx(0.0, abs=1e-12)
    # more than as many random pixels: the excess is positive with its CI
    for e in (om_v, s8_c):
        assert e["delta_mse"] > e["random_delta_mse"] and e["excess_ci95"][0] > 0
        assert e["excess"] == pytest.approx(e["delta_mse"] - e["random_delta_mse"])
        assert e["ci95"][0] <= e["delta_mse"] <= e["ci95"][1]
    assert 0.3 < om_v["area_fraction"] < 0.7 and 0 < s8_c["area_fraction"] < 0.3
    # the ΔMSE is the MSE difference itself
    y = test.params.astype(float)
    mse = ((predict(kappa, regions["void"]) - y) ** 2).mean(0) - ((predict(kappa, None) - y)
                                                                  ** 2).mean(0)  # fmt: skip
    assert om_v["delta_mse"] == pytest.approx(mse[0])
    # the plant's tail is non-Gaussian: a Gaussian field of the same spectrum in the cluster
    # region does not carry it, so σ8 still loses its skill there, beyond as many random pixels
    gauss = phase_randomise(kappa, np.random.default_rng(0))
    g = region_importance([predict], kappa, test.params, regions, NAMES, cosmo_id=test.cosmo_id,
                          n_boot=500, seed=0, surrogate=gauss)["cluster"]["s8"]  # fmt: skip
    assert g["excess_ci95"][0] > 0 and g["delta_mse"] > 0.3 * s8_c["delta_mse"]


def test_seeds_are_pooled_and_reported_and_a_blind_model_scores_zero():
    test, predict, _ = _planted()
    kappa = test.kappa.astype(float)
    regions = region_masks_nu(kappa, [KAPPA_SCALE], nu_void=0.0, nu_cluster=1.0)

    def blind(k, replace):
        return np.full((len(k), 2), 0.5)

    out = region_importance([predict, blind], kappa, test.params, regions, NAMES,
                            cosmo_id=test.cosmo_id, n_boot=200, seed=1,
                            references=[predict(kappa, None), blind(kappa, None)])  # fmt: skip
    e = out["void"]["Om"]
    assert e["per_seed"][1] == 0.0 and e["delta_mse"] == pytest.approx(e["per_seed"][0] / 2)
    alone = region_importance([blind], kappa, test.params, regions, NAMES, n_boot=50, seed=1)
    for t in ("void", "cluster"):
        for p in NAMES:
            assert alone[t][p]["delta_mse"] == 0.0 and alone[t][p]["ci95"] == [0.0, 0.0]
    again = region_importance([predict, blind], kappa, test.params, regions, NAMES,
                              cosmo_id=test.cosmo_id, n_boot=200, seed=1)  # fmt: skip
    assert again == out  # deterministic, and the references are the unreplaced predictions


def test_masked_predictor_puts_the_standardised_baseline_in_place():
    class MeanModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.w * x.mean((2, 3))

    norm = Normalization(kind="cnn", param_names=["a"], input_mean=[1.0], input_std=[2.0],
                         target_mean=[10.0], target_std=[3.0])  # fmt: skip
    predict = masked_predictor(MeanModel(), norm, baseline=0.0, batch_size=2)
    kappa = np.full((3, 1, 4, 4), 5.0)  # standardised (5 - 1) / 2 = 2 -> 10 + 3 * 2
    np.testing.assert_allclose(predict(kappa, None), 16.0)
    half = np.zeros_like(kappa, dtype=bool)
    half[..., :2] = True  # half the pixels at the baseline 0: mean 1 -> 13
    np.testing.assert_allclose(predict(kappa, half), 13.0)
    shifted = masked_predictor(MeanModel(), norm, baseline=-1.0, batch_size=8)
    np.testing.assert_allclose(shifted(kappa, np.ones_like(half)), 7.0)
