"""One training epoch through the real trainer, timed, for bench/gpu_check.sh.

    python bench/_gpu_epoch.py write --out DIR --n 100000 [--val 4096]
    python bench/_gpu_epoch.py train --data DIR --out RUN --model cnn [--backbone RUN_CNN/model.pt]
        [--compile] [--in-memory] [--batch 128] [--workers 8] [--device cuda]
    torchrun --standalone --nproc-per-node 2 bench/_gpu_epoch.py train ...   (DDP)

``write`` makes DIR/{train,val}.h5 of random 4-bin 66×66 patches in the patch-file contract
(bench/_train_steps.py's ``write_split``). ``train`` runs :func:`~sop_cosmo.cosmo.stages.train.
train` for one epoch (bf16 autocast on CUDA; ``--compile``: torch.compile) and prints one JSON
line from rank 0: the epoch's wall time (statistics pass, warm-up or compilation, validation
included), and the steady training rate in samples/s over the steps after the first
``--warmup``, timed with the device synchronised at both ends (global batch, all ranks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import h5py
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_steps import write_split

from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.stages.train import train


def _write(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_split(out / "train.h5", args.n, bins=4, size=66, seed=0)
    write_split(out / "val.h5", args.val, bins=4, size=66, seed=1)
    gb = (out / "train.h5").stat().st_size / 1e9
    print(json.dumps({"wrote": str(out), "n": args.n, "val": args.val, "train_gb": round(gb, 2),
                      "seconds": round(time.perf_counter() - t0, 1)}))  # fmt: skip


def _train(args: argparse.Namespace) -> None:
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    data = Path(args.data)
    with h5py.File(data / "train.h5", "r") as f:
        last = f["kappa"].shape[0] // args.batch  # optimiser steps of the epoch, on every rank
    marks: dict[str, float] = {}
    steps = [0]

    def on_step(*_a: object, **_k: object) -> None:
        steps[0] += 1
        if steps[0] in (args.warmup, last):
            if cuda:
                torch.cuda.synchronize()
            marks["start" if steps[0] == args.warmup else "end"] = time.perf_counter()

    register_optimizer_step_post_hook(on_step)
    config = TrainConfig(
        kind=args.model, epochs=1, batch_size=args.batch, device=args.device, amp=True,
        compile=args.compile, num_workers=args.workers, in_memory=args.in_memory,
        checkpoint_every=0, patience=None, backbone=args.backbone,
    )  # fmt: skip
    t0 = time.perf_counter()
    train(data / "train.h5", data / "val.h5", args.out, config, progress=False)
    wall = time.perf_counter() - t0
    if os.environ.get("RANK", "0") != "0":
        return
    text = (Path(args.out) / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    timed = last - args.warmup
    rate = timed * args.batch / (marks["end"] - marks["start"]) if timed > 0 else float("nan")
    out = {
        "model": args.model, "compile": args.compile, "in_memory": args.in_memory,
        "device": "cuda" if cuda else "cpu", "ranks": world, "batch": args.batch,
        "workers": args.workers, "steps": steps[0], "train_loss": rows[-1]["train_loss"],
        "val_loss": rows[-1]["val_loss"], "epoch_s": round(rows[-1]["seconds"], 2),
        "wall_s": round(wall, 2), "samples_per_s": round(rate, 1),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if cuda else None,
    }  # fmt: skip
    print(json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--out", required=True)
    w.add_argument("--n", type=int, default=100_000)
    w.add_argument("--val", type=int, default=4096)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--model", choices=["cnn", "sop"], default="cnn")
    t.add_argument("--backbone")
    t.add_argument("--compile", action="store_true")
    t.add_argument("--in-memory", action="store_true")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--workers", type=int, default=8)
    t.add_argument("--warmup", type=int, default=20)
    t.add_argument("--device", default="cuda")
    args = parser.parse_args()
    _write(args) if args.command == "write" else _train(args)


if __name__ == "__main__":
    main()
