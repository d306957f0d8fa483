"""A model-agnostic importance of the void and cluster regions: ΔMSE when they are replaced.

The selector weights of an SOP say which groups it *uses*; they do not say what the prediction
would lose without them. This module measures that for any regressor: on every test patch the
pixels of one region type are replaced by the model's masked baseline (what its masking puts
in place of hidden pixels: the standardised value 0, the per-bin training mean), the patch is
predicted again, and per parameter

    ΔMSE = MSE(replaced) − MSE(original),

in physical units, averaged over maps and training seeds, with percentile CIs from the
cosmology × seed bootstrap of the analysis (:func:`~sop_cosmo.cosmo.maths.bootstrap.
ensemble_bootstrap_means`, the same seed and so the same resamples as the weight shares).

A region can matter only because it is large, so an **area-matched control** replaces as many
random pixels of the same patch and bin (:func:`random_masks`) and reports ΔMSE for them; the
**excess** ΔMSE(region) − ΔMSE(random) is paired on the same resamples.

Two replacements are measured. **Baseline**: the region's pixels take the model's baseline,
which removes everything the region carries. **Gaussianised**: they take the pixels of a
phase-randomised copy of the same patch (:func:`phase_randomise`: every bin keeps its Fourier
amplitudes, so its power spectrum, and the cross-spectra between bins, while the phases are
drawn at random, so the copy is a Gaussian field of the same spectrum). The region then keeps
its two-point statistics on average and loses its peaks, troughs and skewed one-point
distribution: its ΔMSE is the part of the importance due to the non-Gaussian structure there.

The regions are the pixel rule of the typing (:mod:`sop_cosmo.cosmo.maths.group_types`): in
noise units per bin, void ν ≤ −ν_v and cluster ν ≥ ν_c, replaced on that bin
(:func:`region_masks_nu`); in patch units κ/σ_patch on one bin, replaced on every bin
(:func:`region_masks_patch`). Pure maths: the model enters as a callable, no file I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sop_cosmo.cosmo.maths.bootstrap import ensemble_bootstrap_means, percentile_ci

__all__ = [
    "REGION_TYPES",
    "Predictor",
    "phase_randomise",
    "random_masks",
    "region_importance",
    "region_masks_nu",
    "region_masks_patch",
]

#: The region types whose replacement is measured, in output order.
REGION_TYPES: tuple[str, str] = ("void", "cluster")
#: ``predict(kappa, replace)``: physical κ (N, C, H, W) and a bool mask of the same shape (or
#: None) → (N, P) physical predictions with the masked pixels set to the model's baseline.
Predictor = Callable[[NDArray, NDArray | None], NDArray]


def _check_kappa(kappa: ArrayLike) -> NDArray[np.float64]:
    k = np.asarray(kappa, dtype=np.float64)
    if k.ndim != 4 or k.shape[0] < 1:
        raise ValueError(f"kappa: expected (N, C, H, W) with N ≥ 1, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("kappa: contains NaN or infinite values")
    return k


def region_masks_nu(
    kappa: ArrayLike, sigma_noise: ArrayLike, *, nu_void: float, nu_cluster: float
) -> dict[str, NDArray[np.bool_]]:
    """Void and cluster pixels of every bin in noise units (the typing's pixel rule).

    Parameters
    ----------
    kappa : array_like
        (N, C, H, W) physical convergence.
    sigma_noise : array_like
        (C,) σ_noise per bin: ν = κ / σ_noise.
    nu_void, nu_cluster : float
        Void pixels have ν ≤ −nu_void, cluster pixels ν ≥ nu_cluster.

    Returns
    -------
    dict
        ``{"void": mask, "cluster": mask}``, bool (N, C, H, W): the pixels of each bin to
        replace on that bin.
    """
    k = _check_kappa(kappa)
    s = np.asarray(sigma_noise, dtype=np.float64).reshape(-1)
    if s.shape != (k.shape[1],) or not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"sigma_noise: expected one σ > 0 per bin ({k.shape[1]}), got {s}")
    nu = k / s[None, :, None, None]
    return {"void": nu <= -float(nu_void), "cluster": nu >= float(nu_cluster)}


def region_masks_patch(
    kappa: ArrayLike, b_index: int, *, void_sigma: float, cluster_sigma: float
) -> dict[str, NDArray[np.bool_]]:
    """Void and cluster pixels by the anchor's per-patch rule, on every bin.

    A pixel is void when κ < void_sigma·σ and cluster when κ > cluster_sigma·σ on bin
    ``b_index``, σ the patch's own standard deviation there; the region is a set of sky
    pixels, so it is replaced on every bin. Returns bool (N, C, H, W) masks as
    :func:`region_masks_nu`.
    """
    k = _check_kappa(kappa)
    if not -k.shape[1] <= int(b_index) < k.shape[1]:
        raise ValueError(f"b_index: expected a bin index of {k.shape[1]} bins, got {b_index}")
    kb = k[:, int(b_index)]
    sigma = kb.std(axis=(1, 2))[:, None, None]
    if not (sigma > 0).all():
        raise ValueError("kappa: a patch is constant on the typed bin (σ = 0)")
    on_bins = (1, k.shape[1], 1, 1)

    def every_bin(m: NDArray) -> NDArray:
        return np.tile(m[:, None], on_bins)

    return {"void": every_bin(kb < void_sigma * sigma),
            "cluster": every_bin(kb > cluster_sigma * sigma)}  # fmt: skip


def random_masks(masks: ArrayLike, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Area-matched random masks: as many uniformly drawn pixels per patch and bin as ``masks``.

    Where a patch's mask is the same on every bin (a sky region, :func:`region_masks_patch`),
    the random pixels are the same on every bin too.

    Parameters
    ----------
    masks : array_like
        (N, C, H, W) bool.
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    numpy.ndarray
        (N, C, H, W) bool with ``out[n, c].sum() == masks[n, c].sum()``.
    """
    m = np.asarray(masks, dtype=bool)
    if m.ndim != 4:
        raise ValueError(f"masks: expected (N, C, H, W), got shape {m.shape}")
    n, c, h, w = m.shape
    counts = m.reshape(n, c, -1).sum(-1)
    # the k smallest of i.i.d. uniform keys are a uniform k-subset of the pixels
    ranks = rng.random((n, c, h * w)).argsort(-1).argsort(-1)
    shared = (m == m[:, :1]).all(axis=(1, 2, 3))
    ranks[shared] = ranks[shared, :1]
    return (ranks < counts[..., None]).reshape(n, c, h, w)


def phase_randomise(kappa: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
    """A Gaussian copy of every patch with the same power spectrum: random Fourier phases.

    Per patch, every bin's 2-D FFT is multiplied by one field of unit-modulus phase factors
    e^{iφ(k)}, the normalised FFT of real white noise: Hermitian (φ(−k) = −φ(k)), so the result
    is real, and uniform, so the phases of the copy are random and its pixels Gaussian. Each
    bin keeps its Fourier amplitudes (its periodic power spectrum), and because the bins of a
    patch share φ their cross-spectra are kept too; the mean (k = 0) is kept exactly.

    Parameters
    ----------
    kappa : array_like
        (N, C, H, W) convergence, finite.
    rng : numpy.random.Generator
        Draws the white noise whose phases are used: one field per patch, shared by its
        bins (a seeded generator gives the same copy again).

    Returns
    -------
    numpy.ndarray
        (N, C, H, W) float64: the copies, real, with the spectra and means of ``kappa``.
    """
    k = _check_kappa(kappa)
    n, _, h, w = k.shape
    noise = np.fft.rfft2(rng.standard_normal((n, 1, h, w)))
    size = np.abs(noise)
    phase = np.divide(noise, size, out=np.ones_like(noise), where=size > 0)
    phase[..., 0, 0] = 1.0  # keep the mean (a white-noise mean would flip its sign half the time)
    return np.fft.irfft2(np.fft.rfft2(k) * phase, s=(h, w))


def _ci(values: NDArray) -> list[float]:
    return [float(values[0]), float(values[1])]


def region_importance(
    predictors: Sequence[Predictor],
    kappa: ArrayLike,
    params: ArrayLike,
    regions: dict[str, NDArray[np.bool_]],
    param_names: Sequence[str],
    *,
    cosmo_id: ArrayLike | None = None,
    n_boot: int,
    seed: int,
    references: Sequence[NDArray] | None = None,
    surrogate: ArrayLike | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """ΔMSE per region type and parameter, with its area-matched random control.

    The replaced pixels take each predictor's baseline, or with ``surrogate`` the surrogate's
    pixels (the gaussianised replacement); the random control is replaced the same way.

    Parameters
    ----------
    predictors : sequence of Predictor
        One per training seed (:data:`Predictor`).
    kappa : array_like
        (N, C, H, W) physical convergence of the test patches.
    params : array_like
        (N, P) true parameters (physical units).
    regions : dict
        Region type → bool (N, C, H, W) pixels to replace (:func:`region_masks_nu` or
        :func:`region_masks_patch`); its keys are the output's types.
    param_names : sequence of str
        P parameter names.
    cosmo_id : array_like, optional
        (N,) cosmology of each map, the bootstrap unit (None: every map is one).
    n_boot, seed : int
        Bootstrap resamples and seed; ``seed`` also draws the random masks (one set, shared by
        every predictor, so the seeds are compared on the same pixels).
    references : sequence of array_like, optional
        (N, P) predictions on the unreplaced patches, one per predictor, when already known
        (they are computed otherwise).
    surrogate : array_like, optional
        (N, C, H, W) κ whose pixels replace the region's and the control's, e.g.
        :func:`phase_randomise` of ``kappa``; None (default) replaces them by the baseline.

    Returns
    -------
    dict
        ``{type: {param: {...}}}`` with ``delta_mse`` (mean over maps and seeds), ``ci95``,
        ``random_delta_mse`` and ``random_ci95`` (the area-matched control), ``excess`` =
        delta_mse − random_delta_mse with its paired ``excess_ci95``, ``per_seed``
        (delta_mse of each predictor) and ``area_fraction`` (mean replaced fraction of the
        (pixel, bin) values).
    """
    k = _check_kappa(kappa)
    y = np.asarray(params, dtype=np.float64)
    names = [str(p) for p in param_names]
    if y.shape != (k.shape[0], len(names)):
        raise ValueError(f"params: expected ({k.shape[0]}, {len(names)}), got shape {y.shape}")
    if not predictors:
        raise ValueError("predictors: give at least one model")
    for t, m in regions.items():
        if np.shape(m) != k.shape:
            raise ValueError(f"regions[{t!r}]: expected shape {k.shape}, got {np.shape(m)}")
    sur = None if surrogate is None else np.asarray(surrogate, dtype=np.float64)
    if sur is not None and (sur.shape != k.shape or not np.isfinite(sur).all()):
        raise ValueError(f"surrogate: expected finite values of shape {k.shape}, got {sur.shape}")
    # the control's own stream: every replacement sees the same random pixels
    rng = np.random.default_rng([int(seed), 20])
    controls = {t: random_masks(m, rng) for t, m in regions.items()}

    def squared_error(predict: Predictor, mask: NDArray) -> NDArray:
        if sur is None:
            pred = np.asarray(predict(k, mask), dtype=np.float64)
        else:
            pred = np.asarray(predict(np.where(mask, sur, k), None), dtype=np.float64)
        if pred.shape != y.shape or not np.isfinite(pred).all():
            raise ValueError(f"predictor: expected finite (N, P) = {y.shape} predictions, "
                             f"got {pred.shape}")  # fmt: skip
        return (pred - y) ** 2

    parts = []  # per seed: (N, T, 3, P) region, random and excess ΔSE
    for s, predict in enumerate(predictors):
        ref = references[s] if references is not None else predict(k, None)
        base = (np.asarray(ref, dtype=np.float64) - y) ** 2
        per_type = []
        for t in regions:
            d_reg = squared_error(predict, regions[t]) - base
            d_rnd = squared_error(predict, controls[t]) - base
            per_type.append(np.stack([d_reg, d_rnd, d_reg - d_rnd], axis=1))
        parts.append(np.stack(per_type, axis=1))
    values = np.stack(parts)  # (S, N, T, 3, P)
    s_, n_, t_, _, p_ = values.shape
    means = values.mean((0, 1))
    boot = ensemble_bootstrap_means(values.reshape(s_, n_, -1), cosmo_id, n_boot=n_boot,
                                    seed=seed)  # fmt: skip
    ci = percentile_ci(boot).reshape(t_, 3, p_, 2)
    seed_means = values.mean(1)  # (S, T, 3, P)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for i, t in enumerate(regions):
        area = float(np.mean(regions[t]))
        out[t] = {
            name: {
                "delta_mse": float(means[i, 0, q]),
                "ci95": _ci(ci[i, 0, q]),
                "random_delta_mse": float(means[i, 1, q]),
                "random_ci95": _ci(ci[i, 1, q]),
                "excess": float(means[i, 2, q]),
                "excess_ci95": _ci(ci[i, 2, q]),
                "per_seed": [float(v) for v in seed_means[:, i, 0, q]],
                "area_fraction": area,
            }
            for q, name in enumerate(names)
        }
    return out
