"""A short training run for the data benchmarks (bench/memory_scale.py, bench/stream_throughput.py).

    python bench/_train_steps.py --train T.h5 --val V.h5 [--in-memory] [--steps 50] [--batch 32]

The trainer's own pieces, in one process: ``load_split`` of the train split (statistics) and
the val split, the CNN, AdamW, the seeded ``EpochBatches`` order through ``batch_loader``, a
fixed number of steps (so every size trains the same), then ``predict`` over the val split.
Prints one JSON line: peak RSS of this process, load time and training samples/s.
:func:`write_split` writes the synthetic patch files the benchmarks use.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sop_cosmo.cosmo.contracts.patchfile import PatchFileWriter
from sop_cosmo.cosmo.dataset import load_split
from sop_cosmo.cosmo.models import build_model
from sop_cosmo.cosmo.runtime import EpochBatches, batch_loader, predict, runtime_settings

ATTRS = {"pixel_arcmin": 6.87, "nside": 512, "smoothing_arcmin": 0.0, "noise": "none",
         "source": "simulated"}  # fmt: skip


def write_split(path: Path, n: int, *, bins: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A patch file of ``n`` random patches (written in blocks, so any n fits in memory)."""
    rng = np.random.default_rng(seed)
    attrs = {**ATTRS, "patch_size": size, "bins": list(range(1, bins + 1))}
    with PatchFileWriter(path, n_bins=bins, patch_size=size, param_names=["Om", "s8"],
                         attrs=attrs) as w:  # fmt: skip
        for s in range(0, n, 1024):
            k = min(1024, n - s)
            params = rng.uniform([0.1, 0.4], [0.5, 1.4], (k, 2)).astype(np.float32)
            kappa = (
                0.01
                * params[:, 1, None, None, None]
                * rng.standard_normal((k, bins, size, size), dtype=np.float32)
            )
            w.append(kappa, params, np.arange(s, s + k))
    return path


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    cpu = runtime_settings(torch.device("cpu"))
    t0 = time.perf_counter()
    train = load_split(args.train, "cnn", in_memory=args.in_memory)
    val = load_split(args.val, "cnn", norm=train.norm, in_memory=args.in_memory)
    load_s = time.perf_counter() - t0
    model = build_model("cnn", in_channels=train.in_channels, patch_size=train.patch_size,
                        n_outputs=2)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    done, epoch, t_start = 0, 0, None
    while done < args.warmup + args.steps:
        sampler = EpochBatches(len(train), args.batch, 0, epoch)
        for xb, yb in batch_loader(train.x, train.y, sampler, cpu, 0):
            if done == args.warmup:
                t_start = time.perf_counter()
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == args.warmup + args.steps:
                break
        epoch += 1
    train_s = time.perf_counter() - t_start
    predict(model, val.x, batch_size=256)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"n": len(train), "in_memory": args.in_memory, "peak_rss_mb": rss_mb,
            "load_s": load_s, "samples_per_s": args.steps * args.batch / train_s}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--in-memory", action="store_true")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
