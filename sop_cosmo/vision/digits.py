"""A real, offline image data set: scikit-learn's 1797 handwritten 8×8 digits, upsampled.

The digits ship with scikit-learn, so tests and the demo need no download. Images are
upsampled by pixel replication (``np.kron``) when the size is a multiple of 8, so one original
pixel becomes one ``size/8``-pixel square patch, which matches a ViT patch of that side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import Tensor

__all__ = ["DigitsSplit", "load_digits_split", "upsample_digits"]


@dataclass(frozen=True)
class DigitsSplit:
    """Standardised digit images, split into train and test.

    Attributes
    ----------
    x_train, x_test : Tensor
        (n, 1, size, size) float32 images, standardised with the training mean and std, so the
        value 0 is the mean pixel (a natural masking baseline).
    y_train, y_test : Tensor
        (n,) int64 labels 0–9.
    mean, std : float
        The training-set statistics used for standardisation (of pixel values in [0, 16]).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    mean: float
    std: float

    @property
    def n_total(self) -> int:
        """Number of images in both splits."""
        return len(self.y_train) + len(self.y_test)


def upsample_digits(images: np.ndarray, size: int) -> np.ndarray:
    """Upsample (n, 8, 8) images to (n, size, size).

    Pixel replication when ``size`` is a multiple of 8 (sharp patch edges), otherwise PIL
    bilinear resizing.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images: expected shape (n, h, w), got {images.shape}")
    h = images.shape[1]
    if size % h == 0:
        factor = size // h
        return np.kron(images, np.ones((1, factor, factor), dtype=np.float32))
    return np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images]
    )


def load_digits_split(size: int = 32, *, test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Load scikit-learn's digits, upsample, split with ``seed`` and standardise.

    Parameters
    ----------
    size : int
        Side of the output images in pixels.
    test_fraction : float
        Fraction of images held out for testing (stratified by class).
    seed : int
        Seed of the split.

    Returns
    -------
    DigitsSplit
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")
    data = load_digits()
    images, labels = data.images.astype(np.float32), data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    # Stratified split: the same fraction of every class goes to the test set.
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[: round(test_fraction * len(idx))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test_idx)] = True
    up = upsample_digits(images, size)
    mean, std = float(up[~is_test].mean()), float(up[~is_test].std())
    up = (up - mean) / std

    def as_tensors(sel: np.ndarray) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(up[sel]).unsqueeze(1).contiguous(), torch.from_numpy(labels[sel])

    x_tr, y_tr = as_tensors(~is_test)
    x_te, y_te = as_tensors(is_test)
    return DigitsSplit(x_tr, y_tr, x_te, y_te, mean, std)
