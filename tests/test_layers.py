"""Imports point down the layers, and no modules of ours import each other in a cycle.

Layers, from the bottom: ``lfi_gym.envs`` (envs/), ``lfi_gym.wrappers`` (wrappers/),
``lfi_gym.agents`` (agents/), and the root's own modules (lfi_gym/: the ``lfi-gym``
command line and the runners). A module may import its own layer and the layers below.
``lfi_gym`` itself (lfi_gym/__init__.py) counts as the root layer for modules that import
it, but it may import only ``lfi_gym.envs``: every import of any ``lfi_gym.*`` module runs it
first.

The import graph is read with :mod:`ast` from every .py under envs/, wrappers/, agents/ and
lfi_gym/, each file named as it installs (envs/text/env.py is ``lfi_gym.envs.text.env``).
An edge comes from:

- an import statement anywhere in a file: at module level, in a function (deferred), under
  ``if TYPE_CHECKING:``; relative imports are resolved;
- ``importlib.import_module("...")`` / ``import_module("...")`` / ``__import__("...")`` with
  a literal name;
- a ``"lfi_gym.x.y:attr"`` string (a Gymnasium or loader entry point, also the literal head
  of an f-string): loading it imports ``lfi_gym.x.y``. It is deferred.

Which modules an import runs, as Python does it:

1. ``import a.b.c`` runs a, a.b and a.b.c in turn; ``from a.b import c`` runs a and a.b, and
   a.b.c too when c is a submodule. The module the statement names (a.b.c; a.b when an
   attribute of it is read; a.b.c when c is a submodule) is the *named* target; the layer
   rule is checked on named targets.
2. A package that contains the importing module is no edge unless the statement names it
   itself: Python began running that package's __init__ before the importing module's body
   ran. So envs/text/env.py importing ``lfi_gym.envs.text.rows`` depends on rows only, not
   on envs/text/__init__.py (which imports env.py): counting the parent would make every
   package whose __init__ imports its own submodules a cycle.
3. A statement that names such a package itself (``from lfi_gym.envs.text import TextTask``
   inside lfi_gym.envs.text.env) is an edge: it reads a name from a package whose __init__
   may still be running, the classic partial-import failure; it is a cycle exactly when
   that __init__ imports the module.
4. Other packages the statement runs on the way (``lfi_gym.agents`` when envs imports
   ``lfi_gym.agents.policies``) are edges: their __init__ runs and imports what it imports.

A cycle fails whether its imports run at import time or are deferred: a deferred import
still makes the two modules depend on each other (the report says which edges are deferred).

Self-tests at the end build small trees in a tmp folder, so that the walker itself is tested
on an injected up-import, an injected cycle and a package layout that must not be a cycle.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import textwrap
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Installed package name -> folder (relative to the repository root), as in pyproject's
# [tool.setuptools] package-dir.
PACKAGE_DIRS = {
    "lfi_gym": "lfi_gym",
    "lfi_gym.envs": "envs",
    "lfi_gym.wrappers": "wrappers",
    "lfi_gym.agents": "agents",
}

# Bottom to top; everything in lfi_gym outside these is the root layer.
LAYERS = ("lfi_gym.envs", "lfi_gym.wrappers", "lfi_gym.agents")
ROOT_LAYER = "lfi_gym (root modules)"

# "lfi_gym.x.y:attr"; the part after the colon may be cut short by an f-string field.
_ENTRY_POINT = re.compile(r"(lfi_gym(?:\.[A-Za-z_]\w*)*):[\w.\-]*")
_IMPORT_FUNCTIONS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Edge:
    """``importer`` runs ``target`` (both modules of ours) because of ``path``:``line``."""

    importer: str
    target: str
    path: str
    line: int
    kind: str  # "import", "import_module" or "entry point"
    deferred: bool  # in a function body, or an entry point: runs when called / loaded
    named: bool  # the statement names target (rule 1); False: a package run on the way

    def where(self) -> str:
        return f"{self.path}:{self.line} ({self.kind}{', deferred' if self.deferred else ''})"


@dataclass
class ImportGraph:
    modules: dict[str, str]  # module name -> file path relative to the root
    edges: list[Edge]
    unresolved: list[str]  # "path:line: name" for lfi_gym names that are no module of ours


def layer_of(module: str) -> str:
    return next((layer for layer in LAYERS if _contains(layer, module)), ROOT_LAYER)


def _rank(layer: str) -> int:
    return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


def _contains(package: str, module: str) -> bool:
    return module == package or module.startswith(package + ".")


def find_modules(root: Path, package_dirs: dict[str, str]) -> dict[str, str]:
    """Every .py under the package folders, by the module name it installs as."""
    mapped_dirs = {(root / folder).resolve() for folder in package_dirs.values()}
    modules: dict[str, str] = {}
    for package, folder in package_dirs.items():
        base = root / folder
        for dirpath, dirnames, filenames in os.walk(base):  # does not follow symlinks
            here = Path(dirpath)
            # a link to another package's folder (lfi_gym/envs -> ../envs, as a development
            # worktree may have) is walked under that package's own name
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d != "__pycache__" and (here / d).resolve() not in mapped_dirs
            )
            for filename in sorted(filenames):
                if not filename.endswith(".py"):
                    continue
                parts = list((here / filename).relative_to(base).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                name = ".".join([package, *parts])
                modules[name] = (here / filename).relative_to(root).as_posix()
    return modules


class _ImportCollector(ast.NodeVisitor):
    """Collects (name, fromlist, line, kind, deferred) for every import in one file.

    ``fromlist`` is None for ``import name`` (and import_module / entry points), else the
    names of ``from name import ...``.
    """

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, list[str] | None, int, str, bool]] = []
        self._function_depth = 0

    def _add(self, name: str, fromlist: list[str] | None, line: int, kind: str) -> None:
        deferred = self._function_depth > 0 or kind == "entry point"
        self.found.append((name, fromlist, line, kind, deferred))

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        # decorators and default values run when the function is defined; the body later
        for expr in getattr(node, "decorator_list", []):
            self.visit(expr)
        self.visit(node.args)
        self._function_depth += 1
        for stmt in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(stmt)
        self._function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, None, node.lineno, "import")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            if node.level - 1 >= len(base):
                raise ValueError(f"{self.module}: relative import beyond the top package")
            base = base[: len(base) - (node.level - 1)]
            name = ".".join([*base, *([node.module] if node.module else [])])
        else:
            name = node.module or ""
        self._add(name, [alias.name for alias in node.names], node.lineno, "import")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            called in _IMPORT_FUNCTIONS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            self._add(node.args[0].value, None, node.lineno, "import_module")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            match = _ENTRY_POINT.fullmatch(node.value)
            if match:
                self._add(match.group(1), None, node.lineno, "entry point")


def _is_ours(name: str) -> bool:
    return _contains("lfi_gym", name)


def build_graph(root: Path, package_dirs: dict[str, str] = PACKAGE_DIRS) -> ImportGraph:
    """The import graph between modules of ours, by the rules in this module's docstring."""
    modules = find_modules(root, package_dirs)
    edges: set[Edge] = set()
    unresolved: list[str] = []
    for importer, path in modules.items():
        tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=path)
        collector = _ImportCollector(importer, path.endswith("__init__.py"))
        collector.visit(tree)
        for name, fromlist, line, kind, deferred in collector.found:
            if not _is_ours(name):
                continue
            if name not in modules:
                unresolved.append(f"{path}:{line}: {name}")
                continue
            named: list[str] = []
            if fromlist is None:
                named.append(name)
            else:
                submodules = [f"{name}.{x}" for x in fromlist if f"{name}.{x}" in modules]
                named.extend(submodules)
                if len(submodules) < len(fromlist):  # attributes (or *) are read from name
                    named.append(name)
            parts = name.split(".")
            run_on_the_way = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            for target in run_on_the_way:
                if target in modules and target not in named and not _contains(target, importer):
                    edges.add(Edge(importer, target, path, line, kind, deferred, named=False))
            for target in named:
                if target != importer:
                    edges.add(Edge(importer, target, path, line, kind, deferred, named=True))
    return ImportGraph(modules, sorted(edges, key=lambda e: (e.path, e.line, e.target)), unresolved)


