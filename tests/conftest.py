"""Shared test setup."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread in every test: the tiny networks run faster, and float reductions give the
    same bits whatever the machine or the order of tests (the CLI sets threads too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
