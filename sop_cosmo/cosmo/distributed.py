"""Data-parallel training under ``torchrun``: the ranks, the process group, the wrapped model
and the few collectives the training loop needs (docs/pipeline.md, "Multi-GPU training").

``sop-cosmo train`` reads ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``; ``MASTER_ADDR`` / ``MASTER_PORT`` for the rendezvous). Without it, or with one
rank, nothing here does anything and training is the single-process run it always was. With
W > 1 ranks:

* the process group is NCCL on CUDA (rank r on ``cuda:LOCAL_RANK``) and gloo on the CPU;
* ``batch_size`` stays the **global** batch: each rank trains a contiguous 1/W of every batch
  of the shared (seed, epoch) order, and DDP averages the gradients, so a step is the step of
  one process on the whole batch (gradient clipping then sees the averaged gradient);
* validation is split over the ranks and its sums are all-reduced;
* rank r > 0 re-seeds its global RNG from (seed, r) once the model is built, so that dropout
  and random masks differ between ranks; every rank's RNG state goes into ``last.pt``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from sop_cosmo.cosmo.runtime import Runtime, select_device
from sop_cosmo.seeding import rng_state, seed_everything, set_rng_state

__all__ = [
    "Ranks",
    "all_sum",
    "local_batch",
    "process_group",
    "rank_rng_states",
    "ranks_from_env",
    "restore_rng",
    "seed_rank",
    "shard",
    "training_device",
    "wrap",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a data-parallel run (one process: the defaults)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and logs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one rank."""
        return self.world_size > 1


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks:
    """The ranks ``torchrun`` (or any launcher that sets its variables) gave this process.

    Raises ``ValueError`` naming the variable when one is not a number or out of range.
    """
    env = os.environ if environ is None else environ
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        text = env.get(name, "")
        try:
            values[name] = int(text) if text.strip() else default
        except ValueError:
            raise ValueError(f"{name}={text!r}: expected an integer (set by torchrun)") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(
            f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}: expected "
            "0 ≤ RANK < WORLD_SIZE and LOCAL_RANK ≥ 0; launch with torchrun"
        )
    return Ranks(rank, world, local)


def training_device(name: str, ranks: Ranks) -> torch.device:
    """The device of this rank: :func:`select_device` alone, or ``cuda:LOCAL_RANK`` under
    several ranks on CUDA (one GPU per rank)."""
    device = select_device(name)
    if not ranks.active or device.type != "cuda":
        return device
    if device.index not in (None, ranks.local_rank):
        raise ValueError(
            f"device: {name!r} names one GPU, but {ranks.world_size} ranks run (one GPU each, "
            "cuda:LOCAL_RANK); use --device cuda or auto"
        )
    if ranks.local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"LOCAL_RANK={ranks.local_rank}, but only {torch.cuda.device_count()} GPU(s) are "
            "visible; start at most that many processes per node (--nproc-per-node)"
        )
    return torch.device("cuda", ranks.local_rank)


@contextlib.contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """Join the process group of a run of several ranks for the block (NCCL on CUDA, gloo on
    the CPU), and leave it after a last barrier; a group already set up is used as it is."""
    if not ranks.active:
        yield
        return
    if dist.is_initialized():
        if dist.get_world_size() != ranks.world_size or dist.get_rank() != ranks.rank:
            raise RuntimeError("the process group in place does not match RANK / WORLD_SIZE")
        yield
        return
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(f"{name}: not set, but WORLD_SIZE={ranks.world_size}; use torchrun")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        rank=ranks.rank,
        world_size=ranks.world_size,
    )
    ok = False
    try:
        yield
        ok = True
    finally:
        if ok:  # after an error a barrier could wait forever for the rank that failed
            dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)
        dist.destroy_process_group()


def local_batch(batch_size: int, n: int, ranks: Ranks) -> int:
    """Rows per rank of one global batch of ``batch_size``.

    Raises ``ValueError`` when the batch does not split evenly over the ranks or the split
    holds less than one global batch (one process would then shrink the batch to the split).
    """
    if not ranks.active:
        return batch_size
    if batch_size % ranks.world_size:
        raise ValueError(
            f"batch_size: {batch_size} does not split over {ranks.world_size} ranks; give a "
            f"multiple of {ranks.world_size} (batch_size is the global batch)"
        )
    if n < batch_size:
        raise ValueError(f"batch_size: {batch_size} is more than the {n} training patches")
    return batch_size // ranks.world_size


def wrap(model: nn.Module, ranks: Ranks, device: torch.device, *, find_unused: bool) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` under several ranks (else ``model`` itself).

    ``find_unused`` lets DDP skip trainable parameters that a forward pass does not reach (SOP's
    generator copy of the backbone uses only the convolutional trunk).
    """
    if not ranks.active:
        return model
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused,
    )


def _mixed_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


def seed_rank(seed: int, ranks: Ranks) -> None:
    """Give rank r > 0 its own global RNG stream, from (seed, r); rank 0 keeps ``seed``'s."""
    if ranks.rank > 0:
        seed_everything(_mixed_seed(seed, ranks.rank))


def rank_rng_states(ranks: Ranks) -> list[dict[str, Any]] | None:
    """Every rank's global RNG state, in rank order (a collective); None for one process."""
    if not ranks.active:
        return None
    states: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(states, rng_state())
    return states


def restore_rng(payload: dict[str, Any], seed: int, ranks: Ranks) -> None:
    """Restore this rank's RNG state from a ``last.pt`` payload.

    A checkpoint written by as many ranks holds each rank's state. Resumed with another number
    of ranks, rank 0 takes the saved rank 0 state and the other ranks a fresh (seed, rank,
    step) stream: the batches stay the same, only dropout and random-mask draws change.
    """
    states = payload.get("rank_rng_states")
    if states is not None and len(states) == ranks.world_size:
        set_rng_state(states[ranks.rank])
        return
    set_rng_state(payload["rng_state"])
    if ranks.rank > 0:
        seed_everything(_mixed_seed(_mixed_seed(seed, ranks.rank), int(payload["step"])))
        log.warning("resumed with %d ranks: rank %d draws a new RNG stream", ranks.world_size,
                    ranks.rank)  # fmt: skip


def shard(n: int, ranks: Ranks) -> range:
    """This rank's contiguous share of ``range(n)`` (sizes differ by at most one)."""
    return range(n * ranks.rank // ranks.world_size, n * (ranks.rank + 1) // ranks.world_size)


def all_sum(values: Tensor, ranks: Ranks, runtime: Runtime) -> Tensor:
    """``values`` summed over the ranks, identical on every rank, on the CPU (float64)."""
    out = values.detach().double()
    if not ranks.active:
        return out.cpu()
    out = out.to(runtime.device).contiguous()
    dist.all_reduce(out)
    # NCCL and gloo give every rank the same sum; the broadcast makes it certain, since the
    # ranks take the same decisions (best epoch, early stop) from these numbers.
    dist.broadcast(out, 0)
    return out.cpu()
