"""Attribution quality metrics shared by SOP and every post-hoc baseline.

Insertion/deletion curves (per unit or per group), their trapezoid AUC, the single scoring
rule behind every curve, and completeness/fidelity of attribution sums. See docs/metrics.md.
Post-hoc baselines (captum methods, RISE) and their reduction to patch-grid "-F" masks live in
:mod:`.baselines` (docs/baselines.md).
"""

from .auc import trapezoid_auc
from .baselines import METHODS as POSTHOC_METHODS
from .baselines import attribute as posthoc_attribute
from .baselines import keep_top_patches, patch_feature_mask, patch_scores, rise_saliency
from .fidelity import completeness_gap, fidelity_r2
from .insertion_deletion import (
    InsertionDeletionResult,
    Model,
    grouped_insertion_deletion,
    insertion_deletion,
    stack_aucs,
)
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
    "POSTHOC_METHODS",
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
    "posthoc_attribute",
    "rise_saliency",
    "score_outputs",
    "stack_aucs",
    "trapezoid_auc",
    "validate_task",
]
