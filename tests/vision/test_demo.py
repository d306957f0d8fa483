"""Captum baselines and the quick demo."""

from __future__ import annotations

import json

import pytest
import torch

from sop_cosmo.vision import BASELINE_METHODS, patch_feature_mask, posthoc_attribution, tiny_vit
from sop_cosmo.vision.demo import run_demo


def test_patch_feature_mask():
    m = patch_feature_mask((6, 8), 4)
    assert m.shape == (1, 6, 8) and int(m.max()) == 3 and m[0, 5, 7] == 3


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_baselines_shape(method):
    vit = tiny_vit(16, 4, 1, 3, hidden_size=16, num_hidden_layers=1, seed=0).eval()
    x = torch.randn(1, 16, 16)
    attr = posthoc_attribution(
        method,
        lambda b: vit(b).logits,
        x,
        1,
        patch_size=4,
        layer=vit.vit.embeddings.patch_embeddings.projection,
        n_samples=8,
        ig_steps=4,
    )
    assert attr.shape == x.shape and torch.isfinite(attr).all()


def test_run_demo_quick(tmp_path):
    metrics = run_demo(tmp_path, quick=True, seed=0)
    saved = json.loads((tmp_path / "vision_metrics.json").read_text())
    for key in ("backbone_test_accuracy", "sop_test_accuracy", "aucs", "masking_timing"):
        assert key in saved
    assert set(saved["aucs"]) == {"sop", *BASELINE_METHODS}
    for aucs in saved["aucs"].values():
        assert set(aucs) == {"insertion/prob", "deletion/prob"}
        assert all(0.0 <= v <= 1.0 for v in aucs.values())
    assert saved["masking_timing"]["same_masks"]
    assert metrics["sop_test_accuracy"] == saved["sop_test_accuracy"]
    png = tmp_path / "vision_groups.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
