"""Training throughput: one SOP step against G CNN steps with the pipeline's own models.

    python bench/train_throughput.py [--batch 16] [--bins 4] [--patch 66] [--groups 20]

Both steps use the same batch, AdamW, gradient clipping and the trainer's runtime settings
(bf16 autocast, pinned memory and non-blocking copies on CUDA): a ``cnn`` step (the anchor
convnet from :mod:`sop_cosmo.cosmo.models`) and an ``sop`` step around that CNN (frozen).
Printed: SOP step / (G × CNN step), on CPU and on CUDA when present, measured alternately in
one run. bench/sop_overhead.py measures the same ratio for the bare core with one bin.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from sop_overhead import timed  # bench/ is on sys.path when this script runs
from torch import nn

from sop_cosmo.cosmo.models import build_model
from sop_cosmo.cosmo.runtime import runtime_settings


def measure(device: torch.device, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    runtime = runtime_settings(device, amp=True)
    shape = {"in_channels": args.bins, "patch_size": args.patch, "n_outputs": 2}
    cnn = build_model("cnn", **shape).to(device)
    sop_cnn = build_model("cnn", **shape).to(device)
    options = {"n_groups": args.groups, "attention_patch": 6}
    sop = build_model("sop", **shape, backbone=sop_cnn, options=options).to(device)
    x_host = torch.randn(args.batch, args.bins, args.patch, args.patch)
    y_host = torch.randn(args.batch, 2)
    if runtime.pin_memory:
        x_host, y_host = x_host.pin_memory(), y_host.pin_memory()

    def step_of(model: nn.Module):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step() -> None:
            x = x_host.to(device, non_blocking=runtime.non_blocking)
            y = y_host.to(device, non_blocking=runtime.non_blocking)
            with runtime.autocast():
                loss = nn.functional.mse_loss(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()

        return step

    steps = {"cnn": step_of(cnn.train()), "sop": step_of(sop.train())}
    for _ in range(3):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(timed(step, device))
    cnn_t, sop_t = (statistics.median(times[k]) for k in ("cnn", "sop"))
    return {"cnn_ms": 1e3 * cnn_t, "sop_ms": 1e3 * sop_t, "ratio": sop_t / (args.groups * cnn_t)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument("--patch", type=int, default=66)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"batch={args.batch} bins={args.bins} patch={args.patch} G={args.groups} "
          f"torch={torch.__version__} threads={torch.get_num_threads()}")  # fmt: skip
    for name in devices:
        r = measure(torch.device(name), args)
        print(f"{name:>5}: CNN step {r['cnn_ms']:.2f} ms, SOP step {r['sop_ms']:.2f} ms, "
              f"SOP / (G x CNN) = {r['ratio']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
