"""Run a block on a set number of torch CPU threads, and give the caller's count back after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Use ``n`` intra-op threads inside the block (``None``: leave the count as it is).

    Small models run faster and bit-reproducibly on one thread; the caller's setting is restored
    even when the block raises. Yields the number of threads in use.
    """
    previous = torch.get_num_threads()
    try:
        if n is not None:
            torch.set_num_threads(n)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
