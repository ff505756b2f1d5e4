"""The command line's --out: checked before any work; every OSError is one line on stderr with
exit status 2; results that cannot be written at the end go to a temporary folder."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import gymnasium as gym
import pytest

import lfi_gym.agents.data as data_module
import lfi_gym.compare as compare_module
from lfi_gym.cli import main

COMPARE = ["compare", "--env", "Control-CartPole-v0", "--agents", "bc", "--seeds", "1"]
SMALL = ["--label-budget", "30", "--curve-points", "30", "--eval-episodes", "1"]
DEMOS = ["demos", "--env", "MinAtarImitation-Breakout-v0", "--episodes", "1"]

root_ignores_permissions = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders"
)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if any command gets as far as making an env or training."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(compare_module, "run_compare", refuse)
    monkeypatch.setattr(data_module, "record", refuse)
    monkeypatch.setattr(gym, "make", refuse)


@pytest.fixture
def read_only(tmp_path: Path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def one_error_line(capsys: pytest.CaptureFixture, prog: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"lfi-gym {prog}: error: ")
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize("suite", ["default", "atari-imitation"])
def test_compare_out_at_a_file_exits_2_before_training(tmp_path, capsys, no_work, suite) -> None:
    out = tmp_path / "results.json"
    out.write_text("{}")
    assert main([*COMPARE, "--suite", suite, "--out", str(out)]) == 2
    assert "is a file; give a writable folder" in one_error_line(capsys, "compare")
    assert out.read_text() == "{}"


def test_compare_out_below_a_file_exits_2_before_training(tmp_path, capsys, no_work) -> None:
    (tmp_path / "file").write_text("")
    assert main([*COMPARE, "--out", str(tmp_path / "file" / "results")]) == 2
    assert "cannot be created (Not a directory)" in one_error_line(capsys, "compare")


@root_ignores_permissions
@pytest.mark.parametrize(("name", "problem"), [("", "is not writable"), ("new", "cannot be")])
def test_compare_out_unwritable_exits_2_before_training(
    read_only, capsys, no_work, name, problem
) -> None:
    assert main([*COMPARE, "--out", str(read_only / name)]) == 2
    line = one_error_line(capsys, "compare")
    assert problem in line and "(Permission denied)" in line
    assert os.listdir(read_only) == []


# /proc refuses new files even to root: the unwritable place that CI, running as root or
# not, always has.
proc_is_unwritable = pytest.mark.skipif(
    not os.path.isdir("/proc/self"), reason="needs Linux's /proc"
)


@proc_is_unwritable
def test_compare_out_in_a_place_nobody_may_write_exits_2(capsys, no_work) -> None:
    assert main([*COMPARE, "--out", "/proc"]) == 2
    assert "'/proc' is not writable" in one_error_line(capsys, "compare")


@proc_is_unwritable
def test_demos_out_in_a_place_nobody_may_write_exits_2(capsys, no_work) -> None:
    assert main([*DEMOS, "--out", "/proc/demos.lfid"]) == 2
    assert "'/proc' is not writable" in one_error_line(capsys, "demos")
    assert not os.path.exists("/proc/demos.lfid")


def test_compare_out_holding_a_folder_named_like_a_result_exits_2(tmp_path, capsys, no_work):
    (tmp_path / "results.json").mkdir()
    assert main([*COMPARE, "--out", str(tmp_path)]) == 2
    assert "holds a folder results.json" in one_error_line(capsys, "compare")


def test_compare_out_is_created_and_the_probe_removed(tmp_path, monkeypatch) -> None:
    seen = []

    def run_compare(*args, **kwargs):
        seen.append(sorted(os.listdir(out)))
        raise KeyboardInterrupt  # stop here: only the folder's state matters

    monkeypatch.setattr(compare_module, "run_compare", run_compare)
    out = tmp_path / "a" / "b"
    assert main([*COMPARE, *SMALL, "--out", str(out), "--no-progress"]) == 130
    assert seen == [[]]


def test_demos_out_in_a_file_exits_2_before_recording(tmp_path, capsys, no_work) -> None:
    (tmp_path / "file").write_text("")
    assert main([*DEMOS, "--out", str(tmp_path / "file" / "d.lfid")]) == 2
    assert "is a file; give a file in a writable folder" in one_error_line(capsys, "demos")


def test_demos_out_at_a_folder_is_one_line(tmp_path, capsys, no_work) -> None:
    assert main([*DEMOS, "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file such as demos.lfid" in one_error_line(capsys, "demos")


@root_ignores_permissions
@pytest.mark.parametrize(("name", "problem"), [("", "is not writable"), ("new", "cannot be")])
def test_demos_out_unwritable_exits_2_before_recording(
    read_only, capsys, no_work, name, problem
) -> None:
    assert main([*DEMOS, "--out", str(read_only / name / "d.lfid")]) == 2
    line = one_error_line(capsys, "demos")
    assert problem in line and "(Permission denied)" in line


def test_an_os_error_while_running_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    def record(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d.lfid"))

    monkeypatch.setattr(data_module, "record", record)
    assert main([*DEMOS, "--out", str(tmp_path / "d.lfid"), "--no-progress"]) == 2
    line = one_error_line(capsys, "demos")
    assert line.endswith(f"{tmp_path / 'd.lfid'}: No space left on device")


def _failing_save_to(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = compare_module.CompareResults.save

    def save(self, out_dir):
        if Path(out_dir) == folder:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "results.json"))
        return real_save(self, out_dir)

    monkeypatch.setattr(compare_module.CompareResults, "save", save)


def test_results_that_cannot_be_saved_go_to_a_temporary_folder(
    tmp_path, capsys, monkeypatch
) -> None:
    out, temporary = tmp_path / "out", tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    _failing_save_to(out, monkeypatch)
    assert main([*COMPARE, *SMALL, "--out", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "Control-CartPole-v0" in captured.out  # the table is printed all the same
    (line,) = captured.err.splitlines()
    (fallback,) = temporary.glob("lfi-gym-compare-*")  # torch caches go there too
    assert line == (
        f"lfi-gym compare: error: could not write the results to --out {str(out)!r} "
        f"({out / 'results.json'}: No space left on device); wrote them to {fallback} instead"
    )
    results = json.loads((fallback / "results.json").read_text())
    assert [run["agent"] for run in results["runs"]] == ["bc"]
    assert (fallback / "learning_curves.png").stat().st_size > 0
    assert os.listdir(out) == []


def test_results_that_cannot_be_saved_anywhere_say_so(tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"

    def no_temporary_folder(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "tmp"))

    # Patched, not pointed at a missing tempdir: torch creates its cache folder there when
    # it first imports its compiler, which made the folder exist after all.
    monkeypatch.setattr(tempfile, "mkdtemp", no_temporary_folder)
    _failing_save_to(out, monkeypatch)
    assert main([*COMPARE, *SMALL, "--out", str(out), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "nor to a temporary folder" in line and "the tables above are all" in line
