"""The planted data of the positive, swapped and negative controls (docs/controls.md).

* **positive**: a flat Gaussian random field g (unit variance, a chosen power spectrum) whose
  under-dense pixels (g < 0) are scaled by a(Ωm) and whose high tail (g > t) is stretched by
  b(σ8), both **falling** (voids get shallower as Ωm rises, peaks get lower as σ8 rises). Ωm is
  thus readable from the voids only and σ8 from the peaks only. Falling, because a
  head-initialised SOP selector prefers the group with the largest prediction
  (docs/controls.md): with rising dependences it would already look right, for the wrong
  reason.
* **swapped**: the positive control with the roles exchanged (σ8 drives the voids, Ωm the
  peaks), so an analysis that finds the planted structure must flip its verdict.
* **negative**: the same transformation, but a and b are both driven by h = (u_Ωm + u_σ8) / 2,
  with u_Ωm and u_σ8 i.i.d. uniform; the two parameters are exchangeable, so no honest method
  can find that one prefers voids and the other clusters.

Pure maths: the arrays of each split (:func:`draw_control`); the controls stage writes them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sop_cosmo.cosmo.config import PARAM_NAMES, SPLITS

__all__ = [
    "CONTROL_KINDS",
    "KAPPA_SCALE",
    "PARAM_RANGES",
    "ControlSpec",
    "PlantedSplit",
    "draw_control",
    "gaussian_fields",
    "plant",
    "planted_scales",
    "split_cosmologies",
]

#: The three controls.
CONTROL_KINDS: tuple[str, ...] = ("positive", "negative", "swapped")
#: Physical ranges of the parameters (the CosmoGridV1 grid priors); u ∈ [0, 1] maps linearly.
PARAM_RANGES: dict[str, tuple[float, float]] = {"Om": (0.10, 0.50), "s8": (0.40, 1.40)}
#: Physical convergence scale of the planted maps (a typical κ rms of one source bin).
KAPPA_SCALE = 0.01


@dataclass
class ControlSpec:
    """How a planted data set is drawn.

    Attributes
    ----------
    kind : {"positive", "negative", "swapped"}
        Which control.
    n_cosmologies : int
        Distinct (Ωm, σ8) draws; the splits are made by cosmology.
    n_perms : int
        Independent fields per cosmology.
    patch_size : int
        Side H = W of the maps in pixels.
    corr_length : float
        Gaussian cut-off length ℓ (pixels) of the power spectrum P(k) ∝ k^-slope · exp(-(kℓ)²).
    slope : float
        Power-law index of the power spectrum.
    tail : float
        Threshold t (in units of g's std) above which σ8 stretches the field.
    void_scale : tuple of float
        a at u_Ωm = 0 and at u_Ωm = 1 (falling when the first is larger).
    peak_scale : tuple of float
        b at u_σ8 = 0 and at u_σ8 = 1 (falling when the first is larger).
    split : tuple of float
        Fractions of cosmologies in train, val, test.
    seed : int
        Seeds the parameter draws, the split and the fields.
    """

    kind: str = "positive"
    n_cosmologies: int = 200
    n_perms: int = 4
    patch_size: int = 24
    corr_length: float = 1.0
    slope: float = 1.0
    tail: float = 1.0
    void_scale: tuple[float, float] = (1.2, 0.4)
    peak_scale: tuple[float, float] = (5.0, 2.0)
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in CONTROL_KINDS:
            raise ValueError(f"kind: expected one of {CONTROL_KINDS}, got {self.kind!r}")
        if self.n_cosmologies < 3 or self.n_perms < 1:
            raise ValueError(
                f"n_cosmologies, n_perms: expected ≥ 3 and ≥ 1 (three splits by cosmology), "
                f"got {self.n_cosmologies}, {self.n_perms}"
            )
        if self.patch_size < 8:
            raise ValueError(f"patch_size: expected ≥ 8 px, got {self.patch_size}")
        if not self.corr_length > 0 or not self.tail > 0:
            raise ValueError(
                f"corr_length, tail: expected > 0, got {self.corr_length}, {self.tail}"
            )
        if min(*self.void_scale, *self.peak_scale) <= 0:
            raise ValueError(
                f"void_scale, peak_scale: expected positive factors (a sign flip would move "
                f"pixels between voids and peaks), got {self.void_scale}, {self.peak_scale}"
            )
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"split: expected three positive fractions summing to 1, got "
                             f"{self.split}")  # fmt: skip
        self.void_scale = tuple(float(v) for v in self.void_scale)  # type: ignore[assignment]
        self.peak_scale = tuple(float(v) for v in self.peak_scale)  # type: ignore[assignment]
        self.split = tuple(float(v) for v in self.split)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return json.loads(json.dumps(asdict(self)))


def gaussian_fields(
    n: int, size: int, *, corr_length: float, slope: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Periodic flat Gaussian random fields (n, size, size), each exactly zero-mean, unit-std.

    The power spectrum is P(k) ∝ k^-slope · exp(-(k·corr_length)²) with k in radians per pixel
    and the k = 0 mode removed. Each map is rescaled to unit std so that the field's amplitude
    carries no information: whatever the parameters change must come from :func:`plant`.
    """
    k = 2 * np.pi * np.fft.fftfreq(size)
    kk = np.hypot(k[:, None], k[None, :])
    power = np.zeros_like(kk)
    nz = kk > 0
    power[nz] = kk[nz] ** (-slope) * np.exp(-((kk[nz] * corr_length) ** 2))
    white = rng.standard_normal((n, size, size))
    g = np.fft.ifft2(np.fft.fft2(white) * np.sqrt(power)).real
    g -= g.mean(axis=(1, 2), keepdims=True)
    return g / g.std(axis=(1, 2), keepdims=True)


def plant(
    g: NDArray[np.floating], a: NDArray[np.floating], b: NDArray[np.floating], tail: float
) -> NDArray[np.float64]:
    """The planted transformation of unit-variance fields g (n, H, W), in g's units.

    κ = a·g where g < 0 (voids), g where 0 ≤ g ≤ t, and t + b·(g − t) where g > t (peaks);
    ``a`` and ``b`` are per map (n,). Pixels keep their sign class, so a changes void pixels
    only and b changes pixels above t only.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 1, 1)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 1, 1)
    out = np.where(g < 0, a * g, g)
    return np.where(g > tail, tail + b * (g - tail), out)


def planted_scales(spec: ControlSpec, u: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """The plant's void and peak factors (a, b) for rows of u (n, 2) = (u_Ωm, u_σ8) in [0, 1]².

    Positive control: a depends on u_Ωm only and b on u_σ8 only; swapped: a on u_σ8 and b on
    u_Ωm. Negative control: both depend on h = (u_Ωm + u_σ8) / 2 only, so swapping the two
    parameters leaves every map unchanged.
    """
    if spec.kind == "positive":
        drive_a, drive_b = u[:, 0], u[:, 1]
    elif spec.kind == "swapped":
        drive_a, drive_b = u[:, 1], u[:, 0]
    else:  # both driven by the same exchangeable combination
        drive_a = drive_b = u.mean(1)
    a0, a1 = spec.void_scale
    b0, b1 = spec.peak_scale
    return a0 + (a1 - a0) * drive_a, b0 + (b1 - b0) * drive_b


def split_cosmologies(
    n: int, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    """Cosmology ids 0..n-1 in three random splits (train, val, test), each non-empty."""
    order = rng.permutation(n)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"n_cosmologies: {n} is too few for three splits")
    return [order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]]


@dataclass(frozen=True)
class PlantedSplit:
    """The arrays of one planted split, as the patch file holds them."""

    kappa: NDArray[np.float32]  # (N, 1, H, W), physical units
    params: NDArray[np.float32]  # (N, 2) physical (Ωm, σ8)
    cosmo_id: NDArray[np.int64]  # (N,)
    u: NDArray[np.float32]  # (N, 2) the parameters in [0, 1]²
    void_scale: NDArray[np.float32]  # (N,) a
    peak_scale: NDArray[np.float32]  # (N,) b


def draw_control(spec: ControlSpec) -> dict[str, PlantedSplit]:
    """Draw the planted data set of ``spec``: one :class:`PlantedSplit` per split, in order.

    Every control draws the same fields and cosmologies given the seed: they differ in the
    plant alone. The splits share no cosmology.
    """
    # Same fields for every control (given the seed): they differ in the plant alone.
    rng = np.random.default_rng([spec.seed, 1])
    # The parameter draws depend on the seed only, so all controls share their cosmologies.
    u_cosmo = np.random.default_rng([spec.seed, 7]).uniform(size=(spec.n_cosmologies, 2))
    splits = split_cosmologies(spec.n_cosmologies, spec.split, np.random.default_rng(spec.seed))
    lo = np.array([PARAM_RANGES[p][0] for p in PARAM_NAMES])
    hi = np.array([PARAM_RANGES[p][1] for p in PARAM_NAMES])
    out: dict[str, PlantedSplit] = {}
    for name, ids in zip(SPLITS, splits, strict=True):
        ids = np.sort(ids)
        cosmo_id = np.repeat(ids, spec.n_perms).astype(np.int64)
        u = u_cosmo[cosmo_id]
        g = gaussian_fields(
            len(cosmo_id), spec.patch_size, corr_length=spec.corr_length, slope=spec.slope,
            rng=rng,
        )  # fmt: skip
        a, b = planted_scales(spec, u)
        out[name] = PlantedSplit(
            kappa=(KAPPA_SCALE * plant(g, a, b, spec.tail)).astype(np.float32)[:, None],
            params=(lo + (hi - lo) * u).astype(np.float32),
            cosmo_id=cosmo_id,
            u=u.astype(np.float32),
            void_scale=a.astype(np.float32),
            peak_scale=b.astype(np.float32),
        )
    return out
