"""What a long run prints: lfi-gym's own output and progress, not third-party noise.

:func:`quiet_third_party` silences what libraries print on their own during a run
(transformers' "Loading weights" bars and log messages, Hugging Face Hub and ``datasets``
progress bars, and deprecation / advice warnings raised inside third-party modules), while
warnings raised by lfi-gym code (and by the user's ``__main__`` script) still show.
:class:`ProgressReporter` shows how far a sweep of jobs has got: a live bar on a terminal,
one flushed line per finished job otherwise (CI logs).

>>> with quiet_third_party(), ProgressReporter(total=len(jobs)) as progress:
...     for job in jobs:
...         progress.started(job.name)
...         seconds = job.run()
...         progress.finished(job.name, seconds)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

#: Warning categories that libraries raise about their own internals or as advice; silenced
#: when raised from a third-party module. Others (RuntimeWarning: overflow, NaN) still show.
THIRD_PARTY_CATEGORIES: tuple[type[Warning], ...] = (
    FutureWarning,
    DeprecationWarning,
    PendingDeprecationWarning,
    UserWarning,
)

#: ``re.match``-ed against the module a warning is attributed to: every module but lfi-gym's
#: and ``__main__`` (the user's script, or ``python -m lfi_gym``).
THIRD_PARTY_MODULES = r"(?!(lfi_gym(\.|$)|__main__$))"

_Undo = Callable[[], None]


class QuietThirdParty:
    """What :func:`quiet_third_party` changed. Leaving its ``with`` block (or :meth:`close`)
    restores the warning filters and the libraries' settings as they were; never closing
    it leaves the process quiet (what a worker process wants)."""

    def __init__(self, undo: list[_Undo]) -> None:
        self._undo = undo

    def close(self) -> None:
        """Undo the changes, last first; calling it again does nothing."""
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> QuietThirdParty:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def quiet_third_party() -> QuietThirdParty:
    """Silence third-party noise in this process, now; returns a handle that undoes it.

    Use it as a context manager (``with quiet_third_party(): ...``) or call it once at the
    start of a process (each worker of a pool: filters and library settings are
    per-process). Calling it again is harmless. A setting the user made in the environment
    wins: with ``TRANSFORMERS_VERBOSITY``, ``HF_HUB_DISABLE_PROGRESS_BARS``,
    ``DATASETS_VERBOSITY`` or ``HF_DATASETS_DISABLE_PROGRESS_BARS`` set, that library's
    setting is left alone.
    """
    undo = [_ignore_third_party_warnings()]
    hub_bars_were_on = _hub_bars_on()
    # The Hub first: transformers reads the Hub's progress-bar setting when it is imported.
    undo += _quiet_hub()
    undo += _quiet_transformers(hub_bars_were_on)
    undo += _quiet_datasets()
    return QuietThirdParty(undo)


def _ignore_third_party_warnings() -> _Undo:
    saved = warnings.catch_warnings()
    saved.__enter__()  # a copy of the filters, restored by __exit__
    for category in THIRD_PARTY_CATEGORIES:
        # filterwarnings replaces an identical filter rather than adding a second one.
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY_MODULES)
    return lambda: saved.__exit__(None, None, None)


def _installed(package: str) -> bool:
    return package in sys.modules or importlib.util.find_spec(package) is not None


def _hub_bars_on() -> bool:
    if not _installed("huggingface_hub"):
        return True
    from huggingface_hub.utils import are_progress_bars_disabled

    return not are_progress_bars_disabled()


def _quiet_hub() -> list[_Undo]:
    if "HF_HUB_DISABLE_PROGRESS_BARS" in os.environ or not _installed("huggingface_hub"):
        return []
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if are_progress_bars_disabled():
        return []
    disable_progress_bars()
    return [enable_progress_bars]


def _quiet_transformers(hub_bars_were_on: bool) -> list[_Undo]:
    """Errors only, no progress bars. transformers is not imported for this (about a second):
    if it is imported later, it reads its level from ``TRANSFORMERS_VERBOSITY`` and its bars'
    setting from the Hub's, both set here."""
    if "TRANSFORMERS_VERBOSITY" in os.environ or not _installed("transformers"):
        return []
    module = sys.modules.get("transformers.utils.logging")
    if module is not None:
        verbosity, bars = module.get_verbosity(), module.is_progress_bar_enabled()
        module.set_verbosity_error()
        module.disable_progress_bar()

        def restore() -> None:
            module.set_verbosity(verbosity)
            if bars:
                module.enable_progress_bar()

        return [restore]
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"

    def restore_after_import() -> None:
        os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        imported: Any = sys.modules.get("transformers.utils.logging")
        if imported is not None:  # imported while quiet: give it its defaults
            imported.set_verbosity(logging.WARNING)
            if hub_bars_were_on:
                imported.enable_progress_bar()

    return [restore_after_import]


