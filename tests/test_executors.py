"""lfi_gym.executors: the same results whatever runs the jobs (in-process, a spawned process
pool, Ray), results handed back in the caller as each job finishes, a failing job named by
its index, user modules from the current directory importable in every worker, and
import_path's errors. The job functions live in tests/executor_jobs.py."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lfi_gym.executors import JobError, import_path, run_jobs

TRAIN = "executor_jobs:train_tiny_mlp"
FAIL = "executor_jobs:fail_on_seed"
SLEEP = "executor_jobs:mark_and_sleep"
TRAIN_PAYLOADS = [{"seed": seed, "steps": 15} for seed in (0, 1, 2, 3)]

USER_JOBS = "lfi_test_user_jobs"  # a single-file module
USER_PACKAGE = "lfi_test_user_package"  # a package with a submodule


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_jobs / import_path put the current directory on sys.path: undo it after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user's module and package in a fresh folder made the current directory (as when a
    user runs `lfi-gym compare --agents my_agents:MyAgent` from their project folder)."""
    (tmp_path / f"{USER_JOBS}.py").write_text(
        textwrap.dedent(f"""
        import {USER_PACKAGE}.scale

        def scaled_seed(payload):
            return {{
                "value": {USER_PACKAGE}.scale.FACTOR * payload["seed"],
                "module_file": __file__,
                "package_file": {USER_PACKAGE}.scale.__file__,
            }}
        """)
    )
    (tmp_path / USER_PACKAGE).mkdir()
    (tmp_path / USER_PACKAGE / "__init__.py").write_text("")
    (tmp_path / USER_PACKAGE / "scale.py").write_text("FACTOR = 3\n")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in [*sys.modules]:
        if name.split(".")[0] in (USER_JOBS, USER_PACKAGE):
            del sys.modules[name]


def _user_module_jobs(executor: str, **kwargs) -> list[dict]:
    return run_jobs(
        f"{USER_JOBS}:scaled_seed",
        [{"seed": seed} for seed in (1, 2, 5)],
        executor=executor,
        modules=(USER_JOBS, f"{USER_PACKAGE}.scale"),
        **kwargs,
    )


# --------------------------------------------------------------------------- local


def test_in_process_runs_in_payload_order_with_the_threads_asked_then_restores_them() -> None:
    starts: list[int] = []
    finished: list[tuple[int, float]] = []
    results = run_jobs(
        TRAIN,
        TRAIN_PAYLOADS[:2],
        threads_per_job=2,
        on_start=starts.append,
        on_result=lambda index, result: finished.append((index, result["loss"])),
    )
    assert starts == [0, 1]
    assert finished == [(0, results[0]["loss"]), (1, results[1]["loss"])]
    assert [result["seed"] for result in results] == [0, 1]
    assert {result["pid"] for result in results} == {os.getpid()}
    assert [result["torch_threads"] for result in results] == [2, 2]
    assert torch.get_num_threads() == 1  # conftest's setting, restored


def test_a_process_pool_gives_the_in_process_bits_and_reports_each_job_in_the_caller() -> None:
    in_process = run_jobs(TRAIN, TRAIN_PAYLOADS, n_jobs=1)
    calls: list[tuple[int, int, int]] = []  # (index, pid, thread) of each on_result call
    pooled = run_jobs(
        TRAIN,
        TRAIN_PAYLOADS,
        n_jobs=2,
        on_result=lambda index, _: calls.append((index, os.getpid(), threading.get_ident())),
    )
    assert [r["sums_hex"] for r in pooled] == [r["sums_hex"] for r in in_process]
    assert [r["loss"] for r in pooled] == [r["loss"] for r in in_process]
    # seeds give different parameters, so equal bits above are not a coincidence
    assert len({tuple(r["sums_hex"]) for r in pooled}) == len(TRAIN_PAYLOADS)
    assert {r["pid"] for r in pooled}.isdisjoint({os.getpid()})
    assert [r["torch_threads"] for r in pooled] == [1] * len(TRAIN_PAYLOADS)
    assert sorted(index for index, _, _ in calls) == [0, 1, 2, 3]
    assert {(pid, thread) for _, pid, thread in calls} == {
        (os.getpid(), threading.main_thread().ident)
    }


