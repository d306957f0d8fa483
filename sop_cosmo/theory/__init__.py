"""The paper's first result: per-feature attributions have a floor of error; groups do not.

:mod:`.polynomials` defines the monomial and binomial, :mod:`.lp` computes exact errors and the
per-feature optimum by linear programming, and :mod:`.experiment` trains SOP on them.
"""

from .data import all_ones, inclusion_probability, sample_inputs
from .experiment import (
    TheoryConfig,
    TheoryRunConfig,
    TrainedExplanation,
    plot_table,
    run_theory,
    train_sop,
)
from .lp import (
    GroupedError,
    PerFeatureOptimum,
    error_table,
    grouped_error,
    oracle_groups,
    per_feature_optimum,
)
from .polynomials import Polynomial, all_subsets, binomial, monomial, polynomial_by_name

__all__ = [
    "GroupedError",
    "PerFeatureOptimum",
    "Polynomial",
    "TheoryConfig",
    "TheoryRunConfig",
    "TrainedExplanation",
    "all_ones",
    "all_subsets",
    "binomial",
    "error_table",
    "grouped_error",
    "inclusion_probability",
    "monomial",
    "oracle_groups",
    "per_feature_optimum",
    "plot_table",
    "polynomial_by_name",
    "run_theory",
    "sample_inputs",
    "train_sop",
]