def up_imports(graph: ImportGraph) -> list[str]:
    """'path:line: importer (layer) imports target (layer)' for each import up a layer."""
    found = []
    for edge in graph.edges:
        if not edge.named:
            continue
        # ``import lfi_gym`` loads only envs; its lazy attribute lfi_gym.register_agent
        # (a deferred import, in the module's __getattr__) may reach its own layer.
        eager_root = edge.importer == "lfi_gym" and not edge.deferred
        ceiling = LAYERS[0] if eager_root else layer_of(edge.importer)
        target_layer = layer_of(edge.target)
        if _rank(target_layer) > _rank(ceiling):
            why = " (lfi_gym/__init__ may import only lfi_gym.envs)" * (edge.importer == "lfi_gym")
            found.append(
                f"{edge.where()}: {edge.importer} ({layer_of(edge.importer)}) imports "
                f"{edge.target} ({target_layer}){why}"
            )
    return found


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_cycle_through(start: str, graph: dict[str, set[str]], members: set[str]) -> list:
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph.get(node, ())):
            if succ not in members:
                continue
            if succ == start:
                cycle = [node]
                while cycle[-1] != start:
                    cycle.append(previous[cycle[-1]])
                return cycle[::-1]
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def _successors(graph: ImportGraph) -> dict[str, set[str]]:
    successors: dict[str, set[str]] = {}
    for edge in graph.edges:
        successors.setdefault(edge.importer, set()).add(edge.target)
    return successors


