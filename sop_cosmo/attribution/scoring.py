"""The one scoring rule that turns model outputs along a curve into curve values.

Every attribution method — SOP and every post-hoc baseline — is scored by this rule, so their
insertion/deletion AUCs are comparable. The rule is fixed by the model's output on the FULL
(unperturbed) input, never by the perturbed inputs along the curve.

``task="classification"``
    The model returns logits of shape (n, C), C >= 2. The scored class is
    ``argmax(model(x_full))``; every step's score is the softmax probability of that class. One
    curve kind: ``"prob"``. Good direction: insertion AUC high, deletion AUC low.

``task="regression"``
    The model returns predictions of shape (n, C). For each output column c there are two curve
    kinds: ``"pred_sqerr/c"`` = (f_c(x_step) - f_c(x_full))**2, the squared error to the
    full-input prediction, and ``"label_sqerr/c"`` = (f_c(x_step) - y_c)**2, the squared error to
    the label (omitted when no label is given). Good direction: insertion error-AUC low,
    deletion error-AUC high.

A curve's full name is ``"{mode}/{kind}"``, e.g. ``"insertion/prob"`` or
``"deletion/pred_sqerr/0"``; :func:`higher_is_better` gives its good direction.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "LABEL_SQERR",
    "MODES",
    "PRED_SQERR",
    "PROB",
    "TASKS",
    "ScoringRule",
    "Task",
    "build_scoring_rule",
    "higher_is_better",
    "score_outputs",
    "validate_task",
]

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")
MODES: tuple[str, ...] = ("insertion", "deletion")

PROB = "prob"
PRED_SQERR = "pred_sqerr"
LABEL_SQERR = "label_sqerr"


def validate_task(task: Any) -> str:
    """Return ``task`` if it names a supported task, else raise a ValueError saying what to pass."""
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"task: must be 'classification' or 'regression'; got {task!r}.")
    return task


@dataclass(frozen=True)
class ScoringRule:
    """Scoring rule fixed by the model's output on the full input.

    Build it with :func:`build_scoring_rule`; apply it with :func:`score_outputs`.

    Attributes
    ----------
    task : {"classification", "regression"}
        Which rule applies (see the module docstring).
    full_output : Tensor
        (C,) model output on the full, unperturbed input (float64, detached).
    target : int or None
        Classification: the class predicted on the full input, whose probability is scored at
        every step. None for regression.
    label : Tensor or None
        Regression: (C,) label used for the ``label_sqerr`` curves, or None to omit them.
        Always None for classification.
    """

    task: str
    full_output: Tensor
    target: int | None = None
    label: Tensor | None = None

    @property
    def n_outputs(self) -> int:
        """Number of model output columns C."""
        return int(self.full_output.shape[0])

    @property
    def kinds(self) -> tuple[str, ...]:
        """Curve kinds this rule produces, in output order (without the mode prefix)."""
        if self.task == "classification":
            return (PROB,)
        kinds = [f"{PRED_SQERR}/{c}" for c in range(self.n_outputs)]
        if self.label is not None:
            kinds += [f"{LABEL_SQERR}/{c}" for c in range(self.n_outputs)]
        return tuple(kinds)


def build_scoring_rule(task: str, full_output: Tensor, label: Any = None) -> ScoringRule:
    """Fix the scoring rule from the model's output on the full input.

    Parameters
    ----------
    task : {"classification", "regression"}
        Which rule to apply.
    full_output : Tensor
        Model output on the full input, shape (C,) or (1, C). Logits for classification.
    label : Tensor, array_like or float, optional
        Regression only: the label y with C values (a float is accepted when C == 1). Must be
        None for classification, whose score depends on the predicted class only.

    Returns
    -------
    ScoringRule
        The frozen rule.

    Raises
    ------
    ValueError
        On an unknown task, a bad ``full_output`` shape, a classification model with fewer than
        two logits, a label given for classification, or a label of the wrong size.
    """
    task = validate_task(task)
    out = full_output.detach()
    if out.dim() == 2 and out.shape[0] == 1:
        out = out[0]
    if out.dim() != 1 or out.shape[0] < 1:
        raise ValueError(
            f"full_output: expected the model output on one input, shape (C,) or (1, C); got "
            f"{tuple(full_output.shape)}."
        )
    out = out.to(torch.float64)
    if task == "classification":
        if label is not None:
            raise ValueError(
                "label: classification scores the class predicted on the full input, not the "
                "label; pass label=None."
            )
        if out.shape[0] < 2:
            raise ValueError(
                "full_output: classification needs logits for at least 2 classes; for a "
                "single-logit binary model pass logits [0, z], e.g. "
                "lambda b: torch.cat([torch.zeros_like(m(b)), m(b)], 1)."
            )
        return ScoringRule(task=task, full_output=out, target=int(out.argmax()))
    return ScoringRule(task=task, full_output=out, label=_regression_label(label, out))


def _regression_label(label: Any, out: Tensor) -> Tensor | None:
    """Label as a (C,) float64 tensor on ``out``'s device, or None."""
    if label is None:
        return None
    if isinstance(label, numbers.Real):
        lab = torch.tensor([float(label)], dtype=torch.float64, device=out.device)
    else:
        lab = torch.as_tensor(label).detach().to(device=out.device, dtype=torch.float64)
    if lab.numel() != out.shape[0]:
        raise ValueError(
            f"label: regression needs one value per model output ({out.shape[0]}); got shape "
            f"{tuple(lab.shape)}. Pass a tensor of shape ({out.shape[0]},) or label=None."
        )
    return lab.reshape(-1)


