"""Captum baselines and the quick demo."""

from __future__ import annotations

import json

import pytest
import torch

from sop_cosmo.attribution import patch_feature_mask
from sop_cosmo.attribution.baselines import METHODS
from sop_cosmo.cli import VISION_SUMMARY_KEYS
from sop_cosmo.vision import tiny_vit
from sop_cosmo.vision.demo import run_demo
from sop_cosmo.vision.explain import BASELINE_METHODS


def test_patch_feature_mask():
    m = patch_feature_mask((6, 8), 4)
    assert m.shape == (1, 6, 8) and int(m.max()) == 3 and m[0, 5, 7] == 3


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_baselines_shape(method):
    vit = tiny_vit(16, 4, 1, 3, hidden_size=16, num_hidden_layers=1, seed=0).eval()
    x = torch.randn(1, 16, 16)
    explainer = METHODS[method].from_settings(
        lambda b: vit(b).logits,
        layer=vit.vit.embeddings.patch_embeddings.projection,
        n_samples=8,
        n_steps=4,
        interpolate_mode="nearest",
    )
    attr = explainer.attribute(x, 1, patch_size=4)
    assert attr.shape == x.shape and torch.isfinite(attr).all()


@pytest.mark.slow
def test_run_demo_quick(tmp_path):
    metrics = run_demo(tmp_path, quick=True, seed=0, progress=False)
    saved = json.loads((tmp_path / "vision_metrics.json").read_text())
    keys = ("backbone_test_accuracy", "backbone_after_sop_test_accuracy", "sop_test_accuracy")
    for key in (*keys, "aucs", "masking_timing", *VISION_SUMMARY_KEYS):
        assert key in saved
    assert set(saved["aucs"]) == {"sop", "sop_groups", *BASELINE_METHODS}
    for aucs in saved["aucs"].values():
        assert set(aucs) == {"insertion/prob", "deletion/prob"}
        assert all(0.0 <= v <= 1.0 for v in aucs.values())
    assert saved["masking_timing"]["same_masks"]
    assert metrics["sop_test_accuracy"] == saved["sop_test_accuracy"]
    png = tmp_path / "vision_groups.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown settings"):
        run_demo(tmp_path, quick=True, vit_epoch=3)


@pytest.mark.slow
def test_frozen_backbone_option_keeps_the_vit(tmp_path):
    # The default trains the ViT with the SOP; freeze_backbone=True must leave it as it was.
    m = run_demo(tmp_path, quick=True, seed=0, progress=False, freeze_backbone=True)
    assert m["sop_config"]["freeze_backbone"] is True
    assert m["backbone_after_sop_test_accuracy"] == m["backbone_test_accuracy"]


@pytest.mark.slow
def test_digits_reduced_run_learns(tmp_path):
    # A reduced but real run (about 30 s on one core): the ViT must learn the digits (chance is
    # 0.1; measured 0.89) and one SOP epoch must already be far above chance (measured 0.64).
    m = run_demo(
        tmp_path,
        seed=0,
        progress=False,
        vit_epochs=20,
        vit_lr=2e-3,
        vit_mask_fraction=0.0,
        sop_epochs=1,
        n_test_eval=200,
        n_explain=2,
        n_samples=16,
        ig_steps=4,
        n_show=1,
        timing_batch=4,
        timing_repeats=1,
    )
    assert m["backbone_test_accuracy"] >= 0.8
    assert m["sop_test_accuracy"] >= 0.3
    # The shared metric separates a real attribution from a random ranking (full run: 0.13 vs
    # 0.70 deletion AUC).
    assert m["aucs"]["integrated_gradients"]["deletion/prob"] < m["aucs"]["random"]["deletion/prob"]


def test_mask_units_blanks_whole_units():
    from sop_cosmo.vision.demo import mask_units

    x = torch.randn(64, 1, 12, 12) + 5.0  # no pixel is 0 before masking
    out = mask_units(x, 4, min_keep=0.2, gen=torch.Generator().manual_seed(0))
    hidden = (out == 0).float().view(64, 1, 3, 4, 3, 4)
    # Each 4x4 unit is either wholly blanked or wholly kept, and the rest is untouched.
    per_unit = hidden.mean(dim=(3, 5))
    assert ((per_unit == 0) | (per_unit == 1)).all()
    assert torch.equal(out[out != 0], x[out != 0])
    frac = per_unit.mean().item()
    assert 0.2 < frac < 0.6  # E[hidden] = 1 - E[keep] = 0.4
