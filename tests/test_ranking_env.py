"""Rank-* envs: NDCG, the LETOR loader, masks and invalid actions, the oracle, restarts."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score

from lfi_gym import envs
from lfi_gym.envs.ranking import (
    RankingEnv,
    load_letor,
    ndcg_at_k,
    ndcg_from_scores,
    synthetic_splits,
)
from lfi_gym.envs.ranking.metrics import dcg_at_k

SMALL = {"n_queries": (20, 5, 5), "max_candidates": 8, "min_candidates": 2, "n_features": 4}
SMALL_K = {**SMALL, "k_positions": 5}


# -- NDCG -------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 4), st.floats(-5, 5, allow_nan=False)), min_size=2, max_size=25
    ),
    k=st.integers(1, 12),
)
def test_ndcg_matches_sklearn_with_exponential_gains(data, k) -> None:
    relevance = np.array([r for r, _ in data])
    scores = np.array([s for _, s in data])
    if relevance.max() == 0 or len(np.unique(scores)) < len(scores):
        return  # sklearn averages tied scores; zero-relevance queries are checked below
    expected = ndcg_score([2.0**relevance - 1], [scores], k=k)
    assert ndcg_from_scores(scores, relevance, k) == pytest.approx(expected, abs=1e-9)


def test_ndcg_of_a_query_without_relevant_documents_is_zero() -> None:
    assert ndcg_at_k([1, 0, 2], [0, 0, 0], 10) == 0.0
    assert ndcg_at_k([0, 1], [3, 0], 1) == 1.0 and ndcg_at_k([1, 0], [3, 0], 1) == 0.0
    assert dcg_at_k([3, 1], 2) == pytest.approx(7 + 1 / np.log2(3))
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k([0], [1], 0)


# -- LETOR loader -------------------------------------------------------------------------------

# qid 7 appears, then 3, then 7 again (unsorted, interleaved); feature ids skip (missing =
# 0); comments after '#'; qid 5 has a single document; qid 3 has only irrelevant ones.
TRAIN = """# a header comment
2 qid:7 1:0.5 3:1.5 # doc A
0 qid:3 2:1.0
0 qid:3 1:2.0 4:1.0
1 qid:7 2:3.0 4:2.0
4 qid:5 1:1.0 2:1.0 3:1.0 4:1.0 # lone document
0 qid:7 3:-1.0
"""
TEST = """1 qid:1 1:1.0 4:4.0
0 qid:1 2:2.0
"""


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_letor_loader_groups_queries_and_reads_sparse_features(tmp_path: Path) -> None:
    root = _write(tmp_path / "fold", **{"train.txt": TRAIN, "vali.txt": TEST, "test.txt": TEST})
    splits = load_letor(root)
    train = splits["train"]
    assert list(train.qids) == [7, 3, 5]  # order of first appearance
    assert list(train.sizes) == [3, 2, 1]
    features, relevance = train.query(0)  # qid 7, file order kept
    assert list(relevance) == [2, 1, 0]
    np.testing.assert_array_equal(features[0], [0.5, 0.0, 1.5, 0.0])
    np.testing.assert_array_equal(features[1], [0.0, 3.0, 0.0, 2.0])
    assert list(train.query(1)[1]) == [0, 0]
    assert train.n_features == 4 and splits["test"].n_queries == 1

    normalized = load_letor(root, normalize="query")["train"]
    block = normalized.query(0)[0]
    assert block.min() == 0.0 and block.max() == 1.0
    np.testing.assert_array_equal(normalized.query(2)[0], np.zeros((1, 4)))  # constant -> 0


def test_letor_env_serves_single_document_and_irrelevant_queries(tmp_path: Path) -> None:
    root = _write(tmp_path, **{"train.txt": TRAIN, "test.txt": TEST})
    env = gym.make("Rank-LETOR-v0", path=root, k_positions=3)
    expert = envs.make_expert(env)
    results = {}
    for query in range(3):
        obs, _ = env.reset(options={"query": query})
        done, total = False, 0.0
        while not done:
            action, _ = expert.predict(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
        results[query] = (info, total)
    assert results[0][0]["ndcg@10"] == 1.0
    assert results[0][1] == pytest.approx(3 + 1 / np.log2(3))
    assert results[1][0]["ndcg@10"] == 0.0 and results[1][1] == 0.0  # no relevant document
    assert list(results[2][0]["ranking"]) == [0, -1, -1]  # one document: one step
    assert results[2][0]["ndcg@1"] == 1.0


def test_letor_folds_and_mappings(tmp_path: Path) -> None:
    _write(tmp_path / "Fold2", **{"train.txt": TRAIN, "test.txt": TEST})
    assert set(load_letor(tmp_path, fold=2)) == {"train", "test"}
    with pytest.raises(FileNotFoundError, match="fold=1"):
        load_letor(tmp_path)
    single = load_letor({"train": tmp_path / "Fold2" / "train.txt"})
    assert set(single) == {"train"}


def test_letor_bad_input_errors(tmp_path: Path) -> None:
    no_qid = _write(tmp_path / "a", **{"train.txt": "1 1:0.5 2:1\n0 1:1\n"})
    with pytest.raises(ValueError, match="qid:"):
        load_letor(no_qid)
    wide = TEST.replace("4:4.0", "9:4.0")
    mismatch = _write(tmp_path / "b", **{"train.txt": TRAIN, "test.txt": wide})
    with pytest.raises(ValueError, match=r"feature count mismatch.*n_features=9"):
        load_letor(mismatch)
    assert load_letor(mismatch, n_features=9)["train"].n_features == 9
    with pytest.raises(ValueError, match="n_features=4"):
        load_letor(mismatch, n_features=4)
    graded = _write(tmp_path / "c", **{"train.txt": "0.5 qid:1 1:1\n"})
    with pytest.raises(ValueError, match=r"line 1: relevance label '0\.5' is not an integer"):
        load_letor(graded)
    with pytest.raises(FileNotFoundError, match="no LETOR file"):
        load_letor(tmp_path / "missing")
    with pytest.raises(ValueError, match="normalize"):
        load_letor(mismatch, normalize="global")


# -- env ----------------------------------------------------------------------------------------


def test_spaces_masks_and_dcg_rewards() -> None:
    env = gym.make("Rank-Synthetic-v0", k_positions=3, **SMALL)
    obs, info = env.reset(seed=0)
    base = env.unwrapped
    n = len(base.current_relevance)
    assert env.observation_space.contains(obs)
    assert obs["mask"].sum() == n and np.all(obs["features"][n:] == 0)
    np.testing.assert_array_equal(env.action_masks(), obs["mask"].astype(bool))
    relevance = base.current_relevance
    slots = list(range(min(3, n)))
    for position, slot in enumerate(slots, start=1):
        obs, reward, terminated, truncated, info = env.step(slot)
        assert reward == pytest.approx((2.0 ** relevance[slot] - 1) / np.log2(position + 1))
        assert obs["mask"][slot] == 0
    assert terminated and not truncated
    assert not obs["mask"].any()  # nothing selectable once the ranking is complete
    assert list(info["ranking"][: len(slots)]) == slots
    assert info["ndcg@10"] == pytest.approx(ndcg_at_k(slots, relevance, 10))


def test_invalid_actions_raise_by_default_and_name_the_slot() -> None:
    env = gym.make("Rank-Synthetic-v0", **SMALL_K)
    env.reset(seed=1)
    n = len(env.unwrapped.current_relevance)
    env.step(0)
    state = env.get_state()
    with pytest.raises(ValueError, match="slot 0 was already placed at position 1"):
        env.step(0)
    if n < 8:
        with pytest.raises(ValueError, match=f"slot 7 is padding .*{n} candidates"):
            env.step(7)
    assert env.get_state() == state


def test_penalty_mode_is_a_counted_no_op_and_truncates() -> None:
    env = gym.make("Rank-Synthetic-v0", invalid_action="penalty", max_invalid_actions=3, **SMALL_K)
    env.reset(seed=2)
    env.step(0)
    obs, reward, terminated, truncated, info = env.step(0)
    assert reward == -1.0 and info["invalid_action"] and not (terminated or truncated)
    assert obs["mask"][0] == 0 and env.unwrapped.placed == (0,)
    env.step(0)
    *_, terminated, truncated, info = env.step(0)
    assert truncated and not terminated and "ndcg@10" in info


def test_constructor_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="k_positions=9 is larger than the candidate list"):
        gym.make("Rank-Synthetic-v0", k_positions=9, **SMALL)
    with pytest.raises(ValueError, match="invalid_action"):
        gym.make("Rank-Synthetic-v0", invalid_action="ignore", **SMALL_K)
    with pytest.raises(ValueError, match="split"):
        gym.make("Rank-Synthetic-v0", split="dev", **SMALL_K)
    splits = synthetic_splits((3, 1, 1), 4, 2, 8, 0.3, 1.0, 0)
    with pytest.raises(ValueError, match="max_candidates>="):
        RankingEnv(splits, max_candidates=4)
    env = gym.make("Rank-Synthetic-v0", **SMALL_K)
    with pytest.raises(ValueError, match=r"query.*\[0, 20\)"):
        env.reset(options={"query": 20})


def test_oracle_is_ideal_with_seeded_tie_breaking() -> None:
    env = gym.make("Rank-Synthetic-v0", k_positions=8, **SMALL)
    expert = envs.make_expert(env)
    for query in range(5):
        obs, _ = env.reset(options={"query": query})
        done = False
        while not done:
            action, _ = expert.predict(obs)
            obs, _, done, _, info = env.step(action)
        relevance = env.unwrapped.current_relevance
        placed = info["ranking"][info["ranking"] >= 0]
        assert list(relevance[placed]) == sorted(relevance, reverse=True)
        np.testing.assert_array_equal(placed, expert.ranking())
    # Ties: another tie_seed may order equal grades differently, never across grades.
    from lfi_gym.envs.ranking.oracles import IdealRankingOracle

    orders = set()
    for tie_seed in range(6):
        env.reset(options={"query": 0})
        ranking = IdealRankingOracle(env, tie_seed=tie_seed).ranking()
        assert list(env.unwrapped.current_relevance[ranking]) == sorted(
            env.unwrapped.current_relevance, reverse=True
        )
        orders.add(tuple(ranking))
    assert len(orders) > 1
    with pytest.raises(ValueError, match="labels one"):
        obs, _ = env.reset(options={"query": 0})
        expert.predict({k: np.stack([v, v]) for k, v in obs.items()})


def test_masked_random_rollouts_restart_exactly_in_raise_mode() -> None:
    env = gym.make("Rank-Synthetic-v0", **SMALL_K)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
    state = env.get_state()

    def rollout(seed: int) -> list:
        draw, out = np.random.default_rng(seed), []
        for _ in range(30):
            action = int(draw.choice(np.flatnonzero(env.action_masks())))
            obs, reward, terminated, truncated, info = env.step(action)
            out.append((action, reward, obs["mask"].tobytes(), str(info)))
            if terminated or truncated:
                out.append(("reset", env.reset()[0]["features"].tobytes()))
        return out

    first = rollout(9)
    env.reset_to(state)
    assert rollout(9) == first


def test_bundled_letor_sample_loads_offline() -> None:
    env = gym.make("Rank-LETOR-v0")
    assert env.unwrapped.n_features == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(seed=0)


def test_maskable_ppo_trains_unmodified_and_beats_random() -> None:
    from sb3_contrib import MaskablePPO

    from lfi_gym.agents.evaluation import evaluate_ranker

    kwargs = {
        "n_queries": (300, 100, 100),
        "max_candidates": 8,
        "min_candidates": 4,
        "n_features": 4,
        "nonlinearity": 0.0,
        "noise": 0.1,
        "k_positions": 3,
    }
    env = gym.make("Rank-Synthetic-v0", **kwargs)
    test = gym.make("Rank-Synthetic-v0", split="test", **kwargs)

    class Masked:
        observation_space, action_space = test.observation_space, test.action_space

        def __init__(self, model=None) -> None:
            self.model, self.rng = model, np.random.default_rng(0)

        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            masks = test.unwrapped.action_masks()
            if self.model is None:
                return np.int64(self.rng.choice(np.flatnonzero(masks))), None
            action, _ = self.model.predict(obs, action_masks=masks, deterministic=True)
            return action, None

    random_ndcg = evaluate_ranker(Masked(), test)
    model = MaskablePPO(
        "MultiInputPolicy",
        env,
        n_steps=256,
        batch_size=64,
        n_epochs=10,
        learning_rate=3e-3,
        gamma=1.0,
        seed=0,
        device="cpu",
    )
    model.learn(4096)
    trained = evaluate_ranker(Masked(model), test)
    assert trained > random_ndcg + 0.2, (random_ndcg, trained)
