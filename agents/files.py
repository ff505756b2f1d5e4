"""Writing files so that an interrupted write never damages the previous version, and reading
files that an older lfi-gym wrote."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success it is flushed,
    fsync'ed and renamed over ``path``; on any exception (KeyboardInterrupt included) it is
    removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Top-level module names of lfi-gym before its modules moved under ``lfi_gym``.
_PRE_PACKAGE_MODULES = ("envs", "agents", "wrappers")


@contextlib.contextmanager
def pre_package_names(label: str) -> Iterator[None]:
    """Turn the ModuleNotFoundError that unpickling an object saved by an lfi-gym older than
    the ``lfi_gym`` package raises (its classes were ``envs.*`` / ``agents.*``) into a
    ValueError that says so, instead of a confusing "No module named 'agents'"."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _PRE_PACKAGE_MODULES:
            raise
        raise ValueError(
            f"{label} was written by an lfi-gym older than the lfi_gym package: it names the "
            f"module {exc.name!r}, now lfi_gym.{exc.name}. Re-create the file with this version "
            "(collect the demonstrations or train the agent again)"
        ) from exc