def test_a_failing_job_in_process_names_its_index_and_stops_the_sweep() -> None:
    starts: list[int] = []
    finished: list[int] = []
    payloads = [{"seed": 10}, {"seed": 11, "fail": True}, {"seed": 12}]
    with pytest.raises(JobError, match=r"job 1 \(executor_jobs:fail_on_seed\) failed: ") as info:
        run_jobs(FAIL, payloads, on_start=starts.append, on_result=lambda i, _: finished.append(i))
    assert info.value.index == 1
    assert info.value.error == "ValueError: seed 11 is cursed"
    assert isinstance(info.value.__cause__, ValueError)
    assert "in fail_on_seed" in str(info.value)  # the job's traceback
    assert (starts, finished) == ([0, 1], [0])


def test_a_failing_job_in_a_pool_surfaces_its_index_message_and_traceback() -> None:
    payloads = [{"seed": 20}, {"seed": 21}, {"seed": 22, "fail": True}, {"seed": 23}]
    with pytest.raises(JobError) as info:
        run_jobs(FAIL, payloads, n_jobs=2)
    assert info.value.index == 2
    assert info.value.error == "ValueError: seed 22 is cursed"
    assert "executor_jobs.py" in info.value.traceback_text
    assert "in fail_on_seed" in info.value.traceback_text
    assert "job 2 (executor_jobs:fail_on_seed) failed: ValueError: seed 22" in str(info.value)


def test_an_interrupt_in_the_caller_stops_the_pool_without_waiting_for_running_jobs(
    tmp_path: Path,
) -> None:
    """on_result raising KeyboardInterrupt stands in for Ctrl-C: job 1 (60 s) must be stopped,
    jobs 2 and 3 never started."""
    payloads = [
        {"index": index, "sleep": 60 if index == 1 else 0, "folder": str(tmp_path)}
        for index in range(4)
    ]
    starts: list[int] = []

    def interrupt(index: int, result: dict) -> None:
        raise KeyboardInterrupt

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_jobs(SLEEP, payloads, n_jobs=2, on_start=starts.append, on_result=interrupt)
    assert time.monotonic() - began < 30
    assert starts == [0, 1]
    markers = {path.name: int(path.read_text()) for path in tmp_path.iterdir()}
    assert "started-0" in markers and set(markers) <= {"started-0", "started-1"}
    for pid in markers.values():  # the workers are gone (terminated and reaped)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_user_modules_in_the_current_directory_import_in_spawned_workers(
    user_modules: Path,
) -> None:
    results = _user_module_jobs("local", n_jobs=2)
    assert [r["value"] for r in results] == [3, 6, 15]
    assert {Path(r["module_file"]).parent for r in results} == {user_modules}


def test_bad_arguments_are_refused_before_any_worker_starts(user_modules: Path) -> None:
    with pytest.raises(ValueError, match="executor must be one of local, ray, got 'dask'"):
        run_jobs(TRAIN, TRAIN_PAYLOADS, executor="dask")
    with pytest.raises(ValueError, match="n_jobs must be a positive integer, got 0"):
        run_jobs(TRAIN, TRAIN_PAYLOADS, n_jobs=0)
    with pytest.raises(TypeError, match="payload 1 must be a dict, got list"):
        run_jobs(TRAIN, [{"seed": 0}, [1]], n_jobs=2)
    with pytest.raises(TypeError, match="sequence of module names, got the string"):
        run_jobs(TRAIN, TRAIN_PAYLOADS, modules=USER_JOBS)
    with pytest.raises(ModuleNotFoundError, match=r"'lfi_test_missing' \(listed in modules\)"):
        run_jobs(TRAIN, TRAIN_PAYLOADS, n_jobs=2, modules=(USER_JOBS, "lfi_test_missing"))
    with pytest.raises(AttributeError, match="did you mean train_tiny_mlp"):
        run_jobs("executor_jobs:train_tiny_mpl", TRAIN_PAYLOADS, n_jobs=2)


# --------------------------------------------------------------------------- import_path


@pytest.mark.parametrize("spec", ["no_colon", "a:b:c", ":f", "module:", "1st:f", "m:f-g"])
def test_import_path_refuses_a_malformed_spec(spec: str) -> None:
    with pytest.raises(ValueError, match=r"expected 'package.module:attribute' \(e.g."):
        import_path(spec)


