"""lfi_gym.envs.validation: what each check accepts, what it returns and how it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfi_gym.envs.text.rewards import RewardError
from lfi_gym.envs.validation import (
    check_choice,
    check_int_at_least,
    check_non_negative_float,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_unit_interval,
    is_int,
)


def test_is_int_takes_python_and_numpy_ints_but_not_bools() -> None:
    assert is_int(3) and is_int(np.int64(3)) and is_int(np.uint8(0))
    assert not any(is_int(v) for v in (True, False, 3.0, "3", None))


@pytest.mark.parametrize("value", [1, 7, np.int32(4)])
def test_positive_int_returns_a_python_int(value) -> None:
    out = check_positive_int(value, "n")
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, -2, 2.0, True, "3", None])
def test_positive_int_refuses_naming_argument_and_value(value) -> None:
    with pytest.raises(ValueError, match=rf"^n_steps must be a positive int, got {value!r}$"):
        check_positive_int(value, "n_steps")


def test_non_negative_int_accepts_zero_and_refuses_negatives() -> None:
    assert check_non_negative_int(0, "noop_max") == 0
    with pytest.raises(ValueError, match="noop_max must be a non-negative int, got -1"):
        check_non_negative_int(-1, "noop_max")


def test_int_at_least_uses_the_minimum_and_the_given_error_type() -> None:
    assert check_int_at_least(2, 2, "max_length") == 2
    with pytest.raises(ValueError, match=r"max_length must be an int >= 2, got 1"):
        check_int_at_least(1, 2, "max_length")
    with pytest.raises(RewardError, match=r"cider-d: n must be an int >= 1, got 0"):
        check_int_at_least(0, 1, "cider-d: n", error=RewardError)


def test_positive_float_converts_and_refuses_zero_infinity_nan_and_text() -> None:
    assert check_positive_float("0.5", "lr") == 0.5 and check_positive_float(3, "lr") == 3.0
    for bad in (0, -1e-9, math.inf, math.nan, "fast", None):
        with pytest.raises(ValueError, match="lr must be a positive number"):
            check_positive_float(bad, "lr")


def test_non_negative_float_accepts_zero_only_at_the_boundary() -> None:
    assert check_non_negative_float(0, "ent_coef") == 0.0
    for bad in (-0.1, math.inf, math.nan, []):
        with pytest.raises(ValueError, match="ent_coef must be a non-negative number"):
            check_non_negative_float(bad, "ent_coef")


def test_probability_and_unit_interval_share_bounds_but_not_wording() -> None:
    assert check_probability(0, "beta") == 0.0 and check_probability(1, "beta") == 1.0
    assert check_unit_interval(0.99, "gamma") == 0.99
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match=r"beta must be a probability in \[0, 1\]"):
            check_probability(bad, "beta")
        with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
            check_unit_interval(bad, "gamma")
    with pytest.raises(ValueError, match=r"gamma must be a number in \[0, 1\], got 'high'"):
        check_unit_interval("high", "gamma")


def test_choice_returns_the_value_and_lists_the_choices() -> None:
    assert check_choice(None, (None, "query"), "normalize") is None
    with pytest.raises(ValueError, match=r"^cost must be one of 'probability', 'logit', got 'x'$"):
        check_choice("x", ("probability", "logit"), "cost")
