"""Sum-of-Parts for images: ViT adapters (pixel masking, token dropping), data readers, demo.

The post-hoc baselines the demo compares SOP with are :mod:`sop_cosmo.attribution.baselines`.
"""

from .digits import DigitsSplit, load_digits_split, upsample_digits
from .imagenet_s import (
    IGNORE_ID,
    ImageNetS,
    ImageNetSSample,
    decode_segmentation,
    foreground_iou,
)
from .model import (
    TokenDropViTBackbone,
    ViTCLSEncoder,
    load_vit,
    n_kept_units,
    sop_vit_classifier,
    tiny_vit,
    vit_image_backbone,
    vit_token_backbone,
)

__all__ = [
    "IGNORE_ID",
    "DigitsSplit",
    "ImageNetS",
    "ImageNetSSample",
    "TokenDropViTBackbone",
    "ViTCLSEncoder",
    "decode_segmentation",
    "foreground_iou",
    "load_digits_split",
    "load_vit",
    "n_kept_units",
    "sop_vit_classifier",
    "tiny_vit",
    "upsample_digits",
    "vit_image_backbone",
    "vit_token_backbone",
]
