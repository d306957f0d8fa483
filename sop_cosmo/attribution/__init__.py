"""Attribution quality metrics shared by SOP and every post-hoc baseline.

Insertion/deletion curves (per unit or per group), their trapezoid AUC, the single scoring
rule behind every curve, and completeness/fidelity of attribution sums. See docs/metrics.md.
Post-hoc baselines (captum methods, RISE) live in :mod:`.baselines`, one class per method and
one registry, :data:`.baselines.METHODS`; their reduction to patch-grid "-F" masks in
:mod:`.patch_grid` (docs/baselines.md).
"""

from .auc import trapezoid_auc
from .fidelity import completeness_gap, fidelity_r2
from .insertion_deletion import (
    InsertionDeletionResult,
    Model,
    grouped_insertion_deletion,
    insertion_deletion,
    stack_aucs,
)
from .patch_grid import keep_top_patches, patch_feature_mask, patch_scores
from .rise import rise_saliency
from .scoring import (
    TASKS,
    ScoringRule,
    Task,
    build_scoring_rule,
    higher_is_better,
    score_outputs,
    validate_task,
)

__all__ = [
    "TASKS",
    "InsertionDeletionResult",
    "Model",
    "ScoringRule",
    "Task",
    "build_scoring_rule",
    "completeness_gap",
    "fidelity_r2",
    "grouped_insertion_deletion",
    "higher_is_better",
    "insertion_deletion",
    "keep_top_patches",
    "patch_feature_mask",
    "patch_scores",
    "rise_saliency",
    "score_outputs",
    "stack_aucs",
    "trapezoid_auc",
    "validate_task",
]
