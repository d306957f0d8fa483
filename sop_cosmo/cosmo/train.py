"""Training engine of the cosmology regressors (``cnn``, ``sop``, ``stats``) and their evaluation.

One run directory ``RUN`` holds:

* ``model.pt``: the best checkpoint by validation loss, with everything needed to rebuild the
  model (:func:`load_model`): model state, model arguments, config, normalisation, parameter
  names, data attributes, package version, git SHA; for ``sop`` also the backbone's arguments.
* ``last.pt``: the resumable state: the above plus the AdamW and scheduler states, the RNG
  states (python, numpy, torch, CUDA), the position in the run (epoch, batch, step), the best
  validation loss, the patience counter and the metrics history.
* ``metrics.jsonl``: one JSON line per finished epoch.

Calling :func:`train` again with the same arguments continues from ``last.pt``. The batch order
is a function of (seed, epoch) only and the RNG states are restored, so on CPU a run that is
killed and resumed ends with the same weights, bit for bit, as one that never stopped. See
``docs/training.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.backbones import MODEL_KINDS, build_model, default_options
from sop_cosmo.cosmo.data import Normalization, PatchData, load_split

__all__ = [
    "CHECKPOINT_FORMAT",
    "RUNTIME_KEYS",
    "EpochBatches",
    "Runtime",
    "TrainConfig",
    "WarmupCosine",
    "evaluate",
    "load_model",
    "predict",
    "runtime_settings",
    "select_device",
    "train",
]

log = logging.getLogger(__name__)

#: Format tag written into every checkpoint.
CHECKPOINT_FORMAT = "sop-cosmo-checkpoint/1"
#: Config keys that may change between a run and its resumption: they decide where and how
#: fast the run computes, not what it computes. (The backbone *path* may move; its content is
#: compared by hash instead.)
RUNTIME_KEYS: tuple[str, ...] = ("device", "num_workers", "amp", "compile", "backbone")

_LAST, _BEST, _METRICS = "last.pt", "model.pt", "metrics.jsonl"


# ------------------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; JSON-serialisable (:meth:`to_dict`).

    Attributes
    ----------
    kind : {"cnn", "sop", "stats"}
        Model kind (:func:`sop_cosmo.cosmo.backbones.build_model`).
    epochs : int
        Maximum number of epochs (early stopping may end the run sooner).
    batch_size : int
        Training batch size; the last partial batch of an epoch is dropped.
    eval_batch_size : int
        Batch size of the validation pass.
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW decoupled weight decay.
    warmup_fraction : float
        Linear warm-up length as a fraction of all steps (used when ``warmup_steps`` is None).
    warmup_steps : int, optional
        Linear warm-up length in steps; overrides ``warmup_fraction``.
    min_lr_ratio : float
        The cosine decay ends at ``lr * min_lr_ratio``.
    grad_clip : float, optional
        Maximum global gradient norm; None disables clipping.
    patience : int, optional
        Stop after this many epochs without a better validation loss; None disables.
    checkpoint_every : int
        Also write ``last.pt`` every this many optimiser steps (0: only at epoch ends).
    seed : int
        Seeds model initialisation, dropout and the batch order.
    device : str
        "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    amp : bool
        bf16 autocast on CUDA (ignored on CPU, which always runs fp32).
    compile : bool
        ``torch.compile`` the model on CUDA (ignored on CPU).
    num_workers : int
        DataLoader worker processes (0 keeps loading in the main process).
    model_options : dict
        Overrides of :func:`~sop_cosmo.cosmo.backbones.default_options` for ``kind``.
    stats_options : dict
        Keyword arguments of ``summary_statistics`` for the "stats" features.
    backbone : str, optional
        Path of a trained "cnn" ``model.pt``; required by, and only by, "sop".
    """

    kind: str = "cnn"
    epochs: int = 20
    batch_size: int = 32
    eval_batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 1.0
    patience: int | None = 10
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    num_workers: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    stats_options: dict[str, Any] = field(default_factory=dict)
    backbone: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind: expected one of {MODEL_KINDS}, got {self.kind!r}")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
            "lr": self.lr,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name}: expected > 0, got {value}")
        non_negative = {
            "weight_decay": self.weight_decay,
            "checkpoint_every": self.checkpoint_every,
            "num_workers": self.num_workers,
        }
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"{name}: expected ≥ 0, got {value}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction: expected in [0, 1), got {self.warmup_fraction}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected ≥ 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio: expected in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip: expected > 0 or None, got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience: expected ≥ 1 or None, got {self.patience}")
        if self.kind == "sop" and not self.backbone:
            raise ValueError(
                "backbone: the sop model wraps a trained cnn; pass --backbone RUN_CNN/model.pt"
            )
        if self.kind != "sop" and self.backbone:
            raise ValueError(f"backbone: only the sop model takes a backbone, not {self.kind!r}")
        if self.backbone is not None:
            self.backbone = str(self.backbone)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON and ``torch.save(weights_only)`` safe)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


