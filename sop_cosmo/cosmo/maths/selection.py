"""Which maps and which tomographic bin of a patch file an analysis looks at.

Pure helpers shared by the analysis and the post-hoc baselines: no file I/O.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["map_indices", "resolve_bin"]

log = logging.getLogger(__name__)


def map_indices(n_total: int, max_maps: int | None) -> NDArray[np.int64]:
    """Rows of the patch file to analyse: all, or ``max_maps`` spread evenly over the file.

    Test files are ordered by cosmology, so taking the first rows would see few cosmologies;
    evenly spaced rows (first and last included) see them all, without any randomness.
    """
    if max_maps is None or max_maps >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if max_maps < 1:
        raise ValueError(f"max_maps: expected ≥ 1, got {max_maps}")
    return np.unique(np.round(np.linspace(0, n_total - 1, int(max_maps))).astype(np.int64))


def resolve_bin(
    bin: int, n_bins: int, attrs: dict[str, Any], data: str | os.PathLike
) -> tuple[int, int]:
    """Python bin index → (index in 0..n_bins-1, the bin's label from the file's ``bins``).

    ``attrs`` are the patch file's attributes and ``data`` its path (for the messages).

    Raises
    ------
    ValueError
        When the index is out of range, naming the file and the valid indices.
    """
    if not -n_bins <= int(bin) < n_bins:
        raise ValueError(
            f"bin: index {bin} is out of range for {data}, which has {n_bins} tomographic "
            f"bins (use 0..{n_bins - 1}, or -1 for the last, highest-redshift bin)"
        )
    index = int(bin) % n_bins
    labels = np.atleast_1d(attrs.get("bins", list(range(1, n_bins + 1)))).astype(int)
    if int(bin) == -1 and labels[index] != labels.max():
        log.warning(
            "bin: -1 is bin %d of %s, not the highest-redshift bin %d (bins are not in "
            "ascending order); pass --bin explicitly",
            labels[index],
            data,
            labels.max(),
        )
    return index, int(labels[index])
