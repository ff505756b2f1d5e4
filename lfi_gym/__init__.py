"""lfi-gym: restartable Gymnasium environments and agents for learning from interaction.

``import lfi_gym`` registers every env id with Gymnasium (as ``import ale_py`` does), so
``gym.make("lfi_gym:Control-CartPole-v0")`` works in a fresh interpreter. The layers, from
the bottom: :mod:`lfi_gym.envs` (envs, the restart contract, the policy protocol and the
oracles), :mod:`lfi_gym.wrappers`, :mod:`lfi_gym.agents`, and this package's own modules
(the ``lfi-gym`` command line and the runners). This module imports the bottom layer only;
``lfi_gym.register_agent`` (from :mod:`lfi_gym.registry`) is imported when first used.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from lfi_gym import envs  # noqa: F401  (registers the env ids)

try:
    __version__ = version("lfi-gym")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "register_agent"]


def __getattr__(name: str) -> Any:
    # register_agent lives a layer up (lfi_gym.registry); import it when first asked for.
    if name == "register_agent":
        from lfi_gym.registry import register_agent

        return register_agent
    raise AttributeError(f"module 'lfi_gym' has no attribute {name!r}")
