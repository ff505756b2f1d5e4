"""Run independent jobs (one JSON-able dict in, one out) in this process, a process pool or Ray.

``lfi-gym compare`` fans its runs (env x agent x seed x budget point) out through
:func:`run_jobs`. A job names its function as ``"package.module:function"`` rather than
passing the function itself, so that every executor imports it the same way in its workers;
every worker sets torch's thread count before the job runs, so that a deterministic job gives
the same bits whichever executor ran it and however many jobs ran beside it.

Errors: a job that raises stops the sweep. Jobs not yet finished are cancelled (running ones
are stopped), and :class:`JobError` names the job's index and carries the original message
and traceback. Results of the jobs that finished before were already handed to
``on_result``, so a caller that writes each one at once keeps them.
"""

from __future__ import annotations

import concurrent.futures as cf
import difflib
import importlib
import importlib.util
import inspect
import logging
import multiprocessing
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["EXECUTORS", "JobError", "import_path", "run_jobs"]

EXECUTORS = ("local", "ray")

# A job's outcome as it travels back from a worker: ("ok", result) or
# ("error", "TypeName: message", traceback text). Strings, not the exception itself, because
# an exception of user code may not survive pickling.
_Outcome = tuple[Any, ...]


class JobError(RuntimeError):
    """A job raised (or its worker died); ``index`` is its position in the payloads."""

    def __init__(self, index: int, function: str, error: str, traceback_text: str = "") -> None:
        message = f"job {index} ({function}) failed: {error}"
        if traceback_text:
            message += f"\n\nTraceback of job {index}:\n{traceback_text.rstrip()}"
        super().__init__(message)
        self.index = index
        self.function = function
        self.error = error
        self.traceback_text = traceback_text


# --------------------------------------------------------------------------- importing


