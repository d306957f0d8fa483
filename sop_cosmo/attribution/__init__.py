"""Attribution quality metrics shared by SOP and every post-hoc baseline.

Insertion/deletion curves (per unit or per group), their trapezoid AUC, the single scoring
rule behind every curve, and completeness/fidelity of attribution sums. See docs/metrics.md.
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
    "score_outputs",
    "stack_aucs",
    "trapezoid_auc",
    "validate_task",
]
