"""lfi_gym.stats against hand-computed values (Agarwal et al. 2021's aggregate metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from lfi_gym import stats

# Large enough that a quantile's empirical position is far (many standard errors) from a
# step of the hand-computed bootstrap distribution.
MANY = 20_000


# -- normalize ----------------------------------------------------------------------------


def test_normalize_per_task_pairs_by_hand() -> None:
    scores = np.array([[10.0, -5.0], [30.0, 0.0]])
    # task 0: (10 - 10) / (50 - 10) = 0, (30 - 10) / 40 = 0.5
    # task 1: (-5 - -10) / (10 - -10) = 0.25, (0 + 10) / 20 = 0.5
    out = stats.normalize(scores, low=[10.0, -10.0], high=[50.0, 10.0])
    np.testing.assert_array_equal(out, [[0.0, 0.25], [0.5, 0.5]])
    # scalars: (4 - 2) / (6 - 2) = 0.5
    assert stats.normalize(4.0, 2.0, 6.0) == 0.5


def test_normalize_rejects_equal_pair_and_non_finite() -> None:
    with pytest.raises(ValueError, match="declare another normalisation pair"):
        stats.normalize([[1.0, 2.0]], low=[0.0, 3.0], high=[1.0, 3.0])
    with pytest.raises(ValueError, match="scores has 1 non-finite"):
        stats.normalize([1.0, np.nan], 0.0, 1.0)
    with pytest.raises(ValueError, match="high has 1 non-finite"):
        stats.normalize([1.0, 2.0], 0.0, np.inf)
    with pytest.raises(ValueError, match="do not broadcast"):
        stats.normalize(np.zeros((3, 2)), low=np.zeros(3), high=np.ones(3))


# -- iqm ----------------------------------------------------------------------------------


def test_iqm_n_divisible_by_four_by_hand() -> None:
    # 8 values: cut 8 // 4 = 2 from each end -> mean(3, 4, 5, 6) = 18 / 4 = 4.5
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    # the same 8 values as (runs, tasks): IQM is over all entries
    assert stats.iqm(np.arange(1, 9).reshape(4, 2)) == 4.5


def test_iqm_n_not_divisible_by_four_by_hand() -> None:
    # 6 values: cut int(0.25 * 6) = 1 from each end -> mean(1, 2, 4, 8) = 15 / 4 = 3.75
    # (a fractional-weight IQM would give (0.5*1 + 2 + 4 + 0.5*8) / 3 = 3.5)
    assert stats.iqm([100, 8, 0, 4, 2, 1]) == 3.75
    # 5 values: cut 1 -> mean(1, 2, 10) = 13 / 3
    assert stats.iqm([0, 10, 1, 100, 2]) == pytest.approx(13 / 3, abs=1e-15)
    # 3 values: cut 0 -> the plain mean (1 + 2 + 9) / 3 = 4
    assert stats.iqm([9, 1, 2]) == 4.0


def test_iqm_matches_scipy_trim_mean() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in range(1, 14):
        values = rng.normal(size=n) ** 3
        assert stats.iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25))
    grid = rng.normal(size=(3, 10))
    assert stats.iqm(grid) == pytest.approx(scipy_stats.trim_mean(grid, 0.25, axis=None))


def test_iqm_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="empty"):
        stats.iqm([])
    with pytest.raises(ValueError, match="non-finite"):
        stats.iqm([1.0, np.nan])


# -- bootstrap_ci -------------------------------------------------------------------------


def test_bootstrap_ci_two_values_by_hand() -> None:
    # A resample of [0, 1] has mean 0, 0.5, 1 with probability 1/4, 1/2, 1/4.
    # 95%: the 2.5% and 97.5% quantiles fall in the 0 and 1 steps -> (0, 1).
    assert stats.bootstrap_ci([0.0, 1.0], n_resamples=MANY) == (0.0, 1.0)
    # 40%: the 30% and 70% quantiles both fall in the 0.5 step (cdf 0.25 to 0.75).
    assert stats.bootstrap_ci([0.0, 1.0], confidence=0.4, n_resamples=MANY) == (0.5, 0.5)


def test_bootstrap_ci_contains_the_mean_and_is_seeded() -> None:
    values = np.random.default_rng(3).normal(loc=5.0, size=10)
    low, high = stats.bootstrap_ci(values)
    assert low < values.mean() < high
    # about the normal-theory width 2 * 1.96 * std / sqrt(n) (2.05 here)
    normal_width = 2 * 1.96 * values.std() / np.sqrt(len(values))
    assert 0.8 * normal_width < high - low < 1.2 * normal_width
    assert stats.bootstrap_ci(values, seed=7) == stats.bootstrap_ci(values, seed=7)
    assert stats.bootstrap_ci(values, seed=7) != stats.bootstrap_ci(values, seed=8)


def test_bootstrap_ci_degenerate_inputs() -> None:
    assert stats.bootstrap_ci([2.5]) == (2.5, 2.5)
    assert stats.bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0)
    with pytest.raises(ValueError, match="empty"):
        stats.bootstrap_ci([])
    with pytest.raises(ValueError, match="1-D"):
        stats.bootstrap_ci([[1.0, 2.0]])
    with pytest.raises(ValueError, match="non-finite"):
        stats.bootstrap_ci([1.0, np.inf])
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        stats.bootstrap_ci([1.0, 2.0], n_resamples=0)


def test_bootstrap_ci_other_statistics() -> None:
    # The median of a resample of [0, 10, 20] (3 draws) is 0 with probability
    # P(at least two 0s) = 3 * (1/3)^2 * (2/3) + (1/3)^3 = 7/27 ~ 0.26; the same for 20.
    # 40%: the 30% and 70% quantiles both fall in the 10 step -> (10, 10).
    values = [0.0, 10.0, 20.0]
    assert stats.bootstrap_ci(values, statistic=np.median, confidence=0.4, n_resamples=MANY) == (
        10.0,
        10.0,
    )
    # a statistic without a vectorised path: applied to each resample
    low, high = stats.bootstrap_ci(values, statistic=lambda v: float(np.max(v)))
    # max of 3 draws is 0 with probability 1/27 ~ 3.7% > 2.5% -> the lower bound is 0
    assert (low, high) == (0.0, 20.0)


# -- stratified_bootstrap_ci --------------------------------------------------------------


def test_stratified_bootstrap_two_by_two_by_hand() -> None:
    # Two runs x two tasks, each task's runs are 0 and 1. Stratified: each task's
    # resampled mean is 0, 0.5, 1 w.p. 1/4, 1/2, 1/4 independently, so the overall mean is
    # 0, .25, .5, .75, 1 w.p. 1/16, 4/16, 6/16, 4/16, 1/16. 80%: the 10% quantile is in the
    # 0.25 step (cdf 1/16 to 5/16), the 90% quantile in the 0.75 step (11/16 to 15/16).
    # (Resampling whole runs across tasks gives 0, .5, 1 w.p. 1/4, 1/2, 1/4 -> (0, 1).)
    scores = np.array([[0.0, 0.0], [1.0, 1.0]])
    ci = stats.stratified_bootstrap_ci(scores, np.mean, confidence=0.8, n_resamples=MANY)
    assert ci == (0.25, 0.75)


def test_stratified_bootstrap_resamples_runs_within_each_task() -> None:
    # Tasks on very different scales; run i of task 1 is 1000 * (run i of task 0 + 1).
    scores = np.array([[0.0, 1000.0], [1.0, 2000.0], [2.0, 3000.0]])
    seen: list[np.ndarray] = []

    def record(resample: np.ndarray) -> float:
        seen.append(resample.copy())
        return float(resample.mean())

    stats.stratified_bootstrap_ci(scores, record, n_resamples=2_000)
    assert len(seen) == 2_000
    stack = np.stack(seen)
    assert stack.shape == (2_000, 3, 2)
    # each task keeps exactly its 3 runs' values: a pooled resample would mix the scales
    assert np.isin(stack[:, :, 0], scores[:, 0]).all()
    assert np.isin(stack[:, :, 1], scores[:, 1]).all()
    # with replacement: all 3 runs distinct w.p. 3!/3^3 = 2/9 ~ 0.22
    distinct = np.mean([len(set(r[:, 0])) == 3 for r in stack])
    assert 0.15 < distinct < 0.30
    # independently per task: the same run drawn in both tasks at all 3 positions has
    # probability (1/3)^3 = 1/27 ~ 0.037 (resampling whole runs would make it 1)
    same_runs = np.mean((stack[:, :, 1] == 1000 * (stack[:, :, 0] + 1)).all(axis=1))
    assert same_runs < 0.08


def test_stratified_bootstrap_vectorised_statistics_match_per_resample() -> None:
    scores = np.random.default_rng(1).normal(size=(5, 7))
    for statistic in (stats.iqm, np.mean, np.median):
        fast = stats.stratified_bootstrap_ci(scores, statistic, seed=4)
        slow = stats.stratified_bootstrap_ci(scores, lambda s, f=statistic: f(s), seed=4)
        np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_stratified_bootstrap_properties() -> None:
    scores = np.random.default_rng(2).uniform(size=(10, 8))
    low, high = stats.stratified_bootstrap_ci(scores)
    assert low < stats.iqm(scores) < high
    assert stats.stratified_bootstrap_ci(scores, seed=5) == stats.stratified_bootstrap_ci(
        scores, seed=5
    )
    # one run per task: every resample is the data itself
    one_run = scores[:1]
    assert stats.stratified_bootstrap_ci(one_run) == (stats.iqm(one_run),) * 2


def test_stratified_bootstrap_rejects_bad_scores() -> None:
    with pytest.raises(ValueError, match=r"2-D array \(n_runs, n_tasks\)"):
        stats.stratified_bootstrap_ci([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"non-finite values.*index \(1, 0\)"):
        stats.stratified_bootstrap_ci([[1.0, 2.0], [np.nan, 3.0]])
    with pytest.raises(ValueError, match="empty"):
        stats.stratified_bootstrap_ci(np.zeros((0, 3)))


# -- aggregate ----------------------------------------------------------------------------


def test_aggregate_by_hand() -> None:
    scores = np.array([[0.0, 4.0, 1.0], [2.0, 10.0, 1.0]])
    result = stats.aggregate(scores, seed=3)
    # all 6 sorted: 0 1 1 2 4 10; IQM cuts 1 each end -> (1 + 1 + 2 + 4) / 4 = 2
    assert result["iqm"] == 2.0
    # mean of all: 18 / 6 = 3
    assert result["mean"] == 3.0
    # task means 1, 7, 1 -> median 1
    assert result["median"] == 1.0
    # the same resamples as stratified_bootstrap_ci with that seed
    assert result["iqm_ci"] == stats.stratified_bootstrap_ci(scores, stats.iqm, seed=3)
    assert result["mean_ci"] == stats.stratified_bootstrap_ci(scores, np.mean, seed=3)
    task_median = stats.stratified_bootstrap_ci(scores, lambda s: np.median(s.mean(axis=0)), seed=3)
    assert result["median_ci"] == task_median
    for name in ("iqm", "mean", "median"):
        low, high = result[f"{name}_ci"]
        assert isinstance(low, float) and low <= high


# -- performance profile ------------------------------------------------------------------


def test_performance_profile_by_hand_strictly_greater() -> None:
    scores = np.array([[0.0, 0.5], [1.0, 0.5]])
    # > -1: all 4; > 0: 0.5, 1, 0.5 -> 3/4; > 0.5: only 1 -> 1/4; > 1: none
    profile = stats.performance_profile(scores, [-1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(profile, [1.0, 0.75, 0.25, 0.0])
    with pytest.raises(ValueError, match="taus"):
        stats.performance_profile(scores, [[0.0, 1.0]])


def test_performance_profile_ci_by_hand() -> None:
    scores = np.array([[0.0], [1.0]])
    # fraction of a 2-run resample above 0.5: 0, 0.5, 1 w.p. 1/4, 1/2, 1/4
    low, high = stats.performance_profile_ci(scores, [0.5], n_resamples=MANY)
    assert (low.tolist(), high.tolist()) == ([0.0], [1.0])
    low, high = stats.performance_profile_ci(scores, [0.5], confidence=0.4, n_resamples=MANY)
    assert (low.tolist(), high.tolist()) == ([0.5], [0.5])


def test_performance_profile_ci_band_properties() -> None:
    scores = np.random.default_rng(6).uniform(size=(5, 10))
    taus = np.linspace(0.0, 1.0, 21)
    profile = stats.performance_profile(scores, taus)
    low, high = stats.performance_profile_ci(scores, taus)
    assert low.shape == high.shape == taus.shape
    assert (low <= profile).all() and (profile <= high).all()
    assert (high[:-1] >= high[1:]).all()  # a profile never rises with tau
    # one run per task: a zero-width band at the profile
    low, high = stats.performance_profile_ci(scores[:1], taus)
    profile = stats.performance_profile(scores[:1], taus)
    np.testing.assert_array_equal(low, profile)
    np.testing.assert_array_equal(high, profile)


# -- probability of improvement -----------------------------------------------------------


def test_probability_of_improvement_by_hand_with_ties() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 0.0], [3.0, 0.0]])
    # task 0 pairs: 1>2 no (0), 1>3 no (0), 3>2 yes (1), 3=3 tie (1/2) -> 1.5 / 4 = 0.375
    # task 1: 5 > 0 in all 4 pairs -> 1;  average (0.375 + 1) / 2 = 0.6875
    assert stats.probability_of_improvement(x, y) == 0.6875
    assert stats.probability_of_improvement(y, x) == 1 - 0.6875
    assert stats.probability_of_improvement(x, x) == 0.5
    assert stats.probability_of_improvement(x + 10, x) == 1.0
    assert stats.probability_of_improvement(x, x + 10) == 0.0


def test_probability_of_improvement_different_run_counts_by_hand() -> None:
    x = np.array([[1.0], [2.0], [3.0]])
    y = np.array([[2.0], [0.0]])
    # 1v2 0, 1v0 1, 2v2 1/2, 2v0 1, 3v2 1, 3v0 1 -> 4.5 / 6 = 0.75
    assert stats.probability_of_improvement(x, y) == 0.75
    with pytest.raises(ValueError, match="x has 1 tasks and y has 2"):
        stats.probability_of_improvement(x, np.zeros((2, 2)))


def test_probability_of_improvement_matches_mann_whitney_u() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, size=(5, 6)).astype(float)  # small integers: many ties
    y = rng.integers(0, 4, size=(4, 6)).astype(float)
    u = [scipy_stats.mannwhitneyu(x[:, t], y[:, t]).statistic / (5 * 4) for t in range(6)]
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(u))


def test_probability_of_improvement_ci_by_hand() -> None:
    x = np.array([[0.0], [1.0]])
    # against y = 0.5: P is the fraction of 1s in x's resample: 0, .5, 1 w.p. 1/4, 1/2, 1/4
    assert stats.probability_of_improvement_ci(x, [[0.5]], n_resamples=MANY) == (0.0, 1.0)
    # against y = 0 (ties count 1/2): x resampled {0,0} -> 0.5, {0,1} -> 0.75, {1,1} -> 1
    # w.p. 1/4, 1/2, 1/4; 40%: both quantiles in the 0.75 step; 95%: (0.5, 1)
    ci = stats.probability_of_improvement_ci(x, [[0.0]], confidence=0.4, n_resamples=MANY)
    assert ci == (0.75, 0.75)
    assert stats.probability_of_improvement_ci(x, [[0.0]], n_resamples=MANY) == (0.5, 1.0)


def test_probability_of_improvement_ci_resamples_x_and_y_independently() -> None:
    x = np.array([[0.0], [1.0]])
    # x against itself: with independent resamples, x all 1s and y all 0s (P = 1) has
    # probability 1/4 * 1/4 = 1/16 > 2.5%, and P = 0 likewise -> (0, 1). Drawing the same
    # runs for both would give P = 0.5 every time.
    assert stats.probability_of_improvement_ci(x, x, n_resamples=MANY) == (0.0, 1.0)
    scores = np.random.default_rng(9).uniform(size=(3, 10))
    low, high = stats.probability_of_improvement_ci(scores + 0.2, scores)
    assert low < stats.probability_of_improvement(scores + 0.2, scores) < high


# -- plot ---------------------------------------------------------------------------------


def test_plot_performance_profiles_writes_png(tmp_path) -> None:
    rng = np.random.default_rng(10)
    profiles = {"bc": rng.uniform(size=(3, 4)), "dagger": rng.uniform(0.5, 1.5, size=(3, 4))}
    path = stats.plot_performance_profiles(profiles, tmp_path / "sub" / "profiles.png")
    assert path == tmp_path / "sub" / "profiles.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["profiles.png"]
    titled = stats.plot_performance_profiles(
        profiles, tmp_path / "t.png", taus=np.linspace(0, 2, 11), title="mine"
    )
    assert titled.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_performance_profiles_bad_path_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "a_directory"
    target.mkdir()
    with pytest.raises(OSError):
        stats.plot_performance_profiles({"bc": np.ones((2, 2))}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["a_directory"]
    assert list(target.iterdir()) == []


def test_plot_performance_profiles_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="profiles is empty"):
        stats.plot_performance_profiles({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"profiles\['bc'\] has 1 non-finite"):
        stats.plot_performance_profiles({"bc": [[1.0, np.nan]]}, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
