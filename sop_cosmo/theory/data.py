"""Training data for fitting models to the polynomials of :mod:`sop_cosmo.theory.polynomials`.

Inputs are drawn with independent features, each equal to 1 with probability
``rho = 0.5 ** (1 / m)`` where ``m`` is the size of the largest term.  A term of size ``m``
is then active (all its features on) with probability ``rho**m = 1/2``, so the target is
not almost always zero.  Uniform inputs (``rho = 1/2``) would activate a size-8 term only
1/256 of the time.  Smaller terms are active more often (``rho**|T| >= 1/2``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sop_cosmo.theory.polynomials import Polynomial, _check_d

__all__ = ["all_ones", "inclusion_probability", "sample_inputs"]


def inclusion_probability(poly: Polynomial) -> float:
    """Probability ``rho = 0.5 ** (1 / max term size)`` that a sampled feature is 1.

    Parameters
    ----------
    poly : Polynomial

    Returns
    -------
    float
        In ``[0.5, 1)``; a largest term is active with probability exactly 1/2.
    """
    return float(0.5 ** (1.0 / poly.max_term_size))


def sample_inputs(
    poly: Polynomial, n: int, rng: np.random.Generator | int | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Sample binary inputs with independent Bernoulli(``rho``) features and their targets.

    Parameters
    ----------
    poly : Polynomial
        Target function.
    n : int
        Number of samples, ``n >= 1``.
    rng : numpy.random.Generator or int or None
        Random generator, or a seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    x : numpy.ndarray of float32, shape (n, d)
        0/1 inputs, each entry 1 with probability :func:`inclusion_probability`.
    y : numpy.ndarray of float32, shape (n,)
        ``poly.evaluate(x)``.

    Raises
    ------
    ValueError
        If ``n < 1``.
    """
    n = _check_d(n, "n")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    rho = inclusion_probability(poly)
    x = (gen.random((n, poly.d)) < rho).astype(np.float32)
    y = poly.evaluate(x).astype(np.float32)
    return x, y


def all_ones(d: int) -> NDArray[np.float32]:
    """The explained input ``x = 1`` as a batch of one.

    Parameters
    ----------
    d : int
        Number of features, ``d >= 1``.

    Returns
    -------
    numpy.ndarray of float32, shape (1, d)
    """
    d = _check_d(d, "d")
    return np.ones((1, d), dtype=np.float32)
