"""The one-package layout: what the wheel ships, and what a fresh interpreter imports.

The repository keeps envs/, agents/ and wrappers/ at its top level; they install as
``lfi_gym.envs``, ``lfi_gym.agents`` and ``lfi_gym.wrappers`` (pyproject's
[tool.setuptools] package-dir). The wheel tests build the wheel and read its entries; the
other tests run a new interpreter in a tmp folder outside the repository, where neither the
working directory nor this test session's imports can stand in for what is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from fnmatch import fnmatch
from importlib.metadata import version
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import lfi_gym
from lfi_gym import envs

REPO = Path(__file__).resolve().parents[1]

# Repository folder -> where its files land in the wheel.
SOURCE_FOLDERS = {
    "lfi_gym": "lfi_gym",
    "envs": "lfi_gym/envs",
    "agents": "lfi_gym/agents",
    "wrappers": "lfi_gym/wrappers",
}

# Offline assets the envs load from the installed package (TinyReviews' and TinyConcepts'
# models and tokenizers, Rank-LETOR-v0's sample), as repository folders.
ASSET_FOLDERS = (
    "envs/text/assets/tinyreviews",
    "envs/text/assets/tinyconcepts",
    "envs/ranking/assets/letor_sample",
)
REQUIRED_ASSETS = (
    "lfi_gym/envs/text/assets/tinyreviews/model.safetensors",
    "lfi_gym/envs/text/assets/tinyreviews/config.json",
    "lfi_gym/envs/text/assets/tinyreviews/tokenizer.json",
    "lfi_gym/envs/text/assets/tinyconcepts/model.safetensors",
    "lfi_gym/envs/text/assets/tinyconcepts/config.json",
    "lfi_gym/envs/text/assets/tinyconcepts/tokenizer.json",
    "lfi_gym/envs/ranking/assets/letor_sample/train.txt",
    "lfi_gym/envs/ranking/assets/letor_sample/vali.txt",
    "lfi_gym/envs/ranking/assets/letor_sample/test.txt",
)

# Ids whose assets come from the Hugging Face hub; every other id runs offline.
HUB_IDS = ("TextGen-IMDB-v0", "TextGen-CommonGen-v0")

# Setuptools 77 is the first to read pyproject's SPDX `license = "MIT"`.
MIN_SETUPTOOLS = 77


# -- the wheel -------------------------------------------------------------------------------


def _ignored_by_git(root: Path) -> list[str]:
    """Name patterns from .gitignore (caches, venvs, build outputs), plus .git itself."""
    patterns = [".git"]
    for line in (root / ".gitignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            patterns.append(line.rstrip("/"))
    return patterns


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel of this checkout, built offline from a copy of it.

    A copy, because pip builds a local folder in place: a stale build/lib left in the
    checkout would ship modules that are gone, and the build would write into the tree other
    tests are reading.
    """
    installed = version("setuptools")
    if int(installed.split(".")[0]) < MIN_SETUPTOOLS:
        pytest.fail(
            f"building the wheel needs setuptools>={MIN_SETUPTOOLS} (pyproject's license = "
            f"'MIT'), found {installed}: pip install 'setuptools>={MIN_SETUPTOOLS}' (the dev "
            "extra lists it)"
        )
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    patterns = _ignored_by_git(REPO)
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=lambda _, names: [n for n in names if any(fnmatch(n, p) for p in patterns)],
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--disable-pip-version-check", "--quiet"),
            *("--wheel-dir", str(work / "dist"), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (built,) = (work / "dist").glob("lfi_gym-*.whl")
    return zipfile.ZipFile(built)


def _repository_modules() -> set[str]:
    """Every .py under the package folders, at the path it must have in the wheel."""
    modules = set()
    for folder, prefix in SOURCE_FOLDERS.items():
        base = REPO / folder
        for dirpath, dirnames, filenames in os.walk(
            base
        ):  # links (lfi_gym/envs -> ../envs) are skipped
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            relative = Path(dirpath).relative_to(base)
            modules.update(
                (Path(prefix) / relative / name).as_posix()
                for name in filenames
                if name.endswith(".py")
            )
    return modules


def test_wheel_has_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    top_level = {name.split("/")[0] for name in wheel.namelist()}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert len(dist_info) == 1, top_level
    assert top_level - dist_info == {"lfi_gym"}, (
        "the wheel must install the one package lfi_gym (plus its .dist-info); it also has "
        f"{sorted(top_level - dist_info - {'lfi_gym'})}"
    )


def test_wheel_ships_every_module_of_the_repository(wheel: zipfile.ZipFile) -> None:
    shipped = {name for name in wheel.namelist() if name.endswith(".py")}
    expected = _repository_modules()
    assert "lfi_gym/envs/text/tinyreviews/grammar.py" in expected  # the walk reached subpackages
    missing, extra = sorted(expected - shipped), sorted(shipped - expected)
    assert not missing, (
        f"the wheel lacks {missing}: add each one's package to [tool.setuptools] packages "
        "in pyproject.toml"
    )
    assert not extra, f"the wheel ships modules the repository does not have: {extra}"


def test_wheel_ships_the_offline_assets(wheel: zipfile.ZipFile) -> None:
    shipped = set(wheel.namelist())
    assert set(REQUIRED_ASSETS) <= shipped, sorted(set(REQUIRED_ASSETS) - shipped)
    for folder in ASSET_FOLDERS:
        files = sorted(p for p in (REPO / folder).rglob("*") if p.is_file())
        assert files, f"{folder} is empty"
        for path in files:
            entry = "lfi_gym/" + path.relative_to(REPO).as_posix()
            assert entry in shipped, f"{entry} is not in the wheel ([tool.setuptools.package-data])"
            assert wheel.read(entry) == path.read_bytes(), f"{entry} differs from {path}"


def test_wheel_marks_the_package_typed(wheel: zipfile.ZipFile) -> None:
    # PEP 561: without the marker, type checkers ignore the hints of an installed package
    assert "lfi_gym/py.typed" in wheel.namelist(), "add py.typed to [tool.setuptools.package-data]"


# -- fresh interpreters ----------------------------------------------------------------------


def _run_fresh(code: str, cwd: Path, *args: str) -> dict:
    """Run ``code`` (with ``args`` in sys.argv[1:]) in a new interpreter in ``cwd`` with the
    hub offline; return the JSON object it prints last. It must import the lfi_gym this
    session imports."""
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"the fresh interpreter failed:\n{result.stderr[-4000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    here = Path(lfi_gym.__file__).resolve()
    assert Path(report["lfi_gym_file"]).resolve() == here, (
        f"the fresh interpreter imported lfi_gym from {report['lfi_gym_file']}, these tests "
        f"from {here}: install this checkout (pip install -e .) or put it on PYTHONPATH"
    )
    return report


def test_gym_make_with_the_module_prefix_imports_lfi_gym(tmp_path: Path) -> None:
    report = _run_fresh(
        """\
        import json, sys
        import gymnasium as gym

        imported_before = "lfi_gym" in sys.modules
        env = gym.make("lfi_gym:Control-CartPole-v0")
        obs, info = env.reset(seed=0)
        print(json.dumps({
            "lfi_gym_file": sys.modules["lfi_gym"].__file__,
            "imported_before": imported_before,
            "id": env.spec.id,
            "obs": obs.tolist(),
        }))
        """,
        tmp_path,
    )
    assert report["imported_before"] is False  # the prefix is what imported lfi_gym
    assert report["id"] == "Control-CartPole-v0"
    expected, _ = gym.make("Control-CartPole-v0").reset(seed=0)
    np.testing.assert_array_equal(np.asarray(report["obs"], dtype=expected.dtype), expected)


def test_import_lfi_gym_registers_ids_and_imports_only_envs(tmp_path: Path) -> None:
    report = _run_fresh(
        """\
        import json, sys
        import gymnasium as gym
        import lfi_gym

        ids = lfi_gym.envs.registered_ids()
        print(json.dumps({
            "lfi_gym_file": lfi_gym.__file__,
            "ids": ids,
            "unregistered": [i for i in ids if i not in gym.registry],
            "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "lfi_gym"),
        }))
        """,
        tmp_path,
    )
    assert report["ids"] == envs.registered_ids()
    assert report["unregistered"] == []
    beyond_envs = [
        m for m in report["loaded"] if m != "lfi_gym" and m.split(".")[:2] != ["lfi_gym", "envs"]
    ]
    assert beyond_envs == [], f"import lfi_gym loaded modules above lfi_gym.envs: {beyond_envs}"


def test_envs_run_without_importing_agents(tmp_path: Path) -> None:
    """Make, step, batch and ask the oracle of every offline id: lfi_gym.envs is the bottom
    layer, so none of it may import lfi_gym.agents, however lazily."""
    assert set(HUB_IDS) <= set(envs.registered_ids())
    report = _run_fresh(
        """\
        import json, sys
        import gymnasium as gym
        import numpy as np
        import lfi_gym
        from lfi_gym import envs

        def agents_modules():
            return sorted(
                m for m in sys.modules
                if m == "lfi_gym.agents" or m.startswith("lfi_gym.agents.")
            )

        def valid_action(env):
            masks = getattr(env.unwrapped, "action_masks", None)
            if masks is None:
                return env.action_space.sample()
            return env.action_space.sample(mask=np.asarray(masks(), dtype=np.int8))

        first_import = None  # the first call after which lfi_gym.agents was loaded
        def note(what):
            global first_import
            if first_import is None and agents_modules():
                first_import = what

        checked = []
        for env_id in envs.registered_ids():
            if env_id in sys.argv[1:]:  # the hub ids
                continue
            env = gym.make(env_id)
            obs, _ = env.reset(seed=0)
            env.action_space.seed(0)
            for _ in range(3):
                obs, _, terminated, truncated, _ = env.step(valid_action(env))
                if terminated or truncated:
                    obs, _ = env.reset()
            note(f"gym.make / reset / step of {env_id}")
            expert = envs.make_expert(env)
            action, _ = expert.predict(obs, deterministic=True)
            assert env.action_space.contains(np.asarray(action).item()), (env_id, action)
            note(f"envs.make_expert(env).predict of {env_id}")
            checked.append(env_id)

        vector = gym.make_vec("TextGen-TinyReviews-v0", num_envs=2)
        vector.reset(seed=0)
        vector.step(vector.action_space.sample())
        note("gym.make_vec('TextGen-TinyReviews-v0', num_envs=2)")
        print(json.dumps({
            "lfi_gym_file": lfi_gym.__file__,
            "checked": checked,
            "first_import": first_import,
            "agents_modules": agents_modules(),
        }))
        """,
        tmp_path,
        *HUB_IDS,
    )
    assert report["checked"] == [i for i in envs.registered_ids() if i not in HUB_IDS]
    assert report["agents_modules"] == [], (
        f"lfi_gym.envs imported lfi_gym.agents (first after {report['first_import']}): "
        f"{report['agents_modules']}"
    )
