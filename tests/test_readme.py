"""The README's code runs as written, and opens with the two commands CI runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def test_readme_opens_with_the_install_and_test_commands() -> None:
    commands = [line for line in _blocks("bash")[0].splitlines() if line.strip()]
    assert len(commands) == 2
    assert "lfi-gym compare" in commands[0] and "pytest" in commands[1]
    assert all("torch==" in command for command in commands)  # CPU build on CI


def test_readme_quickstart_runs(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[0], str(README), "exec"), {"__name__": "readme"})
    assert float(capsys.readouterr().out.strip()) >= 400  # DAgger's mean return
    assert sorted(os.listdir(tmp_path)) == ["cartpole.lfid", "dagger.zip"]


def test_readme_text_example_runs() -> None:
    # the text env's example (the guided-RL example trains for minutes: not run here)
    (block,) = [b for b in _blocks("python") if "TextGen-TinyReviews-v0" in b and "learn(" not in b]
    scope: dict = {"__name__": "readme"}
    exec(compile(block, str(README), "exec"), scope)
    assert scope["actions"].shape == (64,)
    assert scope["obs"]["input_ids"].shape[0] == 64


def test_readme_family_table_is_the_harness_matrix() -> None:
    from lfi_gym.compare import family_matrix

    text = README.read_text()
    rows = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) == 2 and parts[0].split(" ")[0] in family_matrix():
            rows[parts[0].split(" ")[0]] = parts[1].split(", ")
    assert rows == family_matrix()