def test_import_path_finds_the_current_directory_and_explains_what_is_missing(
    user_modules: Path,
) -> None:
    assert import_path(f"{USER_PACKAGE}.scale:FACTOR") == 3
    assert import_path("os.path:join") is os.path.join  # a dotted module, installed
    assert sys.path.count(str(user_modules)) == 1
    import_path(f"{USER_JOBS}:scaled_seed")
    assert sys.path.count(str(user_modules)) == 1  # put there once, not once per call

    with pytest.raises(ModuleNotFoundError) as info:
        import_path("lfi_test_nowhere.agents:MyAgent")
    message = str(info.value)
    assert "cannot import module 'lfi_test_nowhere.agents'" in message
    assert f"searched the current directory ({user_modules}) and sys.path" in message
    assert "Run from the folder that holds lfi_test_nowhere.py" in message
    assert "pip install" in message

    with pytest.raises(AttributeError, match=r"has no attribute 'scaled_sed'; did you mean"):
        import_path(f"{USER_JOBS}:scaled_sed")
    with pytest.raises(AttributeError, match=f"{USER_PACKAGE}.scale .* 'FACTORS'"):
        import_path(f"{USER_PACKAGE}.scale:FACTORS")


def test_import_path_reports_a_missing_dependency_of_the_module_as_it_is(
    user_modules: Path,
) -> None:
    (user_modules / "lfi_test_needs_dep.py").write_text("import lfi_test_absent_dependency\n")
    try:
        with pytest.raises(ModuleNotFoundError) as info:
            import_path("lfi_test_needs_dep:f")
    finally:
        sys.modules.pop("lfi_test_needs_dep", None)
    assert info.value.name == "lfi_test_absent_dependency"
    assert "searched the current directory" not in str(info.value)


def test_the_ray_executor_without_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(ImportError, match=r'pip install "lfi-gym\[ray\]"'):
        run_jobs(TRAIN, TRAIN_PAYLOADS, executor="ray")


# --------------------------------------------------------------------------- Ray

RAY_QUIET = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for this module's tests, started by the test as a user
    might start it, so run_jobs must reuse it and leave it running."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, **RAY_QUIET)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_running(ray_instance):
    # the test that lets run_jobs start its own Ray shuts down this one first
    if not ray_instance.is_initialized():
        ray_instance.init(address="local", num_cpus=2, **RAY_QUIET)
    return ray_instance


def test_ray_started_by_run_jobs_ships_the_user_modules_and_is_stopped(
    user_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    # Ray puts the driver's current directory on its local workers' sys.path; run from
    # elsewhere, so that only the shipped copies can be imported there
    (user_modules / "elsewhere").mkdir()
    monkeypatch.chdir(user_modules / "elsewhere")
    monkeypatch.syspath_prepend(user_modules)
    results = _user_module_jobs("ray")
    assert [r["value"] for r in results] == [3, 6, 15]
    for result in results:
        for key in ("module_file", "package_file"):
            assert "py_modules_files" in result[key]  # Ray's folder of shipped modules
    assert not ray.is_initialized()


def test_ray_reuses_a_running_instance_and_gives_the_same_bits(ray_running) -> None:
    in_process = run_jobs(TRAIN, TRAIN_PAYLOADS)
    finished: list[int] = []
    on_ray = run_jobs(
        TRAIN,
        TRAIN_PAYLOADS,
        executor="ray",
        modules=("executor_jobs",),  # tests/ is on this process's sys.path, not the workers'
        on_result=lambda index, _: finished.append(index),
    )
    assert [r["sums_hex"] for r in on_ray] == [r["sums_hex"] for r in in_process]
    assert [r["loss"] for r in on_ray] == [r["loss"] for r in in_process]
    assert [r["torch_threads"] for r in on_ray] == [1] * len(TRAIN_PAYLOADS)
    assert {"py_modules_files" in r["module_file"] for r in on_ray} == {True}
    assert sorted(finished) == [0, 1, 2, 3]
    assert ray_running.is_initialized()  # not ours to stop


def test_a_failing_job_on_ray_surfaces_its_index_and_message(ray_running) -> None:
    payloads = [{"seed": 30}, {"seed": 31, "fail": True}, {"seed": 32}]
    with pytest.raises(JobError) as info:
        run_jobs(FAIL, payloads, executor="ray", modules=("executor_jobs",))
    assert info.value.index == 1
    assert info.value.error == "ValueError: seed 31 is cursed"
    assert "in fail_on_seed" in info.value.traceback_text
    assert ray_running.is_initialized()


def test_ray_refuses_more_threads_per_job_than_a_node_has_cpus(ray_running) -> None:
    with pytest.raises(ValueError, match="asks each Ray task for 3 CPUs, but the largest node"):
        run_jobs(FAIL, [{"seed": 0}], executor="ray", threads_per_job=3)
    assert ray_running.is_initialized()
