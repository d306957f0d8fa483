"""The Sum-of-Parts core: model-agnostic, it knows nothing of cosmology, images or text."""

from .backbones import ImageBackbone, SOPBackbone, TokenBackbone, VectorBackbone
from .generator import GeneratedGroups, GroupGenerator, topk_rank_mask
from .model import SOPConfig, SOPOutput, SumOfParts
from .selector import GroupSelector
from .sparsemax import sparsemax

__all__ = [
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
    "sparsemax",
    "topk_rank_mask",
]
