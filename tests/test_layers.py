"""Imports point down the layers: envs <- wrappers <- agents <- lfi_gym's root modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Layer of each part of lfi_gym (a module may import its own layer or lower ones).
LAYERS = {"envs": 0, "wrappers": 1, "agents": 2}
ROOT_LAYER = 3  # lfi_gym/cli.py, compare.py, imitation.py, suites.py


def _imported_parts(path: Path) -> set[str]:
    """The parts of lfi_gym (``envs``, ``agents``, a root module, ...) that ``path`` imports,
    at module level or inside functions."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "lfi_gym":
                modules = [f"lfi_gym.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            names = module.split(".")
            if names[0] == "lfi_gym" and len(names) > 1:
                parts.add(names[1])
    return parts


def _sources() -> list[tuple[Path, int]]:
    sources = [(p, ROOT_LAYER) for p in sorted((ROOT / "lfi_gym").glob("*.py"))]
    for part, layer in LAYERS.items():
        sources += [(p, layer) for p in sorted((ROOT / part).rglob("*.py"))]
    return sources


@pytest.mark.parametrize(
    ("path", "layer"),
    _sources(),
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else "",
)
def test_imports_point_down(path: Path, layer: int) -> None:
    upward = {p for p in _imported_parts(path) if LAYERS.get(p, ROOT_LAYER) > layer}
    assert not upward, f"{path.relative_to(ROOT)} imports lfi_gym.{', '.join(sorted(upward))}"


def test_the_checker_sees_an_upward_import(tmp_path) -> None:
    module = tmp_path / "oracle.py"
    module.write_text("def f():\n    from lfi_gym.agents.policies import MixturePolicy\n")
    assert _imported_parts(module) == {"agents"}
