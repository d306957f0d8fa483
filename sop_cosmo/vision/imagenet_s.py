"""Reader for the ImageNet-S folder layout (Gao et al., "Large-scale Unsupervised Semantic
Segmentation", TPAMI 2022), without torchvision.

Assumed layout (that of the LUSSeg/ImageNet-S release; see docs/vision.md)::

    <root>/                        e.g. .../ImageNetS50, ImageNetS300 or ImageNetS919
        train/<wnid>/<name>.JPEG
        validation/<wnid>/<name>.JPEG
        validation-segmentation/<wnid>/<name>.png

A segmentation PNG is RGB and encodes a class id per pixel as ``R + 256·G``: 0 is background,
1000 is "ignore" (unlabelled), and 1..K are the subset's classes in sorted-wnid order. The label
index returned here is 0-based in sorted-wnid order, i.e. the segmentation id minus 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

__all__ = [
    "IGNORE_ID",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageNetS",
    "ImageNetSSample",
    "decode_segmentation",
    "foreground_iou",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_ID = 1000
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


class ImageNetSSample(NamedTuple):
    """One item of :class:`ImageNetS`.

    Attributes
    ----------
    image : Tensor
        (3, S, S) float32, normalised with ``mean``/``std``.
    label : int
        0-based class index (sorted wnid order).
    foreground : Tensor or None
        (S, S) bool, True on object pixels (any class id other than 0 and 1000); None when the
        split has no segmentation.
    valid : Tensor or None
        (S, S) bool, False on "ignore" pixels (id 1000); None without segmentation.
    path : str
        The image file.
    """

    image: Tensor
    label: int
    foreground: Tensor | None
    valid: Tensor | None
    path: str


def decode_segmentation(rgb: np.ndarray) -> np.ndarray:
    """Class ids ``R + 256·G`` (H, W) int32 from an (H, W, 3) or (H, W, 4) uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] < 2:
        raise ValueError(f"rgb: expected an (H, W, 3) colour array, got shape {rgb.shape}")
    return rgb[..., 0].astype(np.int32) + 256 * rgb[..., 1].astype(np.int32)


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(f"cannot read image file {path}: {err}") from err


class ImageNetS:
    """ImageNet-S images with labels and, on the validation split, foreground masks.

    Parameters
    ----------
    root : str or Path
        The subset folder (``ImageNetS50``, ``ImageNetS300`` or ``ImageNetS919``).
    split : str
        Image folder name: ``"validation"`` (with segmentations) or ``"train"``.
    image_size : int
        Side S of the output; images are resized (not cropped) to S×S with bilinear
        interpolation and masks with nearest-neighbour, so masks stay aligned.
    mean, std : sequence of float
        Per-channel normalisation of pixel values in [0, 1].
    segmentation_dir : str, optional
        Folder of the segmentation PNGs; default ``"<split>-segmentation"`` if it exists.
    require_segmentation : bool
        Raise when a segmentation is missing instead of returning None masks. Default: True
        when the segmentation folder exists.

    Raises
    ------
    FileNotFoundError
        When ``root``, the split folder or a required segmentation folder/file is missing.
    ValueError
        When the split folder holds no class folders or no images.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "validation",
        *,
        image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        segmentation_dir: str | None = None,
        require_segmentation: bool | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageNet-S root folder not found: {self.root}")
        self.image_dir = self.root / split
        if not self.image_dir.is_dir():
            raise FileNotFoundError(
                f"ImageNet-S split folder not found: {self.image_dir} "
                f"(expected <root>/{split}/<wnid>/<name>.JPEG)"
            )
        seg_name = segmentation_dir or f"{split}-segmentation"
        self.segmentation_dir: Path | None = self.root / seg_name
        if not self.segmentation_dir.is_dir():
            if segmentation_dir is not None or require_segmentation:
                raise FileNotFoundError(
                    f"ImageNet-S segmentation folder not found: {self.segmentation_dir}"
                )
            self.segmentation_dir = None
        self.require_segmentation = (
            self.segmentation_dir is not None
            if require_segmentation is None
            else require_segmentation
        )
        self.classes = sorted(p.name for p in self.image_dir.iterdir() if p.is_dir())
        if not self.classes:
            raise ValueError(f"no class folders (<wnid>/) in {self.image_dir}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = [
            (p, self.class_to_idx[c])
            for c in self.classes
            for p in sorted((self.image_dir / c).iterdir())
            if p.suffix.lower() in _IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise ValueError(f"no images (.JPEG/.jpg/.png) under {self.image_dir}/<wnid>/")
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def segmentation_path(self, index: int) -> Path | None:
        """The segmentation PNG of item ``index`` (None when the split has none)."""
        if self.segmentation_dir is None:
            return None
        path, _ = self.samples[index]
        return self.segmentation_dir / path.parent.name / (path.stem + ".png")

    def __getitem__(self, index: int) -> ImageNetSSample:
        path, label = self.samples[index]
        img = _open_image(path)
        size = (self.image_size, self.image_size)
        arr = np.asarray(img.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
        image = (torch.from_numpy(arr / 255.0).permute(2, 0, 1) - self.mean) / self.std

        foreground = valid = None
        seg_path = self.segmentation_path(index)
        if seg_path is not None and not seg_path.is_file():
            if self.require_segmentation:
                raise FileNotFoundError(f"segmentation file not found for {path}: {seg_path}")
            seg_path = None
        if seg_path is not None:
            seg_img = _open_image(seg_path)
            if seg_img.size != img.size:
                raise ValueError(
                    f"segmentation size {seg_img.size} of {seg_path} does not match image "
                    f"size {img.size} of {path}"
                )
            ids = decode_segmentation(np.asarray(seg_img.convert("RGB")))
            # An int32 array (PIL mode "I") keeps ids up to 1000 exact when resizing.
            ids = np.asarray(Image.fromarray(ids.astype(np.int32)).resize(size, Image.NEAREST))
            foreground = torch.from_numpy((ids != 0) & (ids != IGNORE_ID))
            valid = torch.from_numpy(ids != IGNORE_ID)
        return ImageNetSSample(image.contiguous(), label, foreground, valid, str(path))


def foreground_iou(pred: Tensor, foreground: Tensor, valid: Tensor | None = None) -> float:
    """Pixel IoU |P ∩ F| / |P ∪ F| of a predicted mask against the object, ignoring invalid pixels.

    Parameters
    ----------
    pred : Tensor
        (H, W) bool (or 0/1) mask, e.g. SOP's top group expanded to pixels.
    foreground : Tensor
        (H, W) bool object mask (``ImageNetSSample.foreground``).
    valid : Tensor, optional
        (H, W) bool, False on pixels marked "ignore" (``ImageNetSSample.valid``).

    Returns
    -------
    float
        The IoU; 1.0 when both masks are empty on the valid pixels.
    """
    if pred.shape != foreground.shape or (valid is not None and valid.shape != pred.shape):
        raise ValueError(
            f"pred, foreground, valid: expected equal (H, W) shapes, got {tuple(pred.shape)}, "
            f"{tuple(foreground.shape)}, {None if valid is None else tuple(valid.shape)}"
        )
    p, f = pred.bool(), foreground.bool()
    if valid is not None:
        p, f = p & valid.bool(), f & valid.bool()
    union = int((p | f).sum())
    return 1.0 if union == 0 else int((p & f).sum()) / union