def score_outputs(rule: ScoringRule, outputs: Tensor) -> dict[str, Tensor]:
    """Apply ``rule`` to a batch of model outputs along a curve.

    Parameters
    ----------
    rule : ScoringRule
        The rule fixed on the full input.
    outputs : Tensor
        (n, C) model outputs at n curve steps.

    Returns
    -------
    dict of str to Tensor
        Curve kind (see :attr:`ScoringRule.kinds`) to (n,) float64 values.

    Raises
    ------
    ValueError
        If ``outputs`` is not (n, C) with the rule's C.
    """
    if outputs.dim() != 2 or outputs.shape[1] != rule.n_outputs:
        raise ValueError(
            f"outputs: expected shape (n, {rule.n_outputs}) (one row per curve step, the same "
            f"number of columns as the full-input output); got {tuple(outputs.shape)}."
        )
    out = outputs.detach().to(device=rule.full_output.device, dtype=torch.float64)
    if rule.task == "classification":
        assert rule.target is not None
        return {PROB: torch.softmax(out, dim=1)[:, rule.target]}
    curves = {
        f"{PRED_SQERR}/{c}": (out[:, c] - rule.full_output[c]) ** 2 for c in range(out.shape[1])
    }
    if rule.label is not None:
        for c in range(out.shape[1]):
            curves[f"{LABEL_SQERR}/{c}"] = (out[:, c] - rule.label[c]) ** 2
    return curves


def higher_is_better(mode: str, kind: str) -> bool:
    """Good direction of a curve's AUC.

    Parameters
    ----------
    mode : {"insertion", "deletion"}
        Curve mode.
    kind : str
        Curve kind: ``"prob"``, ``"pred_sqerr/c"`` or ``"label_sqerr/c"``.

    Returns
    -------
    bool
        True when a larger AUC means a better attribution: classification insertion (the
        probability recovers fast) and regression deletion (the error grows fast). False for
        classification deletion and regression insertion.
    """
    if mode not in MODES:
        raise ValueError(f"mode: must be 'insertion' or 'deletion'; got {mode!r}.")
    base = kind.split("/", 1)[0]
    if base == PROB:
        return mode == "insertion"
    if base in (PRED_SQERR, LABEL_SQERR):
        return mode == "deletion"
    raise ValueError(
        f"kind: must be '{PROB}', '{PRED_SQERR}/<column>' or '{LABEL_SQERR}/<column>'; got "
        f"{kind!r}."
    )
