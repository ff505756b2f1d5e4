"""Argument checks shared by the envs and the agents, each with one wording of its error.

Every check returns the value converted (``int`` / ``float``) or raises ``error``
(ValueError by default; the text rewards pass their RewardError) with a message that
names the argument and shows the bad value. It lives with the envs, the bottom layer,
because the envs validate their arguments too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class UnsupportedRenderModeError(ValueError, TypeError):
    """A ``render_mode`` the env's ``metadata["render_modes"]`` does not list.

    A TypeError too: Gymnasium envs that cannot render take no ``render_mode`` argument and
    so raise a TypeError for it, and SB3's ``make_vec_env`` (which asks every env id for
    ``render_mode="rgb_array"``) builds the env without one on a TypeError.
    """


def check_render_mode(render_mode: str | None, render_modes: Sequence[str], env: str) -> None:
    """Refuse a ``render_mode`` that is neither None nor one of ``render_modes``."""
    if render_mode is not None and render_mode not in render_modes:
        supported = ", ".join(map(repr, render_modes)) or "none"
        raise UnsupportedRenderModeError(
            f"{env} does not support render_mode={render_mode!r}; supported modes: "
            f"{supported} (or None)"
        )


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy integer (``True`` / ``False`` are not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(value: Any, name: str, *, error: type[Exception] = ValueError) -> int:
    """``value`` as an int >= 1; a float, a bool or a string is refused."""
    if not is_int(value) or value <= 0:
        raise error(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_non_negative_int(value: Any, name: str, *, error: type[Exception] = ValueError) -> int:
    """``value`` as an int >= 0; a float, a bool or a string is refused."""
    if not is_int(value) or value < 0:
        raise error(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def check_int_at_least(
    value: Any, minimum: int, name: str, *, error: type[Exception] = ValueError
) -> int:
    """``value`` as an int >= ``minimum`` (e.g. a context length of at least 2 tokens)."""
    if not is_int(value) or value < minimum:
        raise error(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value: Any, name: str, *, error: type[Exception] = ValueError) -> float:
    """``value`` as a finite float > 0."""
    number = _as_float(value)
    if number is None or not number > 0 or not np.isfinite(number):
        raise error(f"{name} must be a positive number, got {value!r}")
    return number


def check_non_negative_float(
    value: Any, name: str, *, error: type[Exception] = ValueError
) -> float:
    """``value`` as a finite float >= 0."""
    number = _as_float(value)
    if number is None or not number >= 0 or not np.isfinite(number):
        raise error(f"{name} must be a non-negative number, got {value!r}")
    return number


def check_probability(value: Any, name: str, *, error: type[Exception] = ValueError) -> float:
    """``value`` as a float in [0, 1], for an argument that is a probability."""
    number = _as_float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise error(f"{name} must be a probability in [0, 1], got {value!r}")
    return number


def check_unit_interval(value: Any, name: str, *, error: type[Exception] = ValueError) -> float:
    """``value`` as a float in [0, 1], for a weight that is not a probability (e.g. a
    discount factor)."""
    number = _as_float(value)
    if number is None:
        raise error(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= number <= 1.0:
        raise error(f"{name} must be in [0, 1], got {value!r}")
    return number


def check_choice(
    value: T, choices: Sequence[Any], name: str, *, error: type[Exception] = ValueError
) -> T:
    """``value`` unchanged if it is one of ``choices``."""
    if value not in choices:
        raise error(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