# ------------------------------------------------------------------------------------- device


def select_device(name: str = "auto") -> torch.device:
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


def runtime_settings(device: torch.device, *, amp: bool = True, compile: bool = False) -> Runtime:
    """The :class:`Runtime` for ``device``: CUDA gets bf16 autocast (if ``amp``), pinned memory
    and optional compilation; CPU runs plain fp32, which keeps it bit-reproducible."""
    cuda = device.type == "cuda"
    return Runtime(device=device, amp=amp and cuda, pin_memory=cuda, compile=compile and cuda)


# --------------------------------------------------------------------------------------- data


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes the pair, so (seed, epoch + 1) and (seed + 1, epoch) do not collide.
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


class EpochBatches(Sampler[Tensor]):
    """Index batches of one epoch: a permutation that depends on (seed, epoch) only.

    The order never reads the global RNG, so it is the same in a resumed run; ``start``
    skips the batches a killed run already trained on.

    ``rank`` / ``world_size`` are the hook for data-parallel training: each rank takes every
    ``world_size``-th batch of the shared permutation (as ``DistributedSampler`` would).
    Single-process training uses the defaults.
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


def _loader(data: PatchData, sampler: Sampler, runtime: Runtime, num_workers: int) -> DataLoader:
    return DataLoader(
        _Batches(data.x, data.y),
        sampler=sampler,
        batch_size=None,  # the sampler yields whole batches
        num_workers=num_workers,
        pin_memory=runtime.pin_memory,
        # Its own generator: iterator creation would otherwise draw from the global RNG and
        # shift dropout after a mid-epoch resume.
        generator=torch.Generator().manual_seed(0),
    )


# ----------------------------------------------------------------------------------- schedule


class WarmupCosine:
    """LR factor: linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio`` at
    ``total`` steps. A class, not a closure, so ``LambdaLR.state_dict`` records its fields."""

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = int(warmup), int(total), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------ RNG / helpers


# The legacy global numpy RNG is seeded, saved and restored on purpose (NPY002): the package
# uses Generators, but a model or a user hook may still draw from np.random.


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": random.getstate(),
        # numpy arrays are not weights_only-loadable; a tensor and plain numbers are.
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _git_sha() -> str:
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


def _version() -> str:
    try:
        return importlib.metadata.version("sop-cosmo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    # Rewritten whole from the checkpoint's history, so the file never holds an epoch that
    # last.pt does not know about (a kill between the two writes is harmless).
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))


def _remove_stale_temps(out: Path) -> None:
    # atomic_path cleans up after exceptions, but not after SIGKILL.
    for name in (_LAST, _BEST, _METRICS):
        for tmp in out.glob(f".{name}.*"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _load(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a sop-cosmo checkpoint (expected {CHECKPOINT_FORMAT})")
    return ckpt


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------- models


def _build(args: dict[str, Any], backbone_args: dict[str, Any] | None) -> nn.Module:
    backbone = None
    if args["kind"] == "sop":
        if backbone_args is None:
            raise ValueError("checkpoint: a sop model needs 'backbone_args'")
        backbone = _build(backbone_args, None)
    return build_model(
        args["kind"],
        in_channels=args["in_channels"],
        patch_size=args["patch_size"],
        n_outputs=args["n_outputs"],
        n_features=args["n_features"],
        options=args["options"],
        backbone=backbone,
    )


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from ``model.pt`` (or ``last.pt``) and load its weights.

    A "sop" checkpoint carries its backbone's arguments and weights, so the original backbone
    file is not needed. The caller's RNG state is left untouched.

    Parameters
    ----------
    path : path-like
        A checkpoint written by :func:`train`.
    device : str or torch.device
        Where to put the model (a name is resolved by :func:`select_device`).

    Returns
    -------
    model : nn.Module
        In eval mode, on ``device``.
    checkpoint : dict
        The checkpoint: ``config``, ``norm``, ``param_names``, ``data_attrs``, ``model_args``,
        ``version``, ``git_sha``, ``epoch``, ``step``, ``val_loss``...
    """
    ckpt = _load(path)
    if not isinstance(device, torch.device):
        device = select_device(device)
    # Building initialises weights from the global RNG; loading must not disturb the caller
    # (a training run loads its backbone after seeding).
    with torch.random.fork_rng(devices=[]):
        model = _build(ckpt["model_args"], ckpt.get("backbone_args"))
    model.load_state_dict(ckpt["model_state"])
    return model.to(device).eval(), ckpt


