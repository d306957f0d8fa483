"""The training stage: the one training loop of the cosmology regressors (cnn, sop, stats).

``train`` writes ``RUN/model.pt`` (the best checkpoint by validation loss), ``RUN/last.pt`` (the
resumable state) and ``RUN/metrics.jsonl`` (one line per epoch); the checkpoints' keys are in
docs/contracts.md, "Checkpoint". Calling :func:`train` again continues from ``last.pt``: the
batch order is a function of (seed, epoch) only and the RNG states are restored, so on CPU a
run killed and resumed ends with the same weights, bit for bit, as one that never stopped
(docs/training.md). Under ``torchrun`` the same function trains data-parallel: rank 0 alone
writes the files, and a run of W ranks equals a one-process run of the same (global) batch
(:mod:`sop_cosmo.cosmo.distributed`; docs/pipeline.md, "Multi-GPU training").
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sop_cosmo._progress import interactive, progress_bar, progress_write
from sop_cosmo.core import mean_group_diagnostics
from sop_cosmo.cosmo import runfiles
from sop_cosmo.cosmo.config import TrainConfig, model_options
from sop_cosmo.cosmo.contracts.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from sop_cosmo.cosmo.dataset import Normalization, PatchData, load_split
from sop_cosmo.cosmo.distributed import (
    Ranks,
    all_sum,
    local_batch,
    process_group,
    rank_rng_states,
    ranks_from_env,
    restore_rng,
    seed_rank,
    shard,
    training_device,
    wrap,
)
from sop_cosmo.cosmo.models import build_model, load_model
from sop_cosmo.cosmo.optim import GeneratorSchedule, WarmupCosine, param_groups
from sop_cosmo.cosmo.runtime import EpochBatches, Runtime, batch_loader, runtime_settings
from sop_cosmo.seeding import rng_state, seed_everything

__all__ = ["RUNTIME_KEYS", "train"]

log = logging.getLogger(__name__)

#: Config keys that may change between a run and its resumption (where and how fast it runs).
RUNTIME_KEYS = runfiles.RUNTIME_KEYS


@torch.no_grad()
def _validate(
    fwd: nn.Module, data: PatchData, runtime: Runtime, batch_size: int, ranks: Ranks
) -> tuple[float, dict[str, float]]:
    """Standardised MSE and physical MSE per parameter; each rank predicts its shard of the
    split, and the sums of squared errors are all-reduced."""
    fwd.eval()
    rows = shard(len(data), ranks)
    sums = torch.zeros(1 + len(data.param_names), dtype=torch.float64)
    for s in range(rows.start, rows.stop, batch_size):
        e = min(s + batch_size, rows.stop)
        xb = data.x[s:e].to(runtime.device, non_blocking=runtime.non_blocking)
        with runtime.autocast():
            pred = fwd(xb).float().cpu().double()
        sums[0] += ((pred - data.y[s:e].double()) ** 2).sum()
        sums[1:] += ((data.norm.destandardise(pred) - data.y_phys[s:e].double()) ** 2).sum(0)
    sums = all_sum(sums, ranks, runtime)
    loss = float(sums[0]) / (len(data) * len(data.param_names))
    mse = sums[1:] / len(data)
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
    return mean_group_diagnostics(
        model.explain(x[s : s + batch_size].to(runtime.device, non_blocking=runtime.non_blocking))
        for s in range(0, len(x), batch_size)
    )


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
    return cnn, ckpt.model_args, norm, runfiles.sha256(path)


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
    bar over batches. Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls this function:
    it joins the process group, trains its share of each batch, and rank 0 writes the files
    (:mod:`sop_cosmo.cosmo.distributed`). Returns ``out_dir/model.pt``, the best checkpoint.

    Raises ``ValueError`` on bad data or on a ``last.pt`` written with a different setup (the
    message names the differing keys), ``FloatingPointError`` when the loss becomes non-finite.
    """
    config = config or TrainConfig()
    ranks = ranks_from_env()
    device = training_device(config.device, ranks)
    runtime = runtime_settings(device, amp=config.amp, compile=config.compile)
    if not ranks.main:  # rank 0 alone logs and shows progress; warnings and errors still show
        logging.getLogger("sop_cosmo").setLevel(logging.WARNING)
    with process_group(ranks, device):
        return _train(train_path, val_path, Path(out_dir), config, runtime, ranks,
                      progress and ranks.main)  # fmt: skip


