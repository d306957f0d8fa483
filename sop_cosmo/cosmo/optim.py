"""How the training stage steps: the learning-rate schedules and the optimiser's groups.

The SOP generator (with its feature copy) is its own parameter group, so it can start later
(``TrainConfig.selector_epochs``: the selector trains alone first) and learn at a fraction of
the selector's rate (``generator_lr_ratio``).
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["GeneratorSchedule", "WarmupCosine", "param_groups"]


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


class GeneratorSchedule(WarmupCosine):
    """LR factor of the SOP generator: 0 for the first ``frozen_steps`` (the selector trains
    alone), then ``ratio`` × the warm-up/cosine schedule. Plain fields only, so the
    checkpoint's scheduler state loads with ``weights_only=True``."""

    def __init__(
        self, warmup: int, total: int, min_ratio: float, *, ratio: float, frozen_steps: int
    ) -> None:
        super().__init__(warmup, total, min_ratio)
        self.ratio, self.frozen_steps = float(ratio), int(frozen_steps)

    def __call__(self, step: int) -> float:
        return 0.0 if step < self.frozen_steps else self.ratio * super().__call__(step)


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters: the SOP generator's (and its feature copy's) apart from the rest."""
    groups: dict[str, list[nn.Parameter]] = {"main": [], "generator": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            is_generator = name.startswith(("sop.generator.", "sop.feature_backbone."))
            groups["generator" if is_generator else "main"].append(p)
    return groups
