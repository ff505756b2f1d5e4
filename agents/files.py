"""Writing files so that an interrupted write never damages the previous version."""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: Test-only hook, so that a test can kill a save at a known point (tests/test_files.py):
#: when this variable names a marker file, :func:`atomic_write` stops writing once the
#: temporary file holds ``LFI_GYM_TEST_PAUSE_SAVE_AFTER`` bytes (default 1), creates the
#: marker and sleeps until the marker is removed (at most a minute). Never set it otherwise.
TEST_PAUSE_VARIABLE = "LFI_GYM_TEST_PAUSE_SAVE"
TEST_PAUSE_AFTER_VARIABLE = "LFI_GYM_TEST_PAUSE_SAVE_AFTER"
_TEST_PAUSE_LIMIT_S = 60.0

# Temporary files this process is writing now. A crashed save's temporary file is removed
# by the next save to the same path when its writer is gone; a live pid is not enough to
# keep it when the pid is ours (a restarted container often gets its crashed process's
# pid), so our own are told apart by this set. The lock makes "create + register" atomic
# for a concurrent cleanup in another thread.
_WRITING: set[str] = set()
_WRITING_LOCK = threading.Lock()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success it is flushed,
    fsync'ed and renamed over ``path``; on any exception (KeyboardInterrupt included) it is
    removed and ``path`` is left as it was.

    The file gets the mode ``open()`` would give it (0o666 less the umask). The temporary
    file is named ``.{name}.{pid}.{random}.tmp``; one left behind by a writer that was killed
    (``kill -9``, a power cut) is removed by the next save to the same path, once no process
    with that pid is alive on this machine. (A pid says nothing about other machines: on a
    folder shared between machines, a stale temporary file of another machine's writer may
    stay until a save runs there.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporary_files(path)
    fd, tmp_name = _create_temporary_file(path)
    try:
        with _open_binary(fd) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    finally:
        with _WRITING_LOCK:
            _WRITING.discard(tmp_name)
    _fsync_directory(path.parent)


def _temporary_name_pattern(path: Path) -> re.Pattern[str]:
    # The random part has no dots, so temporary files of "a.zip.1" never match "a.zip".
    return re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]+\.tmp")


def _create_temporary_file(path: Path) -> tuple[int, str]:
    # os.open with 0o666 (not mkstemp's 0o600): the kernel applies the umask, as open() does.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp_name = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with _WRITING_LOCK:
            try:
                fd = os.open(tmp_name, flags, 0o666)
            except FileExistsError:
                continue
            _WRITING.add(tmp_name)
            return fd, tmp_name
    raise FileExistsError(f"no free temporary file name beside {path}")


def _remove_stale_temporary_files(path: Path) -> None:
    """Remove temporary files of ``path`` whose writer is gone. Best effort: a file we may
    not remove stays, and the save goes on."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return
    pattern = _temporary_name_pattern(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        tmp_name = str(path.parent / name)
        with _WRITING_LOCK:
            if tmp_name in _WRITING or _process_alive(int(match.group(1))):
                continue
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own live writes are in _WRITING; this one is a former process's
    if pid <= 0:
        return True  # not a pid we write; leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def _open_binary(fd: int) -> BinaryIO:
    variable = os.environ.get(TEST_PAUSE_VARIABLE)
    if not variable:
        return os.fdopen(fd, "wb")
    after = int(os.environ.get(TEST_PAUSE_AFTER_VARIABLE, "1"))
    return io.BufferedWriter(_PausingFileIO(fd, Path(variable), after))


class _PausingFileIO(io.FileIO):
    """The test hook's file: pauses once ``after`` bytes are on disk (see TEST_PAUSE_VARIABLE)."""

    def __init__(self, fd: int, marker: Path, after: int) -> None:
        super().__init__(fd, "wb")
        self._marker, self._left, self._paused = marker, max(after, 1), False

    def write(self, data) -> int:
        if self._paused:
            return super().write(data)
        view = memoryview(data).cast("B")
        # A short write is allowed for raw files; BufferedWriter writes the rest later.
        written = super().write(view[: self._left])
        self._left -= written
        if self._left == 0:
            self._paused = True
            self._marker.write_text(str(os.getpid()))
            deadline = time.monotonic() + _TEST_PAUSE_LIMIT_S
            while self._marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return written


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