def _train(
    train_path: str | os.PathLike,
    val_path: str | os.PathLike,
    out: Path,
    config: TrainConfig,
    runtime: Runtime,
    ranks: Ranks,
    progress: bool,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if ranks.main:
        runfiles.remove_stale_temps(out)
    sha = runfiles.git_sha()
    log.info(
        "train %s -> %s on %s%s (git %s, sop-cosmo %s, torch %s), config %s",
        config.kind,
        out,
        runtime.device,
        f" × {ranks.world_size} ranks" if ranks.active else "",
        sha,
        runfiles.package_version(),
        torch.__version__,
        json.dumps(config.to_dict(), sort_keys=True),
    )
    if config.compile and not runtime.compile:
        log.info("compile: ignored on %s", runtime.device)

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
    batch = local_batch(config.batch_size, len(train_data), ranks)
    model_args = {
        "kind": config.kind,
        "in_channels": train_data.in_channels,
        "patch_size": train_data.patch_size,
        "n_outputs": len(train_data.param_names),
        "n_features": train_data.n_features,
        "options": {**model_options(config.kind), **config.model_options},
    }
    shape = {k: model_args[k] for k in ("in_channels", "patch_size", "n_outputs", "n_features")}
    model = build_model(config.kind, **shape, options=config.model_options, backbone=backbone)
    if ranks.active:  # BatchNorm statistics over the global batch, as in one process
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(runtime.device)
    seed_rank(config.seed, ranks)  # every rank built the same weights; now its own draws
    # Frozen parameters (the sop backbone) stay out of the optimiser and of the clip norm.
    groups = param_groups(model)
    params = [p for g in groups.values() for p in g]
    optimizer = torch.optim.AdamW(
        [{"params": g} for g in groups.values() if g],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )

    def epoch_batches(epoch: int, start: int = 0) -> EpochBatches:
        # The global batch b is rows [b·B, (b+1)·B) of the (seed, epoch) permutation; rank r
        # takes the r-th of its W equal parts (EpochBatches deals local batches round-robin).
        return EpochBatches(len(train_data), batch, config.seed, epoch, start=start,
                            rank=ranks.rank, world_size=ranks.world_size)  # fmt: skip

    steps_per_epoch = epoch_batches(0).batches_per_epoch
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
        # at most half the run (rounded up), so that a short run still trains its generator
        frozen_steps=min(config.selector_epochs, (config.epochs + 1) // 2) * steps_per_epoch,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [
            generator_schedule if name == "generator" else schedule
            for name, g in groups.items()
            if g
        ],
    )
    fingerprint = runfiles.fingerprint(config, model_args, train_data, val_data, backbone_sha)
    meta = runfiles.metadata(config, model_args, backbone_args, train_data, sha)

    state = runfiles.Progress()
    last_path, best_path, metrics_path = (
        out / runfiles.LAST,
        out / runfiles.BEST,
        out / runfiles.METRICS,
    )
    if last_path.exists():  # every rank loads the same file
        ckpt = load_checkpoint(last_path).payload
        check_resumable(last_path, ckpt["fingerprint"], fingerprint)
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        state = runfiles.Progress(**ckpt["progress"])
        restore_rng(ckpt, config.seed, ranks)  # last: nothing above may draw from it afterwards
        if ranks.main:
            runfiles.write_metrics(metrics_path, state.history)
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

    # Σ batch loss · batch size of this rank since the last checkpoint; added, summed over the
    # ranks, to state.loss_sum whenever last.pt is written, so a resumed run adds the same.
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)

    def save_last() -> None:
        state.loss_sum += float(all_sum(loss_sum, ranks, runtime))
        loss_sum.zero_()
        states = rank_rng_states(ranks)  # a collective: every rank takes part
        if not ranks.main:
            return
        save_checkpoint(
            {
                **meta,
                "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(),
                "rng_state": rng_state(),
                **({"rank_rng_states": states} if states is not None else {}),
                "progress": asdict(state),
                "fingerprint": fingerprint,
                "epoch": state.epoch,
                "step": state.step,
                "world_size": ranks.world_size,
            },
            last_path,
        )

    net = wrap(model, ranks, runtime.device, find_unused=config.kind == "sop")
    fwd = torch.compile(net) if runtime.compile else net
    for epoch in range(state.epoch, config.epochs):
        t0 = time.perf_counter()
        sampler = epoch_batches(epoch, state.batch)
        loader = batch_loader(train_data.x, train_data.y, sampler, runtime, config.num_workers)
        bar = progress_bar(
            loader,
            total=steps_per_epoch,
            initial=state.batch,
            disable=not progress,
            desc=f"{config.kind} epoch {epoch + 1}/{config.epochs}",
            leave=False,
        )
        fwd.train()
        for xb, yb in bar:
            xb = xb.to(runtime.device, non_blocking=runtime.non_blocking)
            yb = yb.to(runtime.device, non_blocking=runtime.non_blocking)
            with runtime.autocast():
                pred = fwd(xb)
            loss = F.mse_loss(pred.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach().double() * len(xb)
            state.step += 1
            state.batch += 1
            state.loss_count += len(xb) * ranks.world_size
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
                save_last()
        bar.close()

        state.loss_sum += float(all_sum(loss_sum, ranks, runtime))
        loss_sum.zero_()
        train_loss = state.loss_sum / max(1, state.loss_count)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"epoch {epoch + 1}: the training loss is {train_loss}")
        val_loss, val_mse = _validate(fwd, val_data, runtime, config.eval_batch_size, ranks)
        groups_used = (
            _group_diagnostics(model, val_data, runtime, config.eval_batch_size)
            if ranks.main
            else {}
        )
        state.epoch, state.batch, state.loss_sum, state.loss_count = epoch + 1, 0, 0.0, 0
        improved = val_loss < state.best_val
        if improved:
            state.best_val, state.bad_epochs = val_loss, 0
            if ranks.main:
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
        if ranks.main:
            runfiles.write_metrics(metrics_path, state.history)
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
        if progress and groups_used and interactive():  # elsewhere the log line shows it
            progress_write(f"{config.kind} epoch {state.epoch}: val {val_loss:.4f}{groups_text}")
        if stop:
            log.info("early stop: %d epochs without a better val loss", state.bad_epochs)
            break
    return best_path