def cycle_groups(graph: ImportGraph) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""
    return [c for c in _strongly_connected(_successors(graph)) if len(c) > 1]


def import_cycles(graph: ImportGraph) -> list[list[str]]:
    """The shortest cycle through each module that is on one, each rotated to start at its
    smallest name, without repeats, sorted. A cycle [a, b] means a imports b imports a."""
    successors = _successors(graph)
    cycles = set()
    for component in cycle_groups(graph):
        for module in component:
            cycle = _shortest_cycle_through(module, successors, set(component))
            smallest = cycle.index(min(cycle))
            cycles.add(tuple(cycle[smallest:] + cycle[:smallest]))
    return [list(cycle) for cycle in sorted(cycles, key=lambda c: (len(c), c))]


def describe_cycle(cycle: list[str], graph: ImportGraph) -> str:
    """'a -> b (where) -> a (where)', naming the first statement behind each edge."""
    first: dict[tuple[str, str], Edge] = {}
    for edge in sorted(graph.edges, key=lambda e: (e.deferred, not e.named, e.path, e.line)):
        first.setdefault((edge.importer, edge.target), edge)
    steps = [cycle[0]]
    for importer, target in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        steps.append(f"{target} [{first[importer, target].where()}]")
    return " -> ".join(steps)


# -- the repository ------------------------------------------------------------------------


@functools.cache
def _repo_graph() -> ImportGraph:
    graph = build_graph(REPO)
    # the walk found the four packages (guards against a rename that would empty the graph)
    assert set(PACKAGE_DIRS) <= set(graph.modules), sorted(graph.modules)
    return graph


def test_imports_point_down_the_layers() -> None:
    violations = up_imports(_repo_graph())
    assert not violations, "imports up a layer (envs < wrappers < agents < root):\n" + "\n".join(
        violations
    )


def test_modules_of_ours_import_no_cycle() -> None:
    graph = _repo_graph()
    cycles = import_cycles(graph)
    groups = "\n".join(f"  {len(g)} modules: {', '.join(g)}" for g in cycle_groups(graph))
    shortest = "\n".join(f"  {describe_cycle(cycle, graph)}" for cycle in cycles)
    assert not cycles, (
        f"modules that import each other, directly or through others:\n{groups}\n"
        f"the shortest cycle through each of them ({len(cycles)}):\n{shortest}"
    )


