"""The comparison harness as users drive it: their own agents by module path, executors
that give the same bits, finished runs kept across a killed sweep, reports without
training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lfi_gym.cli import main
from lfi_gym.compare import JOBS_DIR, RESULTS_FILE, CompareResults, plan_jobs, run_compare
from lfi_gym.suites import SuiteEntry

REPO = Path(__file__).resolve().parents[1]

#: A user's agent in a module of their own: BC under another name, label budgets.
USER_MODULE = textwrap.dedent(
    """
    from lfi_gym.agents import BC


    class MyBC(BC):
        '''BC by another name: an agent the library does not know.'''
    """
)


def tiny_suite(agents=("bc", "dagger")) -> list[SuiteEntry]:
    return [
        SuiteEntry(
            env_id="Control-CartPole-v0",
            agents=agents,
            label_budget=40,
            curve_points=(20, 40),
            eval_episodes=2,
            n_epochs=2,
            agent_kwargs={"dagger": {"steps_per_round": 20}},
        ),
        SuiteEntry(
            env_id="Rank-Synthetic-v0",
            agents=agents,
            label_budget=40,
            curve_points=(20, 40),
            eval_episodes=2,
            n_epochs=2,
            agent_kwargs={"dagger": {"steps_per_round": 20}},
            metric="ndcg@10",
        ),
    ]


def scores(results: CompareResults) -> dict[str, object]:
    """Every run's numbers (not its timings), by job key."""
    out = {}
    for record in results.records:
        result = record["result"]
        if "curve" in result:
            out[record["key"]] = [(p["point"], p["budgets"], p["scores"]) for p in result["curve"]]
        else:
            out[record["key"]] = result["scores"]
    return out


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch) -> str:
    """A module ``my_agents`` in a fresh current directory (as a user's script folder)."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "my_agents.py").write_text(USER_MODULE)
    monkeypatch.chdir(folder)
    monkeypatch.delitem(sys.modules, "my_agents", raising=False)
    return "my_agents:MyBC"


def test_local_pool_gives_the_same_bits_as_one_process(tmp_path: Path, user_module: str) -> None:
    suite = tiny_suite(("bc", "dagger", user_module))
    one = run_compare(suite, 2, n_jobs=1)
    two = run_compare(suite, 2, n_jobs=2, out=tmp_path / "two")
    assert scores(one) == scores(two)
    # The user's agent ran under its class name, in results and in the suite IQM.
    assert one.curve("Control-CartPole-v0", "mybc")
    assert "mybc" in one.summary()["suite"]["aggregate"]

    # It is BC under another name: the same numbers as BC's (same seeds, same data).
    def numbers(name: str) -> list:
        curve = one.curve("Control-CartPole-v0", name)
        return [(p["budgets"], p["scores"]) for points in curve.values() for p in points]

    assert numbers("mybc") == numbers("bc")


def test_ray_executor_gives_the_same_bits_as_the_local_one(tmp_path: Path, user_module) -> None:
    ray = pytest.importorskip("ray")
    suite = tiny_suite(("bc", user_module))[:1]
    local = run_compare(suite, 2, n_jobs=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_compare(suite, 2, executor="ray")
    finally:
        ray.shutdown()
    assert scores(on_ray) == scores(local)
    assert on_ray.curve("Control-CartPole-v0", "mybc")


def test_saved_records_name_agents_not_import_paths(tmp_path: Path, user_module: str) -> None:
    results = run_compare(tiny_suite(("bc", user_module))[:1], 1, out=tmp_path / "out")
    results.save(tmp_path / "out")
    text = (tmp_path / "out" / RESULTS_FILE).read_text()
    records = list((tmp_path / "out" / JOBS_DIR).glob("*.json"))
    assert '"mybc"' in text
    # The suite's config keeps what the user asked for; runs are named by name only.
    for record in records:
        data = json.loads(record.read_text())
        assert "my_agents" not in json.dumps(data)


def _cli(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lfi_gym",
        "compare",
        "--env",
        "Control-CartPole-v0",
        "--agents",
        "bc,dagger",
        "--seeds",
        "3",
        "--label-budget",
        "60",
        "--curve-points",
        "20,40,60",
        "--eval-episodes",
        "2",
        "--jobs",
        "1",
        "--out",
        str(out),
        *extra,
    ]


def test_a_killed_sweep_resumes_and_a_changed_setting_reruns_its_jobs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Uninterrupted, as the reference.
    full = tmp_path / "full"
    subprocess.run(_cli(full), check=True, env=env, capture_output=True, timeout=300)
    expected = scores(CompareResults.load(full))
    # Killed once a few runs are on disk.
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _cli(killed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(list((killed / JOBS_DIR).glob("*.json"))) < 5:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list((killed / JOBS_DIR).glob("*.json")))
    total = len(plan_jobs(CompareResults.load(full).entries, [0, 1, 2]))
    assert 5 <= finished < total
    assert not (killed / RESULTS_FILE).exists()
    # The same command skips the finished runs and ends with the uninterrupted numbers.
    rerun = subprocess.run(_cli(killed), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    config = CompareResults.load(killed).config
    assert (config["jobs_reused"], config["jobs_run"]) == (finished, total - finished)
    assert scores(CompareResults.load(killed)) == expected
    # A changed setting of one agent re-runs that agent's jobs only.
    changed = subprocess.run(
        _cli(killed, "--agent-kwargs", 'dagger={"steps_per_round": 10}'),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert changed.returncode == 0, changed.stderr
    config = CompareResults.load(killed).config
    assert config["jobs_run"] == 3  # DAgger: one job per seed (its whole curve)
    assert config["jobs_reused"] == total - 3


def test_report_rebuilds_tables_and_figures_without_training(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "out"
    results = run_compare(tiny_suite()[:1], 2, out=out)
    results.save(out)
    for name in ("learning_curves.png", "performance_profiles.png"):
        (out / name).unlink()
    capsys.readouterr()

    def no_training(payload):
        raise AssertionError("report must not train")

    monkeypatch.setattr("lfi_gym.compare.run_job", no_training)
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Control-CartPole-v0" in printed and "IQM" in printed
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "performance_profiles.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_refuses_a_folder_without_results(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json does not exist" in capsys.readouterr().err


def test_the_example_agent_enters_a_comparison_from_the_repository_root(tmp_path: Path) -> None:
    """README's promise: ``--agents examples.write_your_own_agent:MyAgent,bc,dagger`` from
    the repository root, on CartPole and a ranking env; the new agent beats random."""
    spec = "examples.write_your_own_agent:MyAgent"
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "lfi_gym", "compare",
        "--env", "Control-CartPole-v0", "--env", "Rank-Synthetic-v0",
        "--agents", f"{spec},bc,dagger",
        "--agent-kwargs", f'{spec}={{"steps_per_round": 30, "n_epochs": 20}}',
        "--seeds", "2", "--label-budget", "60", "--curve-points", "60",
        "--eval-episodes", "5", "--jobs", "2", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "myagent" in done.stdout
    summary = CompareResults.load(out).summary()["envs"]
    for env_id in ("Control-CartPole-v0", "Rank-Synthetic-v0"):
        row = summary[env_id]["agents"]["myagent"]
        # Normalised: 0 is the random policy on the same episodes, 1 the expert.
        assert row["normalized_ci"][0] > 0.05, (env_id, row)
        assert row["budgets"]["expert_labels"] == 60


def test_the_main_jobs_output_holds_no_third_party_noise(tmp_path: Path) -> None:
    """Captured (not a terminal), in the main process and in worker processes: no
    transformers "Loading weights" bars and no FutureWarning; progress as plain lines."""
    argv = [
        sys.executable, "-m", "lfi_gym", "compare",
        "--env", "TextGen-TinyReviews-v0", "--agents", "zero-shot,bc,dagger",
        "--seeds", "1", "--label-budget", "16", "--curve-points", "16",
        "--eval-episodes", "2", "--agent-kwargs", 'dagger={"steps_per_round": 8}',
        "--jobs", "2", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Loading weights" not in output and "Warning" not in output, output
    assert "[5/5] TextGen-TinyReviews-v0" in done.stderr  # one line per finished run
    assert "TextGen-TinyReviews-v0" in done.stdout and "IQM" in done.stdout
    # The suite's declared pair, a reference and a number, is named in the caption.
    assert "0 = zero-shot, 1 = a score of 1" in " ".join(done.stdout.split())


def test_agents_and_references_of_a_seed_face_the_same_evaluation_episodes(monkeypatch) -> None:
    """Episode i of seed s starts from reset(seed=10_000 + 1_000 s + i), for every agent
    and reference: normalising by the references is like for like."""
    import gymnasium as gym

    from lfi_gym.compare import EVAL_SEED_OFFSET, EVAL_SEED_STRIDE, run_job

    seen: list[int | None] = []
    env_class = type(gym.make("Control-CartPole-v0").unwrapped)
    reset = env_class.reset

    def spy(self, *, seed=None, options=None):
        seen.append(seed)
        return reset(self, seed=seed, options=options)

    (entry,) = tiny_suite(("bc",))[:1]
    evaluation = {EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * 1 + i for i in range(entry.eval_episodes)}
    by_name = {}
    for job in plan_jobs([entry], [1]):
        if job.points not in ((), (entry.label_budget,)):
            continue
        seen.clear()
        monkeypatch.setattr(env_class, "reset", spy)
        run_job(job.payload())
        by_name[job.name] = [s for s in seen if s is not None and s >= EVAL_SEED_OFFSET]
    assert set(by_name) == {"random", "expert", "bc"}
    for seeds in by_name.values():
        assert sorted(seeds) == sorted(evaluation)
