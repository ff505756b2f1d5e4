"""atomic_write: a killed save keeps the old file, its temporary file is removed by the next
save, and saved files get the mode open() would give them (0o666 less the umask)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from paused_save import paused_save

from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.demofile import DemonstrationsWriter
from lfi_gym.agents.files import atomic_write

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pids, signals and umask are POSIX")

FRAME = (64, 64, 4)  # 16 KiB a frame
N_FRAMES = 1000  # a 16 MB file


def big_demos(seed: int) -> Demonstrations:
    """One episode of random frames (about 16 MB on disk); different seeds, different bytes."""
    rng = np.random.default_rng(seed)
    starts = np.zeros(N_FRAMES, dtype=bool)
    starts[0] = True
    truncated = np.zeros(N_FRAMES, dtype=bool)
    truncated[-1] = True
    return Demonstrations(
        observations=rng.integers(0, 256, size=(N_FRAMES, *FRAME), dtype=np.uint8),
        actions=rng.integers(0, 4, size=N_FRAMES),
        rewards=rng.normal(size=N_FRAMES),
        episode_starts=starts,
        terminated=np.zeros(N_FRAMES, dtype=bool),
        truncated=truncated,
    )


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask the test changes."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def temporary_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_save_killed_mid_file_keeps_the_old_file_and_the_next_save_cleans_up(
    tmp_path: Path, umask
) -> None:
    path = tmp_path / "big.lfid"
    big_demos(0).save(path)
    old_bytes = path.read_bytes()
    assert len(old_bytes) > N_FRAMES * np.prod(FRAME)

    # A second process saves new demonstrations over the file and stops half-way through.
    half = len(old_bytes) // 2
    code = f"from test_files import big_demos; big_demos(1).save({str(path)!r})"
    with paused_save(code, tmp_path, half) as writer:
        (leftover,) = temporary_files(tmp_path)
        assert leftover.startswith(f".big.lfid.{writer.pid}.")
        assert (tmp_path / leftover).stat().st_size == half  # killed mid-file
    assert writer.returncode == -signal.SIGKILL

    assert path.read_bytes() == old_bytes  # the old file is intact
    assert temporary_files(tmp_path) == [leftover]  # the killed writer's half file

    os.umask(0o027)
    new = big_demos(2)
    new.save(path)
    assert temporary_files(tmp_path) == []
    assert mode(path) == 0o640
    np.testing.assert_array_equal(Demonstrations.load(path).observations, new.observations)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
    ids=["umask022", "umask077", "umask002"],
)
def test_saved_files_follow_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    os.umask(mask)
    path = tmp_path / "f.bin"
    with atomic_write(path) as f:
        f.write(b"data")
    assert mode(path) == expected
    os.umask(0o022)  # an existing file gets the umask of the save that replaces it
    with atomic_write(path) as f:
        f.write(b"more")
    assert mode(path) == 0o644 and path.read_bytes() == b"more"


def _live_pid() -> int:
    return os.getppid()  # the process that started this test is alive while it runs


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_only_temporary_files_of_gone_writers_of_the_same_path_are_removed(tmp_path) -> None:
    path = tmp_path / "agent.zip"
    stale = [
        f".agent.zip.{_dead_pid()}.0123abcd.tmp",  # its writer was killed
        f".agent.zip.{os.getpid()}.89abcdef.tmp",  # a former process with our pid (a restart)
    ]
    kept = [
        f".agent.zip.{_live_pid()}.0123abcd.tmp",  # another process is writing it now
        f".agent.zip.1.{_dead_pid()}.0123abcd.tmp",  # agent.zip.1's, not agent.zip's
        f".other.zip.{_dead_pid()}.0123abcd.tmp",
        ".agent.zip.tmp",
        ".agent.zip.abcd1234.tmp",  # not our naming: the writer is unknown
        "agent.zip.0.tmp",
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"half a file")
    with atomic_write(path) as f:
        f.write(b"new")
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, "agent.zip"])


def test_a_save_never_removes_a_concurrent_save_of_this_process(tmp_path) -> None:
    path = tmp_path / "f.bin"
    with atomic_write(path) as outer:
        outer.write(b"outer")
        outer.flush()
        (in_progress,) = temporary_files(tmp_path)
        with atomic_write(path) as inner:  # a second save to the same path meanwhile
            inner.write(b"inner")
        assert (tmp_path / in_progress).read_bytes() == b"outer"
    assert path.read_bytes() == b"outer" and temporary_files(tmp_path) == []


def test_the_demonstrations_writer_removes_a_crashed_recording(tmp_path) -> None:
    path = tmp_path / "d.lfid"
    stale = tmp_path / f".d.lfid.{_dead_pid()}.0123abcd.tmp"
    stale.write_bytes(b"a recording killed half-way")
    space = gym.spaces.Box(0, 255, shape=(2,), dtype=np.uint8)
    with DemonstrationsWriter(path, space, gym.spaces.Discrete(2)) as writer:
        assert not stale.exists()  # removed when the new recording starts
        writer.add(np.array([1, 2], dtype=np.uint8), 0, 1.0, True, True, False)
    assert sorted(os.listdir(tmp_path)) == ["d.lfid"]
    assert len(Demonstrations.load(path)) == 1
