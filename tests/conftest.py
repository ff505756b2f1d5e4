"""Shared test setup."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from text_assets import TextAssets

from lfi_gym import envs  # noqa: F401  (registers the env ids)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread in every test: the tiny networks run faster, and float reductions give the
    same bits whatever the machine or the order of tests (the CLI sets threads too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def env() -> gym.Env:
    """A fresh Control-CartPole-v0, the env most tests train and check on."""
    return gym.make("Control-CartPole-v0")


@pytest.fixture(scope="session")
def text_assets(tmp_path_factory: pytest.TempPathFactory) -> TextAssets:
    """Tiny local stand-ins for the text envs' hub assets, built on first use."""
    return TextAssets(tmp_path_factory.mktemp("text-assets"))
