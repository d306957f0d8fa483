"""The small epoch loop the vision and text demos train with (no domain knowledge).

The cosmology models have their own loop (:mod:`sop_cosmo.cosmo.stages.train`: checkpoints,
resume, early stopping); this one is for in-memory demos: shuffled index batches from one
generator, an optimizer step (and an optional scheduler step) per batch, and, with a validation
score, the parameters of the best epoch restored at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from sop_cosmo._progress import progress_bar

__all__ = ["train_epochs"]


def train_epochs(
    module: nn.Module,
    batch_loss: Callable[[Tensor], Tensor],
    n_examples: int,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    val_score: Callable[[], float] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> dict[str, list[float]]:
    """Run ``epochs`` epochs of minibatch training; leave ``module`` in eval mode.

    Each epoch puts ``module`` in train mode, shuffles ``range(n_examples)`` with ``gen`` into
    batches of ``batch_size`` (the last one may be short) and, per batch, minimises
    ``batch_loss(index)``. ``batch_loss`` may draw from ``gen`` too (masks, augmentation); the
    permutation of an epoch is drawn before its first batch. After the epoch ``module`` is in
    eval mode and ``val_score()`` (higher is better) is recorded; the state of the epoch with
    the best score (the first one on ties) is restored at the end.

    Returns
    -------
    dict
        ``"loss"``: mean training loss per epoch; ``"val"``: the validation scores (empty
        without ``val_score``).
    """
    history: dict[str, list[float]] = {"loss": [], "val": []}
    best_state: dict[str, Tensor] | None = None
    for _ in (bar := progress_bar(range(epochs), desc=desc, leave=False, disable=not progress)):
        module.train()
        losses = []
        for idx in torch.randperm(n_examples, generator=gen).split(batch_size):
            loss = batch_loss(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
        history["loss"].append(float(np.mean(losses)))
        module.eval()
        if val_score is not None:
            score = float(val_score())
            if not history["val"] or score > max(history["val"]):
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            history["val"].append(score)
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history
