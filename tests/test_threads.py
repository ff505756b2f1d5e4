"""agents.set_torch_threads: one thread by default, any positive count, the previous back."""

from __future__ import annotations

import pytest
import torch

from lfi_gym.agents import set_torch_threads


def test_default_is_one_thread_and_the_previous_count_comes_back() -> None:
    torch.set_num_threads(2)
    assert set_torch_threads() == 2
    assert torch.get_num_threads() == 1
    assert set_torch_threads(2) == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_a_thread_count_must_be_a_positive_int(n) -> None:
    with pytest.raises(ValueError, match="n must be a positive int"):
        set_torch_threads(n)
