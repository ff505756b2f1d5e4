"""The ``lfi-gym`` command line: run and compare lfi-gym agents on lfi-gym envs.

``lfi-gym compare`` trains each agent with the same expert-label budget on each env and
seed, and writes a table, ``results.json`` and ``learning_curves.png``; the same runner is
importable as :func:`lfi_gym.compare.run_compare`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lfi-gym")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
