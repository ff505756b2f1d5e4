"""Agents by name: the built-in ones, those registered at run time, and installed plug-ins.

``lfi-gym compare --agents`` takes three kinds of names:

- a built-in agent's short name (``bc``, ``dagger``, ``ppo++``, ...: :data:`lfi_gym.agents.AGENTS`);
- a name given to :func:`register_agent`, or declared by an installed package as an entry
  point in the group ``lfi_gym.agents`` (``[project.entry-points."lfi_gym.agents"]``,
  ``myagent = "my_package.agents:MyAgent"``);
- an import path ``package.module:Class``, resolved as ``python -m`` would (the current
  directory first). Its name in results is the class name in lower case.

Results and agent files name agents by these names only; loading them never imports by
name (the safe-files rule): only running an agent does.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lfi_gym.agents import BaseAgent

ENTRY_POINT_GROUP = "lfi_gym.agents"

#: Agents registered with :func:`register_agent` in this process.
_REGISTERED: dict[str, type[BaseAgent]] = {}


def register_agent(name: str, cls: type[BaseAgent], *, overwrite: bool = False) -> None:
    """Make ``cls`` available to ``lfi-gym compare`` (and :func:`agent_class`) as ``name``.

    ``cls`` subclasses :class:`lfi_gym.agents.BaseAgent` (see docs/writing-agents.md).
    A name already taken (a built-in, an entry point or an earlier registration) is refused
    unless ``overwrite=True``; built-in names are never replaced.
    """
    from lfi_gym.agents import AGENTS, BaseAgent

    if not isinstance(name, str) or not name or ":" in name or "," in name or name != name.strip():
        raise ValueError(
            f"an agent name is a non-empty string without ':', ',' or surrounding spaces, "
            f"got {name!r}"
        )
    if not (inspect.isclass(cls) and issubclass(cls, BaseAgent)):
        raise TypeError(
            f"register_agent({name!r}, ...) needs a subclass of lfi_gym.agents.BaseAgent, got "
            f"{cls!r} (see docs/writing-agents.md)"
        )
    key = name.lower()
    if key in AGENTS:
        raise ValueError(f"{name!r} is a built-in agent; register yours under another name")
    if not overwrite and key in _REGISTERED and _REGISTERED[key] is not cls:
        raise ValueError(
            f"agent {name!r} is already registered ({_REGISTERED[key].__qualname__}); pass "
            "overwrite=True to replace it"
        )
    _REGISTERED[key] = cls


def _plugins() -> dict[str, Any]:
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def agent_names() -> list[str]:
    """Every agent name known now: built-ins, registrations, then installed plug-ins."""
    from lfi_gym.agents import AGENTS

    names = list(AGENTS) + [n for n in _REGISTERED if n not in AGENTS]
    return names + [n for n in _plugins() if n not in names]


def is_import_path(spec: str) -> bool:
    """Whether an agent spec is ``module:Class`` rather than a name."""
    return ":" in spec


def resolve_agent(spec: str) -> tuple[str, type[BaseAgent]]:
    """``(name, class)`` for a built-in or registered name, a plug-in or ``module:Class``.

    Raises ValueError listing the known names (and how to add one) for an unknown name,
    and ImportError / TypeError for an import path that does not give a BaseAgent subclass.
    """
    from lfi_gym.agents import AGENTS, BaseAgent

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"an agent is a name or 'module:Class', got {spec!r}")
    spec = spec.strip()
    if is_import_path(spec):
        from lfi_gym.executors import import_path

        cls = import_path(spec)
        name = getattr(cls, "__name__", spec).lower()
    else:
        name = spec.lower()
        if name in AGENTS:
            return name, AGENTS[name]
        if name in _REGISTERED:
            return name, _REGISTERED[name]
        plugins = _plugins()
        if name not in plugins:
            raise ValueError(
                f"unknown agent {spec!r}; known agents: {', '.join(agent_names())}. Add yours "
                "with lfi_gym.register_agent(name, cls), an entry point in the group "
                f"{ENTRY_POINT_GROUP!r}, or give it as module:Class"
            )
        cls = plugins[name].load()
    if not (inspect.isclass(cls) and issubclass(cls, BaseAgent)):
        raise TypeError(
            f"agent {spec!r} is {cls!r}, not a subclass of lfi_gym.agents.BaseAgent (see "
            "docs/writing-agents.md)"
        )
    if is_import_path(spec) and name in AGENTS and AGENTS[name] is not cls:
        raise ValueError(
            f"{spec!r} is named {name!r} in results, which is a built-in agent's name; rename "
            "the class or register it under another name with lfi_gym.register_agent"
        )
    return name, cls