def test_every_lfi_gym_name_imported_is_a_module_of_ours() -> None:
    # an import or entry point naming no module would be a missing edge (and a broken import)
    assert _repo_graph().unresolved == []


def pre_package_imports(root: Path) -> list[str]:
    """Imports, anywhere in the repository's Python files, of the old top-level names
    ``envs``, ``agents`` or ``wrappers``: they resolve only from the repository root (its
    folders) or to another distribution's package, never to lfi-gym's installed modules."""
    found = []
    paths = [path for folder in CODE_FOLDERS for path in sorted((root / folder).rglob("*.py"))]
    for path in paths:
        relative = path.relative_to(root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [
                f"{relative}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] in PRE_PACKAGE_NAMES
            ]
    return found


PRE_PACKAGE_NAMES = {"envs", "agents", "wrappers"}
#: The repository's folders of Python code (a virtual environment inside it is not ours).
CODE_FOLDERS = ("envs", "agents", "wrappers", "lfi_gym", "tests", "examples", "benchmarks")


def test_nothing_imports_the_pre_package_names() -> None:
    found = pre_package_imports(REPO)
    assert not found, "import lfi_gym.envs / .agents / .wrappers instead:\n" + "\n".join(found)


def test_pre_package_imports_are_found(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "mod.py").write_text(
        "import numpy\nfrom lfi_gym.envs import core\n\n"
        "def f():\n    import agents.bc\n    from wrappers import restart\n"
    )
    assert pre_package_imports(tmp_path) == [
        "examples/mod.py:5: agents.bc",
        "examples/mod.py:6: wrappers",
    ]


# -- self-tests of the walker on synthetic trees ---------------------------------------------


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for folder in PACKAGE_DIRS.values():
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "__init__.py").touch()
    return root


def test_walker_reads_every_kind_of_import(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {
            "lfi_gym/__init__.py": "from lfi_gym import envs\n",
            "lfi_gym/cli.py": """\
                from lfi_gym import __version__, agents
                import lfi_gym.envs.core as core

                def main():
                    import importlib
                    return importlib.import_module("lfi_gym.wrappers.restart")
            """,
            "envs/__init__.py": 'ENTRY = f"lfi_gym.envs.pkg.mod:{name}"\n',
            "envs/core.py": "import json\n",
            "envs/pkg/__init__.py": "from .mod import Env\nfrom . import other\n",
            "envs/pkg/mod.py": "from ..core import x\nfrom lfi_gym.envs.pkg.other import *\n",
            "envs/pkg/other.py": "",
            "wrappers/restart.py": "",
            "agents/bc.py": 'CLASSES = {"LM": "lfi_gym.agents.lm:LMPolicy"}\n',
            "agents/lm.py": "",
        },
    )
    graph = build_graph(root)
    edges = {(e.importer, e.target, e.line, e.kind, e.deferred, e.named) for e in graph.edges}
    assert edges == {
        ("lfi_gym", "lfi_gym.envs", 1, "import", False, True),
        ("lfi_gym.cli", "lfi_gym", 1, "import", False, True),  # reads __version__
        ("lfi_gym.cli", "lfi_gym.agents", 1, "import", False, True),
        ("lfi_gym.cli", "lfi_gym.envs", 2, "import", False, False),  # run on the way
        ("lfi_gym.cli", "lfi_gym.envs.core", 2, "import", False, True),
        ("lfi_gym.cli", "lfi_gym.wrappers", 6, "import_module", True, False),
        ("lfi_gym.cli", "lfi_gym.wrappers.restart", 6, "import_module", True, True),
        ("lfi_gym.envs", "lfi_gym.envs.pkg", 1, "entry point", True, False),
        ("lfi_gym.envs", "lfi_gym.envs.pkg.mod", 1, "entry point", True, True),
        ("lfi_gym.envs.pkg", "lfi_gym.envs.pkg.mod", 1, "import", False, True),
        ("lfi_gym.envs.pkg", "lfi_gym.envs.pkg.other", 2, "import", False, True),
        ("lfi_gym.envs.pkg.mod", "lfi_gym.envs.core", 1, "import", False, True),
        ("lfi_gym.envs.pkg.mod", "lfi_gym.envs.pkg.other", 2, "import", False, True),
        ("lfi_gym.agents.bc", "lfi_gym.agents.lm", 1, "entry point", True, True),
    }
    assert graph.unresolved == []
    assert up_imports(graph) == []
    # the package runs mod and mod imports a sibling through the package: no cycle (rule 2)
    assert import_cycles(graph) == []


