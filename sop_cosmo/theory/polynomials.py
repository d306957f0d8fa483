"""Multilinear polynomials with unit coefficients on binary inputs.

These are the test functions of §2 of the Sum-of-Parts paper (arXiv 2310.16316): a
polynomial ``p(x) = sum_t prod_{i in T_t} x_i`` on ``x in {0, 1}^d`` is described by its
list of terms ``T_t``.  Per-feature attributions cannot explain such functions exactly
once terms have more than one feature, whereas grouped attributions whose groups are the
terms can.

Subsets ``S`` of the features ``[d] = {0, ..., d-1}`` are enumerated by :func:`all_subsets`
in binary order: row ``r`` contains feature ``i`` iff bit ``i`` of ``r`` is set, i.e.
``r = sum_{i in S} 2**i``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAX_SUBSET_D",
    "POLYNOMIALS",
    "Polynomial",
    "all_subsets",
    "binomial",
    "binomial_blocks",
    "monomial",
    "polynomial_by_name",
]

#: Largest ``d`` for which :func:`all_subsets` enumerates the ``2**d`` subsets
#: (2**20 x 20 booleans is about 20 MB; beyond that memory grows quickly).
MAX_SUBSET_D = 20


def _check_d(d: int, name: str = "d", minimum: int = 1, maximum: int | None = None) -> int:
    """Validate an integer dimension and return it as ``int``."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {d!r}")
    d = int(d)
    if d < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={d}")
    if maximum is not None and d > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {name}={d}")
    return d


@dataclass(frozen=True)
class Polynomial:
    """Multilinear polynomial with unit coefficients, ``p(x) = sum_t prod_{i in T_t} x_i``.

    Parameters
    ----------
    d : int
        Number of binary input features (``d >= 1``).
    terms : iterable of iterable of int
        The terms ``T_t``; each is a non-empty set of feature indices in ``[0, d)``.
        They are normalised to a tuple of sorted tuples.  Terms must be distinct
        (coefficients are all one).

    Raises
    ------
    ValueError
        If ``d < 1``, ``terms`` is empty, or a term is empty, repeats a feature, uses an
        index outside ``[0, d)`` or duplicates another term.
    """

    d: int
    terms: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        d = _check_d(self.d, "d")
        raw: Iterable[Iterable[int]] = self.terms
        normalised: list[tuple[int, ...]] = []
        for term in raw:
            items = [int(i) for i in term]
            t = tuple(sorted(items))
            if not t:
                raise ValueError("terms must not contain an empty term")
            if len(set(t)) != len(t):
                raise ValueError(f"terms: term {t} repeats a feature")
            if t[0] < 0 or t[-1] >= d:
                raise ValueError(f"terms: term {t} has an index outside [0, {d})")
            normalised.append(t)
        if not normalised:
            raise ValueError("terms must contain at least one term")
        if len(set(normalised)) != len(normalised):
            raise ValueError("terms must be distinct (unit coefficients)")
        # Frozen dataclass: normalise through object.__setattr__.
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "terms", tuple(normalised))

    @property
    def n_terms(self) -> int:
        """Number of terms ``K``."""
        return len(self.terms)

    @property
    def max_term_size(self) -> int:
        """Size of the largest term (the polynomial's degree)."""
        return max(len(t) for t in self.terms)

    def term_masks(self) -> NDArray[np.bool_]:
        """Terms as a boolean indicator matrix.

        Returns
        -------
        numpy.ndarray of bool, shape (K, d)
            ``masks[t, i]`` is True iff feature ``i`` belongs to term ``t``.
        """
        masks = np.zeros((self.n_terms, self.d), dtype=bool)
        for t, term in enumerate(self.terms):
            masks[t, list(term)] = True
        return masks

    def evaluate(self, x: ArrayLike) -> NDArray[np.float64]:
        """Evaluate ``p`` on a batch of binary inputs.

        Parameters
        ----------
        x : array_like, shape (n, d)
            Inputs with entries in ``{0, 1}`` (bool, int or float).

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
            ``p(x_j)`` for every row ``x_j``: the number of terms fully switched on.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``d`` columns or has entries other than 0 and 1.
        """
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, {self.d}), got shape {arr.shape}")
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError("x must contain only 0 and 1")
        # A term is active iff none of its features is off: count off features per term.
        off = (arr == 0).astype(np.int32)
        n_off = off @ self.term_masks().T.astype(np.int32)
        return (n_off == 0).sum(axis=1).astype(np.float64)


