import pytest
import torch

from tests.core.zoo import make_cnn, make_token_model, make_vit


@pytest.fixture(params=["cnn", "vit", "tokens"])
def backbone_and_input(request):
    torch.manual_seed(0)
    if request.param == "cnn":
        return make_cnn(), torch.randn(3, 1, 16, 16)
    if request.param == "vit":
        return make_vit(), torch.randn(3, 1, 16, 16)
    return make_token_model(), torch.randint(0, 50, (3, 12))