def test_walker_fails_an_injected_up_import(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {
            "lfi_gym/__init__.py": "from lfi_gym import envs\nfrom lfi_gym import wrappers\n",
            "envs/oracles.py": """\
                import numpy as np

                def make_expert():
                    from lfi_gym.agents.policies import OraclePolicy
                    return OraclePolicy
            """,
            "envs/core.py": 'WRAPPER = "lfi_gym.wrappers.restart:Restart"\n',
            "wrappers/restart.py": "from lfi_gym.envs import core\n",
            "agents/policies.py": "from lfi_gym.wrappers import restart\n",
        },
    )
    assert up_imports(build_graph(root)) == [
        "envs/core.py:1 (entry point, deferred): lfi_gym.envs.core (lfi_gym.envs) imports "
        "lfi_gym.wrappers.restart (lfi_gym.wrappers)",
        "envs/oracles.py:4 (import, deferred): lfi_gym.envs.oracles (lfi_gym.envs) imports "
        "lfi_gym.agents.policies (lfi_gym.agents)",
        "lfi_gym/__init__.py:2 (import): lfi_gym (lfi_gym (root modules)) imports "
        "lfi_gym.wrappers (lfi_gym.wrappers) (lfi_gym/__init__ may import only lfi_gym.envs)",
    ]


def test_walker_fails_an_injected_cycle(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {
            # agents: policies <-> lm through a deferred import_module
            "agents/policies.py": """\
                import importlib

                def load():
                    return importlib.import_module("lfi_gym.agents.lm")
            """,
            "agents/lm.py": "from . import policies\n",
            # envs: a module reads a name from its own package, whose __init__ imports it
            "envs/pkg/__init__.py": "from lfi_gym.envs.pkg.mod import Env\nNAME = 'pkg'\n",
            "envs/pkg/mod.py": "from lfi_gym.envs.pkg import NAME\n",
            # three modules in a ring, at import time
            "wrappers/a.py": "import lfi_gym.wrappers.b\n",
            "wrappers/b.py": "from lfi_gym.wrappers.c import x\n",
            "wrappers/c.py": "from lfi_gym.wrappers import a\n",
        },
    )
    graph = build_graph(root)
    cycles = import_cycles(graph)
    assert cycles == [
        ["lfi_gym.agents.lm", "lfi_gym.agents.policies"],
        ["lfi_gym.envs.pkg", "lfi_gym.envs.pkg.mod"],
        ["lfi_gym.wrappers.a", "lfi_gym.wrappers.b", "lfi_gym.wrappers.c"],
    ]
    assert describe_cycle(cycles[0], graph) == (
        "lfi_gym.agents.lm -> lfi_gym.agents.policies [agents/lm.py:1 (import)] -> "
        "lfi_gym.agents.lm [agents/policies.py:4 (import_module, deferred)]"
    )
    assert up_imports(graph) == []


def test_walker_reports_names_that_are_no_module(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {"envs/core.py": 'import lfi_gym.envs.missing\nENTRY = "lfi_gym.envs.gone:Env"\n'},
    )
    assert build_graph(root).unresolved == [
        "envs/core.py:1: lfi_gym.envs.missing",
        "envs/core.py:2: lfi_gym.envs.gone",
    ]
