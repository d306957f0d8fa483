"""SOP training-step cost against G backbone training steps, measured side by side.

    python bench/sop_overhead.py [--batch 16] [--groups 20] [--repeats 20] [--device cpu]

Both steps use the same batch and the anchor's CosmoGrid CNN on 66×66 inputs (docs/training.md):
one SOP step (frozen backbone, trainable generator copy, B·G masked inputs, backward into the
generator) against G plain backbone steps (forward, backward, AdamW). The printed ratio is
SOP / (G × backbone); the target is ≤ 1.2. Steps alternate so drift hits both equally.

A third step shows the floor: the frozen backbone on the same B·G inputs with the gradient
taken to the *input* (what any gradient path to the masks needs). SOP / floor is the share of
the cost that SOP's own parts (generator, its feature copy, selector) add.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from sop_cosmo.core import ImageBackbone, SOPConfig, SumOfParts
from sop_cosmo.cosmo.models import CNNRegressor


def anchor_cnn(n_outputs: int = 2) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Trunk, encoder and head of the anchor's CNN on 66×66 (the pipeline's own CNNRegressor)."""
    cnn = CNNRegressor(1, 66, n_outputs)  # defaults are the anchor's convnet
    return cnn.trunk, nn.Sequential(cnn.trunk, cnn.fc), cnn.head


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(device: torch.device, batch: int, groups: int, repeats: int) -> dict:
    torch.manual_seed(0)
    trunk, encoder, head = anchor_cnn()
    backbone = ImageBackbone(
        encoder, head, image_size=(66, 66), patch_size=6, in_channels=1, n_outputs=2,
        pooled_dim=32, feature_net=trunk, feature_dim=48,
    ).to(device)  # fmt: skip
    plain = nn.Sequential(encoder, head).to(device)
    sop = SumOfParts(backbone, SOPConfig(n_groups=groups, keep_fraction=0.2)).to(device)
    x = torch.randn(batch, 1, 66, 66, device=device)
    y = torch.randn(batch, 2, device=device)
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-4)
    sop_opt = torch.optim.AdamW([p for p in sop.parameters() if p.requires_grad], lr=1e-4)

    def plain_step() -> None:
        for p in plain.parameters():
            p.requires_grad_(True)
        loss = nn.functional.mse_loss(plain(x), y)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    def sop_step() -> None:
        for p in plain.parameters():  # the shared backbone is frozen inside SOP
            p.requires_grad_(False)
        loss = nn.functional.mse_loss(sop(x).prediction, y)
        sop_opt.zero_grad(set_to_none=True)
        loss.backward()
        sop_opt.step()

    x_all = x.repeat(groups, 1, 1, 1)
    y_all = y.repeat(groups, 1)

    def floor_step() -> None:
        for p in plain.parameters():
            p.requires_grad_(False)
        x_in = x_all.clone().requires_grad_(True)
        nn.functional.mse_loss(plain(x_in), y_all).backward()

    steps = {"plain": plain_step, "sop": sop_step, "floor": floor_step}
    for _ in range(3):  # warm-up
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed(step, device))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {
        "device": str(device),
        "backbone_step_ms": 1e3 * med["plain"],
        "sop_step_ms": 1e3 * med["sop"],
        "floor_ms": 1e3 * med["floor"],
        "ratio": med["sop"] / (groups * med["plain"]),
        "floor_ratio": med["floor"] / (groups * med["plain"]),
        "sop_over_floor": med["sop"] / med["floor"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="batch size (anchor: 16)")
    parser.add_argument("--groups", type=int, default=20, help="groups G (anchor: 20)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [args.device]
    print(f"batch={args.batch} G={args.groups} torch={torch.__version__} "
          f"threads={torch.get_num_threads()}")  # fmt: skip
    for name in devices:
        r = measure(torch.device(name), args.batch, args.groups, args.repeats)
        print(
            f"{r['device']:>5}: backbone step {r['backbone_step_ms']:.2f} ms, "
            f"SOP step {r['sop_step_ms']:.2f} ms, "
            f"SOP / (G x backbone) = {r['ratio']:.3f} (target <= 1.2)"
        )
        print(
            f"{'':>5}  floor (frozen backbone, grad to input, B*G inputs) {r['floor_ms']:.2f} ms: "
            f"floor / (G x backbone) = {r['floor_ratio']:.3f}, SOP / floor = "
            f"{r['sop_over_floor']:.3f}"
        )


if __name__ == "__main__":
    main()