def _quiet_datasets() -> list[_Undo]:
    """Only if ``datasets`` is already imported: importing it costs a second, and its
    progress-bar setting cannot be handed over before import without the environment
    variable, which would then overrule the user for the rest of the process."""
    logging_module = sys.modules.get("datasets.utils.logging")
    bars_module = sys.modules.get("datasets.utils.tqdm")
    undo: list[_Undo] = []
    if logging_module is not None and "DATASETS_VERBOSITY" not in os.environ:
        verbosity = logging_module.get_verbosity()
        logging_module.set_verbosity_error()
        undo.append(lambda: logging_module.set_verbosity(verbosity))
    if (
        bars_module is not None
        and "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ
        and not bars_module.are_progress_bars_disabled()
    ):
        bars_module.disable_progress_bars()
        undo.append(bars_module.enable_progress_bars)
    return undo


# -- progress -----------------------------------------------------------------------------


class ProgressReporter:
    """Progress of a sweep of ``total`` jobs (one job: env / agent / seed / budget).

    Call :meth:`started` when a job starts and :meth:`finished` when it ends (jobs may run
    in parallel), then :meth:`close` (or use it as a context manager). On a terminal
    (``stream.isatty()``): a live bar with done / total, elapsed time and the running jobs,
    removed at the end. Elsewhere: one line per finished job, flushed at once::

        [ 3/24] Control-CartPole-v0 bc seed 0 (300 labels) 4.2 s

    ``enabled=False`` prints nothing. ``stream`` defaults to ``sys.stderr`` (at
    construction), so that stdout keeps only results.
    """

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total must be a number of jobs (an int >= 0), got {total!r}")
        self.total = total
        self.enabled = bool(enabled)
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closed = False
        self._live: Any = None
        self._task: Any = None
        if self.enabled and _isatty(self.stream):
            self._start_live()

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Column

        self._live = Progress(
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            # markup=False: a description is shown as given, brackets and all.
            TextColumn(
                "{task.description}",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            ),
            console=Console(file=self.stream, force_terminal=True),
            transient=True,
            expand=True,
        )
        self._task = self._live.add_task("starting", total=self.total)
        self._live.start()

    def started(self, description: str) -> None:
        """Job ``description`` has started."""
        with self._lock:
            self._running[description] += 1
            self._refresh()

    def finished(self, description: str, seconds: float | None) -> None:
        """Job ``description`` has finished after ``seconds`` of wall time (None: it had
        finished in an earlier run and is reused)."""
        with self._lock:
            if self._running[description] > 0:
                self._running[description] -= 1
            self._running += Counter()  # drops zero counts
            self.done += 1
            if self._live is not None:
                self._refresh()
            elif self.enabled and not self._closed:
                width = len(str(self.total))
                took = "reused" if seconds is None else f"{seconds:.1f} s"
                line = f"[{self.done:>{width}}/{self.total}] {description} {took}\n"
                self.stream.write(line)
                self.stream.flush()

    def _refresh(self) -> None:
        if self._live is None or self._closed:
            return
        running = list(self._running.elements())
        text = "; ".join(running[:2]) + (f" (+{len(running) - 2} more)" if len(running) > 2 else "")
        self._live.update(self._task, completed=self.done, description=text)

    def close(self) -> None:
        """Stop the live display (if any); calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._live is not None:
                self._live.stop()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
