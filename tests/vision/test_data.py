"""The digits loader and the ImageNet-S folder reader on a tiny fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sop_cosmo.vision import (
    IGNORE_ID,
    ImageNetS,
    decode_segmentation,
    foreground_iou,
    load_digits_split,
)


def test_digits_real_data():
    d = load_digits_split(32, test_fraction=0.2, seed=1)
    assert d.n_total == 1797
    assert d.x_train.shape[1:] == (1, 32, 32) and d.x_train.dtype == torch.float32
    labels = torch.cat([d.y_train, d.y_test])
    assert set(labels.tolist()) == set(range(10))
    assert abs(len(d.y_test) - 0.2 * 1797) < 10
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    again = load_digits_split(32, test_fraction=0.2, seed=1)
    assert torch.equal(again.y_test, d.y_test)


def _seg_png(path, ids: np.ndarray) -> None:
    rgb = np.zeros((*ids.shape, 3), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256
    Image.fromarray(rgb).save(path)


@pytest.fixture
def imagenet_s(tmp_path):
    root = tmp_path / "ImageNetS50"
    rng = np.random.default_rng(0)
    for k, wnid in enumerate(["n01443537", "n01491361"]):
        (root / "validation" / wnid).mkdir(parents=True)
        (root / "validation-segmentation" / wnid).mkdir(parents=True)
        (root / "train" / wnid).mkdir(parents=True)
        img = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
        img.save(root / "validation" / wnid / f"val_{k}.JPEG", format="JPEG")
        img.save(root / "train" / wnid / f"tr_{k}.JPEG", format="JPEG")
        ids = np.zeros((20, 30), dtype=np.int64)
        ids[5:15, 10:20] = k + 1  # object
        ids[:4, :] = IGNORE_ID  # ignored rows
        _seg_png(root / "validation-segmentation" / wnid / f"val_{k}.png", ids)
    return root


def test_imagenet_s_reads(imagenet_s):
    ds = ImageNetS(imagenet_s, "validation", image_size=10)
    assert len(ds) == 2 and ds.classes == ["n01443537", "n01491361"]
    s = ds[1]
    assert s.image.shape == (3, 10, 10) and s.label == 1
    assert s.foreground.shape == (10, 10) and s.foreground.dtype == torch.bool
    assert s.foreground[5, 5] and not s.foreground[9, 0]
    assert not s.valid[0].any() and s.valid[5].all()
    train = ImageNetS(imagenet_s, "train", image_size=8)
    assert train[0].foreground is None and train[0].label == 0


def test_decode_segmentation():
    rgb = np.array([[[232, 3, 0], [5, 0, 0]]], dtype=np.uint8)
    assert decode_segmentation(rgb).tolist() == [[1000, 5]]


def test_imagenet_s_errors(imagenet_s, tmp_path):
    with pytest.raises(FileNotFoundError, match="root folder"):
        ImageNetS(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="test"):
        ImageNetS(imagenet_s, "test")
    bad = imagenet_s / "validation" / "n01443537" / "val_0.JPEG"
    bad.write_bytes(b"not an image")
    ds = ImageNetS(imagenet_s, "validation")
    with pytest.raises(OSError, match=r"val_0\.JPEG"):
        ds[0]
    # Segmentation of the wrong size.
    _seg_png(imagenet_s / "validation-segmentation" / "n01491361" / "val_1.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"val_1\.png"):
        ds[1]
    (imagenet_s / "validation-segmentation" / "n01491361" / "val_1.png").unlink()
    with pytest.raises(FileNotFoundError, match="segmentation file not found"):
        ds[1]


def test_foreground_iou_on_fixture(imagenet_s):
    s = ImageNetS(imagenet_s, "validation", image_size=10)[1]
    assert foreground_iou(s.foreground, s.foreground, s.valid) == 1.0
    # Half the object plus an equal area of background: IoU = 1/3.
    rows = torch.nonzero(s.foreground.any(1)).flatten()
    half = torch.zeros_like(s.foreground)
    half[rows[: len(rows) // 2]] = s.foreground[rows[: len(rows) // 2]]
    n_half = int(half.sum())
    bg = (~s.foreground & s.valid).flatten().nonzero().flatten()[:n_half]
    pred = half.flatten().clone()
    pred[bg] = True
    n_fg = int(s.foreground.sum())
    want = n_half / (n_fg + n_half)
    assert foreground_iou(pred.view_as(half), s.foreground, s.valid) == pytest.approx(want)
    # Ignored pixels count for neither side.
    assert foreground_iou(~s.valid, torch.zeros_like(half), s.valid) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        foreground_iou(half[:5], s.foreground)
