"""A save stopped half-way in another process, for the atomic-write tests of every file
format (``lfi_gym.agents.files``' test-only pause hook)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lfi_gym.agents.files import TEST_PAUSE_AFTER_VARIABLE, TEST_PAUSE_VARIABLE

TESTS = Path(__file__).parent


@contextlib.contextmanager
def paused_save(code: str, folder: Path, pause_after: int) -> Iterator[subprocess.Popen]:
    """Run ``code`` (Python that saves a file into ``folder``; the tests folder is on its
    path) in a subprocess whose save stops once its temporary file holds ``pause_after``
    bytes; yield the writer while it is paused there, then kill it."""
    marker = folder / "paused"
    environment = {
        **os.environ,
        TEST_PAUSE_VARIABLE: str(marker),
        TEST_PAUSE_AFTER_VARIABLE: str(pause_after),
    }
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(TESTS)!r}); {code}"],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert writer.poll() is None, f"the writer exited early: {writer.stderr.read()}"
            assert time.monotonic() < deadline, "the writer never reached the pause"
            time.sleep(0.02)
        yield writer
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stderr.close()
