"""Where and how a model computes: the device, bf16 autocast, pinned memory, the batches that
feed a training run, and batched inference.

The device settings (:class:`Runtime`) decide how fast a run computes, not what it computes,
so a training run may change them when it resumes; the batch order (:class:`EpochBatches`)
depends on (seed, epoch) only (docs/training.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from sop_cosmo.cosmo.config import EvaluateConfig, TrainConfig

__all__ = [
    "EpochBatches",
    "Runtime",
    "batch_loader",
    "predict",
    "runtime_settings",
    "select_device",
]


def select_device(name: str = TrainConfig.device) -> torch.device:
    """Resolve a device name: "auto" is CUDA when available, else CPU.

    Raises
    ------
    RuntimeError
        When CUDA is asked for but not available.
    ValueError
        On an unknown name.
    """
    key = str(name).strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device: {name!r} requested, but torch.cuda.is_available() is False (torch "
                f"{torch.__version__}: no CUDA build or no visible GPU); use --device cpu or auto"
            )
        try:
            device = torch.device(key)
        except RuntimeError as err:
            raise ValueError(f"device: cannot parse {name!r} ({err})") from err
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device: {name!r} requested, but only {torch.cuda.device_count()} GPU(s) visible"
            )
        return device
    raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")


@dataclass(frozen=True)
class Runtime:
    """How a run computes on its device (not part of what it computes)."""

    device: torch.device
    #: bf16 autocast (CUDA only).
    amp: bool
    #: Page-locked host batches, copied with ``non_blocking`` (CUDA only).
    pin_memory: bool
    #: ``torch.compile`` the model (CUDA only).
    compile: bool

    @property
    def non_blocking(self) -> bool:
        """Asynchronous host-to-device copies; only meaningful from pinned memory."""
        return self.pin_memory

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when ``amp`` is on, else a no-op."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def runtime_settings(
    device: torch.device, *, amp: bool = TrainConfig.amp, compile: bool = TrainConfig.compile
) -> Runtime:
    """The :class:`Runtime` for ``device``: CUDA gets bf16 autocast (if ``amp``), pinned memory
    and optional compilation; CPU runs plain fp32, which keeps it bit-reproducible."""
    cuda = device.type == "cuda"
    return Runtime(device=device, amp=amp and cuda, pin_memory=cuda, compile=compile and cuda)


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes the pair, so (seed, epoch + 1) and (seed + 1, epoch) do not collide.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


class EpochBatches(Sampler[Tensor]):
    """Index batches of one epoch: a permutation that depends on (seed, epoch) only.

    The order never reads the global RNG, so it is the same in a resumed run; ``start``
    skips the batches a killed run already trained on.

    ``rank`` / ``world_size`` shard the epoch for data-parallel training: each rank takes every
    ``world_size``-th batch of the shared permutation. The trainer gives each rank batches of
    ``batch_size / world_size`` rows, so that the k-th batches of the W ranks are the W parts of
    the k-th global batch, in rank order: the rows one process would train at step k
    (:mod:`sop_cosmo.cosmo.distributed`).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        *,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n, self.batch_size = n, min(batch_size, n)
        self.seed, self.epoch, self.start = seed, epoch, start
        self.rank, self.world_size = rank, world_size

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per rank; the last partial batch is dropped."""
        return (self.n // self.batch_size) // self.world_size

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start)

    def __iter__(self) -> Iterator[Tensor]:
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        perm = torch.randperm(self.n, generator=g)
        batches = perm[: self.batches_per_epoch * self.world_size * self.batch_size]
        batches = batches.view(-1, self.batch_size)[self.rank :: self.world_size]
        yield from batches[self.start :]


class _Batches(Dataset):
    # Indexed by a whole batch of indices: one gather per batch instead of B item lookups and
    # a collate.
    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self.x[idx], self.y[idx]


def batch_loader(
    x: Tensor, y: Tensor, sampler: Sampler, runtime: Runtime, num_workers: int
) -> DataLoader:
    """A DataLoader of ``(x[idx], y[idx])`` for the index batches ``sampler`` yields, pinned
    on CUDA; it never draws from the global RNG."""
    return DataLoader(
        _Batches(x, y),
        sampler=sampler,
        batch_size=None,  # the sampler yields whole batches
        num_workers=num_workers,
        pin_memory=runtime.pin_memory,
        # Its own generator: iterator creation would otherwise draw from the global RNG and
        # shift dropout after a mid-epoch resume.
        generator=torch.Generator().manual_seed(0),
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    x: Tensor,
    *,
    batch_size: int = EvaluateConfig.batch_size,
    runtime: Runtime | None = None,
) -> Tensor:
    """Standardised predictions (N, P) of ``model`` on standardised inputs ``x``, on the CPU.

    The model is put in eval mode; it must already be on ``runtime.device`` (default CPU).
    """
    runtime = runtime or runtime_settings(torch.device("cpu"))
    model.eval()
    out = []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].to(runtime.device, non_blocking=runtime.non_blocking)
        with runtime.autocast():
            out.append(model(xb).float().cpu())
    return torch.cat(out)
