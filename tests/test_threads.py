"""torch_threads sets the count inside the block and restores the caller's, even on error."""

import pytest
import torch

from sop_cosmo._threads import torch_threads


def test_sets_and_restores_even_when_the_block_raises():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1) as used:
        assert used == 1 == torch.get_num_threads()
        raise RuntimeError("crash")
    assert torch.get_num_threads() == before


def test_none_leaves_the_count_alone():
    before = torch.get_num_threads()
    with torch_threads(None) as used:
        assert used == before
    assert torch.get_num_threads() == before
