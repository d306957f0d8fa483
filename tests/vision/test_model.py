"""SOP around a tiny Hugging Face ViT: both masking variants."""

from __future__ import annotations

import pytest
import torch

from sop_cosmo.core import SOPConfig
from sop_cosmo.vision import (
    TokenDropViTBackbone,
    n_kept_units,
    sop_vit_classifier,
    tiny_vit,
    vit_image_backbone,
)


@pytest.fixture(scope="module")
def vit():
    return tiny_vit(16, 4, 1, 5, hidden_size=32, num_hidden_layers=2, seed=0).eval()


CFG = SOPConfig(n_groups=4, keep_fraction=0.25, chunk_size=7)


@pytest.mark.parametrize("masking", ["pixels", "tokens"])
def test_faithful_by_construction(vit, masking):
    torch.manual_seed(0)
    sop = sop_vit_classifier(vit, sop_config=CFG, masking=masking).eval()
    out = sop(torch.randn(3, 1, 16, 16))
    assert out.masks.shape == (3, 4, 4, 4)
    assert torch.allclose(out.prediction, out.contributions.sum(1), atol=1e-5)
    # Every group keeps exactly ⌈k·N⌉ units.
    assert (out.masks.flatten(2).sum(-1) == n_kept_units(16, 0.25)).all()


@pytest.mark.parametrize("masking", ["pixels", "tokens"])
def test_gradient_reaches_generator(vit, masking):
    torch.manual_seed(0)
    sop = sop_vit_classifier(vit, sop_config=CFG, masking=masking).train()
    loss = torch.nn.functional.cross_entropy(
        sop(torch.randn(4, 1, 16, 16)).prediction, torch.tensor([0, 1, 2, 3])
    )
    loss.backward()
    # Query/key weights act only through the masks: non-zero grad means the STE path works.
    grads = [p.grad for n, p in sop.generator.named_parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in sop.backbone.parameters())


def test_full_mask_matches_vit(vit):
    x = torch.randn(2, 1, 16, 16)
    ref = vit(x).logits
    for bb in (vit_image_backbone(vit), TokenDropViTBackbone(vit)):
        assert torch.allclose(bb(x), ref, atol=1e-5)


def test_token_drop_equals_dropping_tokens(vit):
    # Same masks: a group's token-dropped output equals a ViT run on the kept tokens only,
    # and rows with different kept counts are handled.
    bb = TokenDropViTBackbone(vit)
    x = torch.randn(2, 1, 16, 16)
    mask = torch.zeros(2, 16)
    mask[0, [1, 5, 7]] = 1
    mask[1, [0, 2]] = 1
    out, pooled = bb.forward_masked(x, mask)
    assert out.shape == (2, 5) and pooled.shape == (2, 32)
    single, _ = bb.forward_masked(x[:1], mask[:1])
    assert torch.allclose(out[:1], single, atol=1e-5)


def test_variants_sensible_and_different(vit):
    torch.manual_seed(0)
    pix = sop_vit_classifier(vit, sop_config=CFG, masking="pixels").eval()
    tok = sop_vit_classifier(vit, sop_config=CFG, masking="tokens").eval()
    tok.load_state_dict(pix.state_dict())
    x = torch.randn(2, 1, 16, 16)
    a, b = pix(x), tok(x)
    assert torch.equal(a.masks, b.masks)
    assert torch.isfinite(b.group_outputs).all()
    assert not torch.allclose(a.group_outputs, b.group_outputs)


def test_bad_arguments(vit):
    with pytest.raises(ValueError, match="masking"):
        sop_vit_classifier(vit, masking="blur")
    with pytest.raises(ValueError, match="patch_size"):
        sop_vit_classifier(vit, masking="tokens", patch_size=2)
    with pytest.raises(ValueError, match="multiple"):
        tiny_vit(15, 4)