def monomial(d: int) -> Polynomial:
    """The monomial ``p(x) = prod_{i < d} x_i`` (one term, ``T = [d]``).

    Parameters
    ----------
    d : int
        Number of features, ``d >= 1``.

    Returns
    -------
    Polynomial
    """
    d = _check_d(d, "d")
    return Polynomial(d, (tuple(range(d)),))


def binomial_blocks(d: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Blocks ``(S1, S2, S3)`` of :func:`binomial`: a partition of ``[d]`` into runs.

    ``|S1| = |S3| = (d - d // 3) // 2`` and the overlap ``S2`` gets the rest (about d/3), in
    the order ``S1, S2, S3``.  Both terms then have ``d - |S1|`` features, so a fixed group size
    can match each exactly; for ``d >= 2`` both ``S1`` and ``S3`` are non-empty.

    Parameters
    ----------
    d : int
        Number of features, ``d >= 2``.

    Returns
    -------
    tuple of three tuples of int
    """
    d = _check_d(d, "d", minimum=2)
    # Equal-size terms: a fixed group size (SOP's top-k masks) can then match both exactly.
    n1 = (d - d // 3) // 2
    n2 = d - 2 * n1
    s1 = tuple(range(n1))
    s2 = tuple(range(n1, n1 + n2))
    s3 = tuple(range(n1 + n2, d))
    return s1, s2, s3


def binomial(d: int) -> Polynomial:
    """The binomial of Theorem 2.3, ``p(x) = prod_{S1 ∪ S2} x_i + prod_{S2 ∪ S3} x_j``.

    The blocks come from :func:`binomial_blocks`.  Examples: ``d = 2`` gives
    ``x0 + x1`` (no overlap, additive); ``d = 3`` gives ``x0 x1 + x1 x2``; ``d = 4`` gives
    ``x0 x1 x2 + x1 x2 x3``.

    Parameters
    ----------
    d : int
        Number of features, ``d >= 2`` (for ``d = 1`` the second term would be empty).

    Returns
    -------
    Polynomial

    Raises
    ------
    ValueError
        If ``d < 2``.
    """
    s1, s2, s3 = binomial_blocks(d)
    return Polynomial(d, (s1 + s2, s2 + s3))


#: Name -> constructor for the polynomial families used in the experiments.
POLYNOMIALS: dict[str, Callable[[int], Polynomial]] = {
    "monomial": monomial,
    "binomial": binomial,
}


def polynomial_by_name(name: str, d: int) -> Polynomial:
    """Build a polynomial family member by name.

    Parameters
    ----------
    name : {"monomial", "binomial"}
        Family name (a key of :data:`POLYNOMIALS`).
    d : int
        Number of features.

    Returns
    -------
    Polynomial

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``d`` is invalid for the family.
    """
    try:
        factory = POLYNOMIALS[name]
    except KeyError:
        raise ValueError(f"name must be one of {sorted(POLYNOMIALS)}, got name={name!r}") from None
    return factory(d)


def all_subsets(d: int) -> NDArray[np.bool_]:
    """All ``2**d`` subsets of ``[d]`` as indicator rows, in binary order.

    Parameters
    ----------
    d : int
        Number of features, ``1 <= d <= 20``.

    Returns
    -------
    numpy.ndarray of bool, shape (2**d, d)
        Row ``r`` has column ``i`` set iff bit ``i`` of ``r`` is set, so row 0 is the empty
        set, row 1 is ``{0}``, row 2 is ``{1}``, row 3 is ``{0, 1}`` and the last row is
        ``[d]``.

    Raises
    ------
    ValueError
        If ``d < 1`` or ``d > 20``.
    """
    d = _check_d(d, "d", minimum=1, maximum=MAX_SUBSET_D)
    rows = np.arange(2**d, dtype=np.int64)
    return ((rows[:, None] >> np.arange(d, dtype=np.int64)[None, :]) & 1).astype(bool)
