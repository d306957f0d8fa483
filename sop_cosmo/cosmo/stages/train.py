"""The training stage: the one training loop of the cosmology regressors (cnn, sop, stats).

``train`` writes ``RUN/model.pt`` (the best checkpoint by validation loss), ``RUN/last.pt`` (the
resumable state) and ``RUN/metrics.jsonl`` (one line per epoch); the checkpoints' keys are in
docs/contracts.md, "Checkpoint". Calling :func:`train` again continues from ``last.pt``: the
batch order is a function of (seed, epoch) only and the RNG states are restored, so on CPU a
run killed and resumed ends with the same weights, bit for bit, as one that never stopped
(docs/training.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sop_cosmo._io import atomic_path
from sop_cosmo.core import DIAGNOSTICS, group_diagnostics
from sop_cosmo.cosmo.config import TrainConfig, model_options
from sop_cosmo.cosmo.contracts.checkpoint import (
    CHECKPOINT_FORMAT,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)
from sop_cosmo.cosmo.dataset import Normalization, PatchData, load_split
from sop_cosmo.cosmo.models import build_model, load_model
from sop_cosmo.cosmo.optim import GeneratorSchedule, WarmupCosine, param_groups
from sop_cosmo.cosmo.runtime import (
    EpochBatches,
    Runtime,
    batch_loader,
    predict,
    runtime_settings,
    select_device,
)
from sop_cosmo.seeding import rng_state, seed_everything, set_rng_state

__all__ = ["RUNTIME_KEYS", "train"]

log = logging.getLogger(__name__)

#: Config keys that may change between a run and its resumption: they decide where and how
#: fast the run computes, not what it computes. (The backbone *path* may move; its content is
#: compared by hash instead.)
RUNTIME_KEYS: tuple[str, ...] = (
    "device", "num_workers", "amp", "compile", "backbone", "in_memory",
)  # fmt: skip

_LAST, _BEST, _METRICS = "last.pt", "model.pt", "metrics.jsonl"


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


def _validate(
    fwd: nn.Module, data: PatchData, runtime: Runtime, batch_size: int
) -> tuple[float, dict[str, float]]:
    pred = predict(fwd, data.x, batch_size=batch_size, runtime=runtime).double()
    loss = float(((pred - data.y.double()) ** 2).mean())
    phys = data.norm.destandardise(pred)
    mse = ((phys - data.y_phys.double()) ** 2).mean(0)
    return loss, {name: float(v) for name, v in zip(data.param_names, mse, strict=True)}


#: Validation maps the per-epoch group diagnostics look at (enough for a stable mean).
_DIAGNOSTIC_MAPS = 256


@torch.no_grad()
def _group_diagnostics(
    model: nn.Module, data: PatchData, runtime: Runtime, batch_size: int
) -> dict[str, float]:
    """For sop: active groups, distinct masks and coverage on the first validation maps."""
    if not hasattr(model, "explain"):
        return {}
    model.eval()
    x = data.x[:_DIAGNOSTIC_MAPS]
    rows = []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].to(runtime.device, non_blocking=runtime.non_blocking)
        rows.append((len(xb), group_diagnostics(model.explain(xb))))
    n = sum(k for k, _ in rows)
    return {key: sum(k * r[key] for k, r in rows) / n for key in DIAGNOSTICS}


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


def _prepare_backbone(
    config: TrainConfig,
) -> tuple[nn.Module | None, dict[str, Any] | None, Normalization | None, str | None]:
    """For "sop": the trained cnn, its arguments, its normalisation and its file hash."""
    if config.kind != "sop":
        return None, None, None, None
    path = Path(config.backbone or "")
    cnn, ckpt = load_model(path, "cpu")
    if ckpt.kind != "cnn":
        raise ValueError(f"{path}: the sop backbone must be a trained cnn, got {ckpt.kind!r}")
    # The frozen cnn was trained on inputs and targets standardised with *its* train split's
    # statistics, and SOP's prediction is a weighted sum of its outputs: SOP must use them too.
    norm = Normalization.from_dict({**ckpt.norm, "kind": "sop"})
    return cnn, ckpt.model_args, norm, _sha256(path)


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

    The normalisation is computed from ``train_path`` (for "sop": taken from the backbone's
    checkpoint); ``config`` defaults to ``TrainConfig()`` (a cnn); ``progress`` shows a tqdm
    bar over batches. Returns ``out_dir/model.pt``, the best checkpoint.

    Raises ``ValueError`` on bad data or on a ``last.pt`` written with a different setup (the
    message names the differing keys), ``FloatingPointError`` when the loss becomes non-finite.
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

    seed_everything(config.seed)
    backbone, backbone_args, norm, backbone_sha = _prepare_backbone(config)
    train_data = load_split(
        train_path, config.kind, norm=norm, stats_options=config.stats_options,
        in_memory=config.in_memory,
    )  # fmt: skip
    val_data = load_split(val_path, config.kind, norm=train_data.norm, in_memory=config.in_memory)
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
        "options": {**model_options(config.kind), **config.model_options},
    }
    shape = {k: model_args[k] for k in ("in_channels", "patch_size", "n_outputs", "n_features")}
    model = build_model(config.kind, **shape, options=config.model_options, backbone=backbone).to(
        runtime.device
    )
    # Frozen parameters (the sop backbone) stay out of the optimiser and of the clip norm.
    groups = param_groups(model)
    params = [p for g in groups.values() for p in g]
    optimizer = torch.optim.AdamW(
        [{"params": g} for g in groups.values() if g],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = EpochBatches(
        len(train_data), config.batch_size, config.seed, 0, rank=rank, world_size=world_size
    ).batches_per_epoch
    total = steps_per_epoch * config.epochs
    warmup = (
        config.warmup_steps
        if config.warmup_steps is not None
        else round(config.warmup_fraction * total)
    )
    schedule = WarmupCosine(warmup, total, config.min_lr_ratio)
    generator_schedule = GeneratorSchedule(
        warmup,
        total,
        config.min_lr_ratio,
        ratio=config.generator_lr_ratio,
        frozen_steps=config.selector_epochs * steps_per_epoch,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [
            generator_schedule if name == "generator" else schedule
            for name, g in groups.items()
            if g
        ],
    )
    fingerprint = _fingerprint(config, model_args, train_data, val_data, backbone_sha)
    meta = _metadata(config, model_args, backbone_args, train_data, git_sha)

    state = _Progress()
    last_path, best_path, metrics_path = out / _LAST, out / _BEST, out / _METRICS
    if last_path.exists():
        ckpt = load_checkpoint(last_path).payload
        check_resumable(last_path, ckpt["fingerprint"], fingerprint)
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        state = _Progress(**ckpt["progress"])
        set_rng_state(ckpt["rng_state"])  # last: nothing above may draw from it afterwards
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
        save_checkpoint(
            {
                **meta,
                "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(),
                "rng_state": rng_state(),
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
        loader = batch_loader(train_data.x, train_data.y, sampler, runtime, config.num_workers)
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
        groups_used = _group_diagnostics(model, val_data, runtime, config.eval_batch_size)
        state.epoch, state.batch, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
        improved = val_loss < state.best_val
        if improved:
            state.best_val, state.bad_epochs = val_loss, 0
            save_checkpoint(
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
            **groups_used,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        state.history.append(row)
        stop = config.patience is not None and state.bad_epochs >= config.patience
        state.finished = stop or state.epoch == config.epochs
        save_last()
        _write_metrics(metrics_path, state.history)
        groups_text = "".join(f", {k} {v:.2f}" for k, v in groups_used.items())
        log.info(
            "epoch %d/%d step %d: train %.5f, val %.5f%s%s",
            state.epoch,
            config.epochs,
            state.step,
            train_loss,
            val_loss,
            groups_text,
            " (best)" if improved else "",
        )
        if progress and groups_used:
            tqdm.write(f"{config.kind} epoch {state.epoch}: val {val_loss:.4f}{groups_text}")
        if stop:
            log.info("early stop: %d epochs without a better val loss", state.bad_epochs)
            break
    return best_path
