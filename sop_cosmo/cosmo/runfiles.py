"""The files of one training run folder and what they record: provenance (git commit, package
version, the backbone's hash), the checkpoint metadata, the resume fingerprint and progress of
``last.pt``, and ``metrics.jsonl`` (docs/contracts.md, "Checkpoint").
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.contracts.checkpoint import CHECKPOINT_FORMAT
from sop_cosmo.cosmo.dataset import PatchData

__all__ = [
    "BEST",
    "LAST",
    "METRICS",
    "RUNTIME_KEYS",
    "Progress",
    "fingerprint",
    "git_sha",
    "metadata",
    "package_version",
    "remove_stale_temps",
    "sha256",
    "write_metrics",
]

#: Config keys that may change between a run and its resumption: they decide where and how
#: fast the run computes, not what it computes. (The backbone *path* may move; its content is
#: compared by hash instead.)
RUNTIME_KEYS: tuple[str, ...] = (
    "device", "num_workers", "amp", "compile", "backbone", "in_memory",
)  # fmt: skip

#: File names in a run folder: the resumable state, the best checkpoint, one line per epoch.
LAST, BEST, METRICS = "last.pt", "model.pt", "metrics.jsonl"


def git_sha() -> str:
    """The commit of the source tree this package runs from ("unknown" outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except Exception:  # no git, not a checkout, a timeout: provenance is best effort
        return "unknown"


def package_version() -> str:
    """The installed sop-cosmo version ("unknown" when not installed)."""
    try:
        return importlib.metadata.version("sop-cosmo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Write ``metrics.jsonl``, one JSON line per epoch, atomically."""
    # Rewritten whole from the checkpoint's history, so the file never holds an epoch that
    # last.pt does not know about (a kill between the two writes is harmless).
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))


def remove_stale_temps(out: Path) -> None:
    """Remove the temp files a killed run left in ``out``."""
    # atomic_path cleans up after exceptions, but not after SIGKILL.
    for name in (LAST, BEST, METRICS):
        for tmp in out.glob(f".{name}.*"):
            with contextlib.suppress(OSError):
                tmp.unlink()


@dataclass
class Progress:
    """Where a run stands; saved in last.pt."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch already trained
    step: int = 0  # optimiser steps in total
    best_val: float = math.inf
    bad_epochs: int = 0
    loss_sum: float = 0.0  # Σ batch loss · batch size over the current epoch
    loss_count: int = 0
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def fingerprint(
    config: TrainConfig,
    model_args: dict[str, Any],
    train_data: PatchData,
    val_data: PatchData,
    backbone_sha: str | None,
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed."""
    return {
        "config": {k: v for k, v in config.to_dict().items() if k not in RUNTIME_KEYS},
        "model": model_args,
        "data": {
            "train_shape": list(train_data.x.shape),
            "val_shape": list(val_data.x.shape),
            "norm": train_data.norm.to_dict(),  # catches changed data of the same shape
        },
        "backbone_sha256": backbone_sha,
    }


def metadata(
    config: TrainConfig,
    model_args: dict[str, Any],
    backbone_args: dict[str, Any] | None,
    data: PatchData,
    git_sha: str,
) -> dict[str, Any]:
    """The keys every checkpoint of the run holds besides its weights."""
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": config.kind,
        "model_args": model_args,
        "backbone_args": backbone_args,
        "config": config.to_dict(),
        "norm": data.norm.to_dict(),
        "param_names": data.param_names,
        "data_attrs": data.attrs,
        "version": package_version(),
        "git_sha": git_sha,
    }