def _cwd_on_sys_path() -> None:
    """Make the current directory importable, as ``python -m`` does (first on sys.path)."""
    cwd = os.getcwd()
    if not any(entry == "" or os.path.abspath(entry) == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def _parse_spec(spec: str) -> tuple[str, str]:
    module, sep, attribute = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    parts_ok = all(part.isidentifier() for part in module.split(".")) and all(
        part.isidentifier() for part in attribute.split(".")
    )
    if not sep or ":" in attribute or not parts_ok:
        raise ValueError(
            f"expected 'package.module:attribute' (e.g. 'my_agents:MyAgent'), got {spec!r}"
        )
    return module, attribute


def _not_found_message(module: str, what: str) -> str:
    top = module.split(".")[0]
    return (
        f"cannot import module {module!r} ({what}): searched the current directory "
        f"({os.getcwd()}) and sys.path. Run from the folder that holds {top}.py (or the "
        f"package folder {top}/), or pip install the package that provides it."
    )


def _is_missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``module`` itself (or a parent package) is missing, False when it exists but
    one of its own imports failed (a different problem, reported as it is)."""
    return exc.name is not None and (module == exc.name or module.startswith(exc.name + "."))


def import_path(spec: str) -> Any:
    """The object named by ``"module:attribute"`` (``attribute`` may be dotted), importing
    the module with the current directory importable, as ``python -m`` would."""
    module_name, attribute = _parse_spec(spec)
    _cwd_on_sys_path()
    importlib.invalidate_caches()  # a module written since the last import is found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_name):
            raise
        raise ModuleNotFoundError(
            _not_found_message(module_name, f"from {spec!r}"), name=module_name
        ) from exc
    obj: Any = module
    for i, part in enumerate(attribute.split(".")):
        if not hasattr(obj, part):
            owner = ".".join([module_name, *attribute.split(".")[:i]])
            names = [name for name in dir(obj) if not name.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            where = getattr(module, "__file__", None) or module_name
            raise AttributeError(f"{owner} ({where}) has no attribute {part!r}{hint}")
        obj = getattr(obj, part)
    return obj


def _module_source(name: str) -> str:
    """The file or package directory that provides top-level module ``name`` (what Ray
    ships as a py_modules entry)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(_not_found_message(name, "listed in modules"), name=name)
    # A namespace package (no __init__.py, e.g. examples/) may be found once per sys.path
    # entry that leads to the same folder ("" and the current directory).
    locations = list(
        dict.fromkeys(os.path.realpath(p) for p in spec.submodule_search_locations or [])
    )
    if len(locations) == 1:
        return locations[0]
    if not locations and spec.origin and spec.origin.endswith(".py"):
        return spec.origin
    raise ValueError(
        f"module {name!r} cannot be shipped to Ray workers: it is neither a .py file nor a "
        f"package in one directory (found {spec.origin or locations}); install it on the "
        "cluster instead and leave it out of modules"
    )


def _check_modules(modules: Sequence[str]) -> list[str]:
    """Each module importable here (clear error if not); returns their top-level sources,
    without repeats."""
    sources: list[str] = []
    for name in modules:
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ValueError(f"modules: expected import names like 'my_agents', got {name!r}")
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError as exc:
            if not _is_missing(exc, name):
                raise
            found = None
        if found is None:
            raise ModuleNotFoundError(_not_found_message(name, "listed in modules"), name=name)
        source = _module_source(name.split(".")[0])
        if source not in sources:
            sources.append(source)
    return sources


# --------------------------------------------------------------------------- one job


def _call_job(function: str, payload: dict, threads: int) -> dict:
    """Run one job here with ``threads`` torch threads (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = import_path(function)(payload)
    finally:
        torch.set_num_threads(previous)
    if not isinstance(result, dict):
        raise TypeError(f"a job must return a dict, got {type(result).__name__}")
    return result


def _run_job(index: int, function: str, payload: dict, threads: int) -> _Outcome:
    """:func:`_call_job` in a worker process; never raises an ordinary exception."""
    try:
        return ("ok", _call_job(function, payload, threads))
    except Exception as exc:
        return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _deliver(
    index: int,
    outcome: _Outcome,
    function: str,
    results: list[dict | None],
    on_result: Callable[[int, dict], None] | None,
) -> None:
    if outcome[0] != "ok":
        raise JobError(index, function, outcome[1], outcome[2])
    results[index] = outcome[1]
    if on_result is not None:
        on_result(index, outcome[1])


# --------------------------------------------------------------------------- local


def _init_worker(sys_path: list[str], threads: int) -> None:
    sys.path[:] = sys_path
    torch.set_num_threads(threads)


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and stop the running jobs' workers now: shutdown alone
    would wait for them to finish."""
    # the pool's own map of its processes (a private attribute of every Python from 3.10 to
    # 3.14); without it, running jobs finish in the background
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()  # reaped: no zombies left behind


def _run_local_pool(
    function: str,
    payloads: Sequence[dict],
    n_jobs: int,
    threads: int,
    on_start: Callable[[int], None] | None,
    on_result: Callable[[int, dict], None] | None,
    results: list[dict | None],
) -> None:
    # spawn, not fork: a forked torch (its thread pools, its locks) can hang in the child
    pool = cf.ProcessPoolExecutor(
        max_workers=min(n_jobs, len(payloads)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(list(sys.path), threads),
    )
    # At most n_jobs in flight: on_start then marks a job's real start, and after an error
    # nothing is left queued.
    upcoming = iter(range(len(payloads)))
    running: dict[cf.Future, int] = {}

    def submit_next() -> None:
        index = next(upcoming, None)
        if index is None:
            return
        if on_start is not None:
            on_start(index)
        running[pool.submit(_run_job, index, function, payloads[index], threads)] = index

    try:
        for _ in range(min(n_jobs, len(payloads))):
            submit_next()
        while running:
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in sorted(done, key=running.__getitem__):
                index = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died (killed, out of memory, crash)
                    outcome = ("error", f"{type(exc).__name__}: {exc}", "")
                _deliver(index, outcome, function, results, on_result)
                submit_next()
    except BaseException:  # a job failed, on_result raised, or KeyboardInterrupt
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


# --------------------------------------------------------------------------- Ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            'executor="ray" needs Ray: pip install "lfi-gym[ray]" (or pip install ray)'
        ) from exc
    return ray


def _upload_to_ray(sources: list[str]) -> list[str]:
    """Ship local module files / package folders to the running Ray instance; returns the
    URIs a task's runtime_env takes (only ray.init itself takes local paths)."""
    try:
        from ray._private.runtime_env.py_modules import upload_py_modules_if_needed

        accepts = inspect.signature(upload_py_modules_if_needed).parameters
        extra = {"include_gitignore": True} if "include_gitignore" in accepts else {}
        with tempfile.TemporaryDirectory() as scratch:
            runtime_env = upload_py_modules_if_needed(
                {"py_modules": list(sources)}, scratch_dir=scratch, **extra
            )
    except (ImportError, TypeError) as exc:  # Ray moved its (private) upload helper
        raise RuntimeError(
            "Ray was already running in this process, and this Ray version gives no way to "
            "ship modules to it: call ray.init(runtime_env={'py_modules': "
            f"{sources!r}}}) yourself, or let run_jobs start Ray (ray.shutdown() first)"
        ) from exc
    return list(runtime_env["py_modules"])


def _check_ray_cpus(ray: Any, threads: int) -> None:
    """A task asking more CPUs than any node has would wait forever, silently."""
    alive = [node for node in ray.nodes() if node.get("Alive")]
    most = max((node.get("Resources", {}).get("CPU", 0) for node in alive), default=0)
    if most < threads:
        raise ValueError(
            f"threads_per_job={threads} asks each Ray task for {threads} CPUs, but the "
            f"largest node of this Ray cluster has {most:g}: lower threads_per_job"
        )


def _run_ray(
    function: str,
    payloads: Sequence[dict],
    address: str | None,
    threads: int,
    sources: list[str],
    on_start: Callable[[int], None] | None,
    on_result: Callable[[int, dict], None] | None,
    results: list[dict | None],
) -> None:
    ray = _import_ray()
    started = not ray.is_initialized()
    options: dict[str, Any] = {"num_cpus": threads}
    if started:
        ray.init(
            address=address,
            runtime_env={"py_modules": sources} if sources else None,
            include_dashboard=False,
            log_to_driver=False,  # the jobs' own prints stay in Ray's log files
            logging_level=logging.ERROR,
            configure_logging=True,  # applies logging_level to Ray's loggers
        )
    elif sources:  # Ray was running already: the modules go with each task instead
        options["runtime_env"] = {"py_modules": _upload_to_ray(sources)}
    try:
        _check_ray_cpus(ray, threads)
        remote_job = ray.remote(_run_job).options(**options)
        pending: dict[Any, int] = {}
        try:
            for index, payload in enumerate(payloads):
                if on_start is not None:
                    on_start(index)
                pending[remote_job.remote(index, function, payload, threads)] = index
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # worker died, runtime env failed
                    outcome = ("error", f"{type(exc).__name__}: {exc}", "")
                _deliver(index, outcome, function, results, on_result)
        except BaseException:  # a job failed, a callback raised, or KeyboardInterrupt
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- entry point


def run_jobs(
    function: str,
    payloads: Sequence[dict],
    *,
    executor: str = "local",
    n_jobs: int = 1,
    address: str | None = None,
    threads_per_job: int = 1,
    modules: Sequence[str] = (),
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Run ``function`` (``"package.module:function"``, top level, one dict in, one dict
    out) on each payload; return the results in payload order.

    ``executor="local"`` runs ``n_jobs`` worker processes (``n_jobs=1``: in this process,
    no pool); ``"ray"`` submits every job to Ray (``address``: a cluster's, or None to start
    a local instance or reuse the one this process already has), one CPU per torch thread,
    and ignores ``n_jobs``. Each job runs with ``threads_per_job`` torch threads.
    ``modules`` names the user modules jobs import (e.g. the module of an agent given as
    ``my_agents:MyAgent``); the current directory is importable as with ``python -m``, and
    Ray workers get these modules shipped. ``on_start(i)`` is called here when job ``i``
    starts (Ray: is submitted) and ``on_result(i, result)`` as each finishes, in this
    process. A job that raises stops the others and raises :class:`JobError`.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    for name, value in (("n_jobs", n_jobs), ("threads_per_job", threads_per_job)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(modules, str):
        raise TypeError(f"modules must be a sequence of module names, got the string {modules!r}")
    payloads = list(payloads)
    for index, payload in enumerate(payloads):
        if not isinstance(payload, dict):
            raise TypeError(f"payload {index} must be a dict, got {type(payload).__name__}")
    # Fail here, before any worker starts, on a bad function or module name.
    if not callable(import_path(function)):
        raise TypeError(f"{function!r} is not a function")
    sources = _check_modules(modules)

    results: list[dict | None] = [None] * len(payloads)
    if executor == "ray":
        _run_ray(
            function, payloads, address, threads_per_job, sources, on_start, on_result, results
        )
    elif n_jobs == 1 or len(payloads) <= 1:
        for index, payload in enumerate(payloads):
            if on_start is not None:
                on_start(index)
            try:
                result = _call_job(function, payload, threads_per_job)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise JobError(index, function, error, traceback.format_exc()) from exc
            _deliver(index, ("ok", result), function, results, on_result)
    else:
        _run_local_pool(function, payloads, n_jobs, threads_per_job, on_start, on_result, results)
    return results  # type: ignore[return-value]  (every slot is filled, or we raised)
