"""Agents by name: register_agent, installed plug-ins (entry points), module:Class, and
suite files that name them."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

import lfi_gym
from lfi_gym import registry
from lfi_gym.agents import BC, DAgger
from lfi_gym.compare import plan_jobs, run_compare
from lfi_gym.suites import SuiteEntry, load_suite_file


class RenamedDAgger(DAgger):
    """An agent the library does not know: DAgger under another name."""


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", {})


def test_register_agent_makes_a_name_that_compare_runs() -> None:
    lfi_gym.register_agent("Renamed", RenamedDAgger)
    assert "renamed" in registry.agent_names()
    assert registry.resolve_agent("RENAMED") == ("renamed", RenamedDAgger)
    entry = SuiteEntry(
        "Control-CartPole-v0",
        agents=("renamed", "dagger"),
        label_budget=20,
        curve_points=(10, 20),
        eval_episodes=2,
        n_epochs=2,
        agent_kwargs={"renamed": {"steps_per_round": 10}, "dagger": {"steps_per_round": 10}},
    )
    results = run_compare([entry], 1)
    mine = results.curve("Control-CartPole-v0", "renamed")[0]
    theirs = results.curve("Control-CartPole-v0", "dagger")[0]
    assert [(p["budgets"], p["scores"]) for p in mine] == [
        (p["budgets"], p["scores"]) for p in theirs
    ]


def test_register_agent_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="built-in agent"):
        lfi_gym.register_agent("bc", RenamedDAgger)
    with pytest.raises(TypeError, match=r"subclass of lfi_gym\.agents\.BaseAgent"):
        lfi_gym.register_agent("mine", dict)
    with pytest.raises(ValueError, match="without ':'"):
        lfi_gym.register_agent("my:agent", RenamedDAgger)
    lfi_gym.register_agent("mine", RenamedDAgger)
    lfi_gym.register_agent("mine", RenamedDAgger)  # the same class again: fine
    with pytest.raises(ValueError, match="overwrite=True"):
        lfi_gym.register_agent("mine", BC)
    lfi_gym.register_agent("mine", BC, overwrite=True)
    assert registry.resolve_agent("mine")[1] is BC


def test_unknown_names_list_the_known_ones_and_how_to_add_one() -> None:
    with pytest.raises(ValueError) as caught:
        registry.resolve_agent("searn")
    message = str(caught.value)
    for name in ("bc", "dagger", "ppo++", "pgrank"):
        assert name in message
    assert "register_agent" in message and "lfi_gym.agents" in message and "module:Class" in message


def test_an_installed_packages_entry_point_appears_by_name(tmp_path: Path, monkeypatch) -> None:
    """A package declaring ``[project.entry-points."lfi_gym.agents"]`` (here: its installed
    metadata, written by hand) makes its agent a name, loaded only when asked for."""
    (tmp_path / "plug_agents.py").write_text(
        textwrap.dedent(
            """
            from lfi_gym.agents import BC

            class PlugBC(BC):
                pass
            """
        )
    )
    info = tmp_path / "plug_agents-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-agents\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lfi_gym.agents]\nplugbc = plug_agents:PlugBC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "plug_agents", raising=False)
    assert "plugbc" in registry.agent_names()
    assert "plug_agents" not in sys.modules  # listing names imports nothing
    name, cls = registry.resolve_agent("plugbc")
    assert name == "plugbc" and cls.__name__ == "PlugBC" and issubclass(cls, BC)
    (job,) = [
        j
        for j in plan_jobs([SuiteEntry("Control-CartPole-v0", agents=("plugbc",))], [0])
        if j.kind == "agent"
    ][:1]
    assert job.name == "plugbc"


def test_module_paths_keep_their_case_and_are_named_by_class(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "CamelAgents.py").write_text(
        "from lfi_gym.agents import BC\nclass Mine(BC):\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "CamelAgents", raising=False)
    entry = SuiteEntry("Control-CartPole-v0", agents=("CamelAgents:Mine", "BC"))
    assert entry.agents == ("CamelAgents:Mine", "bc")
    assert registry.resolve_agent("CamelAgents:Mine")[0] == "mine"
    with pytest.raises(ValueError, match="built-in agent's name"):
        (tmp_path / "clash.py").write_text(
            "from lfi_gym.agents import BC as _B\nclass BC(_B):\n    pass\n"
        )
        registry.resolve_agent("clash:BC")


def test_a_suite_file_names_envs_agents_settings_budgets_and_seeds(tmp_path: Path) -> None:
    toml = tmp_path / "suite.toml"
    toml.write_text(
        textwrap.dedent(
            """
            seeds = 2

            [[env]]
            id = "Control-CartPole-v0"
            base = "default"
            agents = ["bc", "dagger"]
            label_budget = 100

            [env.agent_kwargs.dagger]
            steps_per_round = 25

            [[env]]
            id = "Rank-Synthetic-v0"
            agents = ["bc"]
            label_budget = 40
            curve_points = [20, 40]
            metric = "ndcg@10"
            """
        )
    )
    suite = load_suite_file(toml)
    cartpole, ranking = suite.entries
    assert suite.seeds == 2
    # From the default suite's entry, with the file's budget and settings over it.
    assert cartpole.curve_points == (50, 100) and cartpole.n_epochs == 50
    assert cartpole.agent_kwargs["dagger"] == {"steps_per_round": 25}
    assert ranking.curve_points == (20, 40) and ranking.metric == "ndcg@10"
    as_json = tmp_path / "suite.json"
    as_json.write_text(json.dumps({"env": [e.to_dict() for e in suite.entries], "seeds": 2}))
    assert load_suite_file(as_json) == suite


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[env]]\nid = 'Control-CartPole-v0'\nbudget = 3\n", "unknown suite entry key(s) budget"),
        ("[[env]]\nagents = ['bc']\n", "needs its env id"),
        ("seeds = 2\n", "no [[env]] entries"),
        ("colour = 'red'\n[[env]]\nid = 'x'\n", "unknown key(s) colour"),
        ("[[env]]\nid = 'Control-CartPole-v0'\nmetric = 'ndcg@3'\n", "metric must be one of"),
        ("[[env]\n", "not valid TOML"),
    ],
)
def test_bad_suite_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_suite_file(path)