@torch.no_grad()
def predict(
    model: nn.Module, x: Tensor, *, batch_size: int = 256, runtime: Runtime | None = None
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


def _validate(
    fwd: nn.Module, data: PatchData, runtime: Runtime, batch_size: int
) -> tuple[float, dict[str, float]]:
    pred = predict(fwd, data.x, batch_size=batch_size, runtime=runtime).double()
    loss = float(((pred - data.y.double()) ** 2).mean())
    phys = data.norm.destandardise(pred)
    mse = ((phys - data.y_phys.double()) ** 2).mean(0)
    return loss, {name: float(v) for name, v in zip(data.param_names, mse, strict=True)}


# -------------------------------------------------------------------------------------- train


@dataclass
class _Progress:
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


def _fingerprint(
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


def _check_resumable(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    old, new = _flatten(saved), _flatten(current)
    diffs = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k))
    if diffs:
        lines = [
            f"  {k}: {_short(old.get(k, '<absent>'))} -> {_short(new.get(k, '<absent>'))}"
            for k in diffs[:20]
        ]
        more = f"\n  ... and {len(diffs) - 20} more" if len(diffs) > 20 else ""
        raise ValueError(
            f"{path}: cannot resume, the checkpoint was written with a different setup "
            f"(differing: {', '.join(diffs[:20])}):\n" + "\n".join(lines) + more + "\n"
            f"Delete {path} to start over, or use another --out."
        )


def _prepare_backbone(
    config: TrainConfig,
) -> tuple[nn.Module | None, dict[str, Any] | None, Normalization | None, str | None]:
    """For "sop": the trained cnn, its arguments, its normalisation and its file hash."""
    if config.kind != "sop":
        return None, None, None, None
    path = Path(config.backbone or "")
    cnn, ckpt = load_model(path, "cpu")
    if ckpt["model_args"]["kind"] != "cnn":
        raise ValueError(
            f"{path}: the sop backbone must be a trained cnn, got {ckpt['model_args']['kind']!r}"
        )
    # The frozen cnn was trained on inputs and targets standardised with *its* train split's
    # statistics, and SOP's prediction is a weighted sum of its outputs: SOP must use them too.
    norm = Normalization.from_dict({**ckpt["norm"], "kind": "sop"})
    return cnn, ckpt["model_args"], norm, _sha256(path)


def _metadata(
    config: TrainConfig,
    model_args: dict[str, Any],
    backbone_args: dict[str, Any] | None,
    data: PatchData,
    git_sha: str,
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": config.kind,
        "model_args": model_args,
        "backbone_args": backbone_args,
        "config": config.to_dict(),
        "norm": data.norm.to_dict(),
        "param_names": data.param_names,
        "data_attrs": data.attrs,
        "version": _version(),
        "git_sha": git_sha,
    }


def train(
    train_path: str | os.PathLike,
    val_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Train a regressor of the parameters and write ``out_dir/{model.pt,last.pt,metrics.jsonl}``.

    AdamW on the MSE of standardised targets, linear warm-up then cosine decay (per step),
    gradient clipping, early stopping on the validation loss. When ``out_dir/last.pt`` exists,
    the run continues from it (after checking that it was written with the same setup).

    Parameters
    ----------
    train_path, val_path : path-like
        Patch files; the normalisation is computed from ``train_path`` (for "sop": taken from
        the backbone's checkpoint).
    out_dir : path-like
        The run directory (created).
    config : TrainConfig, optional
        Defaults to ``TrainConfig()`` (a cnn).
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    Path
        ``out_dir/model.pt``, the best checkpoint.

    Raises
    ------
    ValueError
        On bad data, or a ``last.pt`` written with a different setup (the message names the
        differing keys).
    FloatingPointError
        When the loss becomes non-finite.
    """
    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    runtime = runtime_settings(select_device(config.device), amp=config.amp, compile=config.compile)
    git_sha = _git_sha()
    log.info(
        "train %s -> %s on %s (git %s, sop-cosmo %s, torch %s), config %s",
        config.kind,
        out,
        runtime.device,
        git_sha,
        _version(),
        torch.__version__,
        json.dumps(config.to_dict(), sort_keys=True),
    )
    if config.compile and not runtime.compile:
        log.info("compile: ignored on %s", runtime.device)
    # Single process. A DDP version would init the process group here, take rank/world_size
    # from the environment, pass them to EpochBatches, wrap the model in
    # DistributedDataParallel, all-reduce the epoch losses, and write files on rank 0 only.
    rank, world_size = 0, 1

    _seed_everything(config.seed)
    backbone, backbone_args, norm, backbone_sha = _prepare_backbone(config)
    train_data = load_split(train_path, config.kind, norm=norm, stats_options=config.stats_options)
    val_data = load_split(val_path, config.kind, norm=train_data.norm)
    if (val_data.in_channels, val_data.patch_size) != (
        train_data.in_channels,
        train_data.patch_size,
    ):
        raise ValueError(
            f"{val_path}: patches of {val_data.in_channels} bins × {val_data.patch_size} px, "
            f"but {train_path} has {train_data.in_channels} × {train_data.patch_size}"
        )
    model_args = {
        "kind": config.kind,
        "in_channels": train_data.in_channels,
        "patch_size": train_data.patch_size,
        "n_outputs": len(train_data.param_names),
        "n_features": train_data.n_features,
        "options": {**default_options(config.kind), **config.model_options},
    }
    model = build_model(
        config.kind,
        in_channels=model_args["in_channels"],
        patch_size=model_args["patch_size"],
        n_outputs=model_args["n_outputs"],
        n_features=model_args["n_features"],
        options=config.model_options,
        backbone=backbone,
    ).to(runtime.device)
    # Frozen parameters (the sop backbone) stay out of the optimiser and of the clip norm.
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sampler0 = EpochBatches(
        len(train_data), config.batch_size, config.seed, 0, rank=rank, world_size=world_size
    )
    steps_per_epoch = sampler0.batches_per_epoch
    total = steps_per_epoch * config.epochs
    warmup = (
        config.warmup_steps
        if config.warmup_steps is not None
        else round(config.warmup_fraction * total)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(warmup, total, config.min_lr_ratio)
    )
    fingerprint = _fingerprint(config, model_args, train_data, val_data, backbone_sha)
    meta = _metadata(config, model_args, backbone_args, train_data, git_sha)

    state = _Progress()
    last_path, best_path, metrics_path = out / _LAST, out / _BEST, out / _METRICS
    if last_path.exists():
        ckpt = _load(last_path)
        _check_resumable(last_path, ckpt["fingerprint"], fingerprint)
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        state = _Progress(**ckpt["progress"])
        _set_rng_state(ckpt["rng_state"])  # last: nothing above may draw from it afterwards
        _write_metrics(metrics_path, state.history)
        log.info(
            "resuming %s from step %d (epoch %d, batch %d)",
            last_path,
            state.step,
            state.epoch + 1,
            state.batch,
        )
        if state.finished:
            log.info("%s: the run had already finished", last_path)
            return best_path

    def save_last() -> None:
        _save(
            {
                **meta,
                "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(),
                "rng_state": _rng_state(),
                "progress": asdict(state),
                "fingerprint": fingerprint,
                "epoch": state.epoch,
                "step": state.step,
            },
            last_path,
        )

    fwd = torch.compile(model) if runtime.compile else model
    for epoch in range(state.epoch, config.epochs):
        t0 = time.perf_counter()
        sampler = EpochBatches(
            len(train_data),
            config.batch_size,
            config.seed,
            epoch,
            start=state.batch,
            rank=rank,
            world_size=world_size,
        )
        loader = _loader(train_data, sampler, runtime, config.num_workers)
        loss_sum = torch.tensor(state.loss_sum, dtype=torch.float64, device=runtime.device)
        bar = tqdm(
            loader,
            total=steps_per_epoch,
            initial=state.batch,
            disable=not progress,
            desc=f"{config.kind} epoch {epoch + 1}/{config.epochs}",
            leave=False,
        )
        model.train()
        for xb, yb in bar:
            xb = xb.to(runtime.device, non_blocking=runtime.non_blocking)
            yb = yb.to(runtime.device, non_blocking=runtime.non_blocking)
            with runtime.autocast():
                pred = fwd(xb)
            loss = F.mse_loss(pred.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach().double() * len(xb)
            state.step += 1
            state.batch += 1
            state.loss_count += len(xb)
            if state.step % 25 == 0 or state.batch == steps_per_epoch:
                # .item() synchronises the GPU: do it rarely.
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"step {state.step}: the training loss is {value}; lower the lr "
                        f"(now {config.lr}) or check the data"
                    )
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if (
                config.checkpoint_every
                and state.step % config.checkpoint_every == 0
                and state.batch < steps_per_epoch  # the epoch end writes its own
            ):
                state.loss_sum = float(loss_sum)
                save_last()
        bar.close()

        train_loss = float(loss_sum) / max(1, state.loss_count)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"epoch {epoch + 1}: the training loss is {train_loss}")
        val_loss, val_mse = _validate(fwd, val_data, runtime, config.eval_batch_size)
        state.epoch, state.batch, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
        improved = val_loss < state.best_val
        if improved:
            state.best_val, state.bad_epochs = val_loss, 0
            _save(
                {
                    **meta,
                    "model_state": model.state_dict(),
                    "epoch": state.epoch,
                    "step": state.step,
                    "val_loss": val_loss,
                    "val_mse": val_mse,
                },
                best_path,
            )
        else:
            state.bad_epochs += 1
        row = {
            "epoch": state.epoch,
            "step": state.step,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_mse": val_mse,
            "lr": optimizer.param_groups[0]["lr"],
            "best": improved,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        state.history.append(row)
        stop = config.patience is not None and state.bad_epochs >= config.patience
        state.finished = stop or state.epoch == config.epochs
        save_last()
        _write_metrics(metrics_path, state.history)
        log.info(
            "epoch %d/%d step %d: train %.5f, val %.5f%s",
            state.epoch,
            config.epochs,
            state.step,
            train_loss,
            val_loss,
            " (best)" if improved else "",
        )
        if stop:
            log.info("early stop: %d epochs without a better val loss", state.bad_epochs)
            break
    return best_path


# ----------------------------------------------------------------------------------- evaluate


@torch.no_grad()
def evaluate(
    checkpoint_path: str | os.PathLike,
    data_path: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Score a checkpoint on a patch file and write the metrics JSON (DESIGN.md §3.3).

    Writes ``{"mse": {name: float}, "mse_mean": float, "n": int}``, the MSE in the physical
    units of each parameter, and for "sop" models also ``"sop": {"mean_active_groups",
    "mean_mask_fraction", "n_groups"}``. Inference runs in fp32 on every device.

    Parameters
    ----------
    checkpoint_path : path-like
        ``RUN/model.pt``.
    data_path : path-like
        A patch file, standardised with the checkpoint's statistics.
    out_json : path-like
        Output file (written atomically).
    device : str
        "auto", "cpu" or "cuda[:N]".
    batch_size : int
        Inference batch size.

    Returns
    -------
    dict
        What was written.
    """
    model, ckpt = load_model(checkpoint_path, device)
    dev = next(model.parameters()).device
    norm = Normalization.from_dict(ckpt["norm"])
    data = load_split(data_path, ckpt["model_args"]["kind"], norm=norm)
    sop = hasattr(model, "explain")
    preds, active, mask_frac = [], 0.0, 0.0
    for s in range(0, len(data), batch_size):
        xb = data.x[s : s + batch_size].to(dev)
        if sop:
            out = model.explain(xb)
            preds.append(out.prediction.float().cpu())
            # groups with weight > 0, per map and output; then averaged
            active += float((out.weights > 0).sum(1).double().mean(1).sum())
            mask_frac += float(out.masks.flatten(2).double().mean(2).mean(1).sum())
        else:
            preds.append(model(xb).float().cpu())
    phys = data.destandardise(torch.cat(preds).double())
    mse = ((phys - data.y_phys.double()) ** 2).mean(0)
    result: dict[str, Any] = {
        "mse": {name: float(v) for name, v in zip(data.param_names, mse, strict=True)},
        "mse_mean": float(mse.mean()),
        "n": len(data),
    }
    if sop:
        result["sop"] = {
            "mean_active_groups": active / len(data),
            "mean_mask_fraction": mask_frac / len(data),
            "n_groups": int(model.n_groups),
        }
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    log.info("evaluate %s on %s: %s", checkpoint_path, data_path, json.dumps(result))
    return result
