"""The Sum-of-Parts core: model-agnostic, it knows nothing of cosmology, images or text."""

from .backbones import ImageBackbone, SOPBackbone, TokenBackbone, VectorBackbone
from .diagnostics import DIAGNOSTICS, group_diagnostics, mean_group_diagnostics
from .generator import GeneratedGroups, GroupGenerator, topk_rank_mask
from .model import GENERATORS, SOPConfig, SOPOutput, SumOfParts
from .ranking import group_ranking, unit_ranking
from .segments import segments_to_masks
from .selector import GroupSelector, budget_sparsemax
from .sparsemax import sparsemax

__all__ = [
    "DIAGNOSTICS",
    "GENERATORS",
    "GeneratedGroups",
    "GroupGenerator",
    "GroupSelector",
    "ImageBackbone",
    "SOPBackbone",
    "SOPConfig",
    "SOPOutput",
    "SumOfParts",
    "TokenBackbone",
    "VectorBackbone",
    "budget_sparsemax",
    "group_diagnostics",
    "group_ranking",
    "mean_group_diagnostics",
    "segments_to_masks",
    "sparsemax",
    "topk_rank_mask",
    "unit_ranking",
]
