"""Algorithm math pinned to hand-computed values, so that moving the agents' code around
cannot change what they compute without a test noticing.

Each test targets one piece of math that the end-to-end tests do not pin down: PPO's
KL-shaped reward, the roll-out return that credits an AggreVaTeD roll-in, the LMPolicy KV
cache after an edited prefix, and PG-Rank's reward-to-go with its leave-one-out baseline.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tqdm.auto import tqdm

from lfi_gym.agents import PPO, LMPolicy, PGRank, PlackettLucePolicy
from lfi_gym.agents.ppo import _Batch
from lfi_gym.agents.rollouts import GUIDE, LEARNER, EpisodePlan, Segment, Wave, run_wave
from lfi_gym.envs.ranking.data import QuerySet
from lfi_gym.envs.ranking.env import RankingEnv

CARTPOLE = "Control-CartPole-v0"
TEXT = "TextGen-TinyReviews-v0"


class ConstantAction:
    """A policy that always takes ``action`` (CartPole: 0 pushes left, 1 pushes right)."""

    def __init__(self, action: int) -> None:
        self.action = action

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.full(len(observation), self.action, dtype=np.int64), None


# -- PPO: the KL-shaped reward ---------------------------------------------------------------


def test_ppo_shapes_each_reward_with_minus_kl_coef_times_the_log_ratio():
    """shaped_t = r_t - kl_coef * (log pi(a_t|s_t) - log pi_ref(a_t|s_t)), and the value
    targets are the discounted returns of the shaped rewards."""
    env = gym.make(CARTPOLE)
    agent = PPO(
        env, "MlpPolicy", kl_coef=0.5, gamma=0.9, gae_lambda=1.0, n_epochs=1, batch_size=8, seed=0
    )
    # Zero weights make both networks ignore the observation: the reference (copied at
    # construction) picks each action with probability 1/2, the learner pushes left with
    # probability 3/4 (logits ln 3 and 0), and every value is 0.
    with torch.no_grad():
        for policy in (agent.policy, agent.reference):
            policy.action_net.weight.zero_()
            policy.action_net.bias.zero_()
        agent.policy.action_net.bias[0] = math.log(3.0)
        agent.policy.value_net.weight.zero_()
        agent.policy.value_net.bias.zero_()
    segment = Segment(
        observations=[np.zeros(4, dtype=np.float32)] * 3,
        actions=[0, 1, 0],
        rewards=[1.0, 0.0, 2.0],
        start=0,
        next_observation=np.zeros(4, dtype=np.float32),
        terminated=True,
        truncated=False,
        tail_rewards=[],
    )
    seen = []
    gae = agent._gae

    def record(batch, rewards, values):
        advantages, returns = gae(batch, rewards, values)
        seen.append((rewards.clone(), returns.clone()))
        return advantages, returns

    agent._gae = record
    stats = agent._update([Wave(segments=[segment], episode_returns=[3.0], steps=3)])

    shaped, returns = seen[0]
    expected_shaped = [
        1.0 - 0.5 * math.log(0.75 / 0.5),  # action 0: log ratio ln(3/4 / 1/2) = ln 1.5
        0.0 - 0.5 * math.log(0.25 / 0.5),  # action 1: log ratio ln(1/4 / 1/2) = -ln 2
        2.0 - 0.5 * math.log(0.75 / 0.5),
    ]
    np.testing.assert_allclose(shaped.numpy(), expected_shaped, atol=1e-6)
    np.testing.assert_allclose(shaped.numpy(), [0.797267, 0.346574, 1.797267], atol=1e-6)
    # Terminal segment, values 0, lambda 1: returns are discounted sums of shaped rewards.
    expected_returns = [
        0.797267 + 0.9 * 0.346574 + 0.81 * 1.797267,  # = 2.564970
        0.346574 + 0.9 * 1.797267,  # = 1.964114
        1.797267,
    ]
    np.testing.assert_allclose(returns.numpy(), expected_returns, atol=1e-5)
    # The logged KL is the mean log ratio: (2 ln 1.5 - ln 2) / 3.
    assert stats["kl"] == pytest.approx((2 * math.log(1.5) - math.log(2)) / 3, abs=1e-6)


# -- roll-in / roll-out: what credits the roll-in ---------------------------------------------


def _replay(seed: int, actions_before_switch: int, rollin: int, rollout: int) -> list[float]:
    """One CartPole episode's rewards, played without the vector env or the wave."""
    env = gym.make(CARTPOLE)
    env.reset(seed=seed)
    rewards, step, done = [], 0, False
    while not done:
        action = rollin if step < actions_before_switch else rollout
        _, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        step, done = step + 1, terminated or truncated
    return rewards


def test_roll_in_and_roll_out_rewards_add_up_to_the_episode_with_dense_rewards():
    """CartPole pays +1 per step: the roll-in's rewards and the roll-out's tail are the
    episode's rewards exactly (no step counted twice or lost), and a roll-in that ends the
    episode has an empty tail and a zero bootstrap."""
    vec = gym.make_vec(CARTPOLE, num_envs=2)
    # Row 0: the learner pushes left 3 times, then the guide pushes right to the end.
    # Row 1: the learner pushes left until the pole falls (it never hands over).
    plans = [EpisodePlan(LEARNER, GUIDE, 3), EpisodePlan(LEARNER, GUIDE, 10_000)]
    wave = run_wave(
        vec, {LEARNER: ConstantAction(0), GUIDE: ConstantAction(1)}, plans, seeds=[0, 0]
    )
    handed_over, fell = wave.segments
    episode = _replay(0, 3, rollin=0, rollout=1)
    assert len(episode) == 15  # seed 0: 3 pushes left, 12 right, then the pole is down
    assert handed_over.rewards == [1.0, 1.0, 1.0]  # the roll-in's 3 steps
    assert handed_over.tail_rewards == [1.0] * 12  # the guide's 12 steps, none repeated
    assert handed_over.rewards + handed_over.tail_rewards == episode
    assert wave.episode_returns[0] == 15.0
    assert not handed_over.terminated

    assert fell.rewards == _replay(0, 10_000, rollin=0, rollout=0)
    assert fell.terminated and fell.tail_rewards == []  # nothing after a terminal step
    assert sum(fell.rewards) == wave.episode_returns[1]

    agent = PPO(vec, "MlpPolicy", kl_coef=0.0, gamma=0.9, gae_lambda=1.0, seed=0)
    batch = _Batch([handed_over, fell], sequence=False)
    bootstrap = agent._bootstrap_values(batch)
    # Row 0: the guide's 12 rewards discounted, sum 0.9^i for i < 12 = (1 - 0.9^12) / 0.1.
    assert bootstrap[0] == pytest.approx((1 - 0.9**12) / 0.1)
    assert bootstrap[1] == 0.0  # terminal: nothing to bootstrap
    rewards = torch.as_tensor(batch.rewards, dtype=torch.float32)
    _, returns = agent._gae(batch, rewards, torch.zeros_like(rewards))
    # Values 0 and lambda 1: the first roll-in step's target is the whole episode's
    # discounted return, 15 steps of +1: (1 - 0.9^15) / 0.1.
    assert returns[0].item() == pytest.approx((1 - 0.9**15) / 0.1, rel=1e-6)
    n = len(fell.rewards)  # row 1's segment starts at step index 3 of the batch
    assert returns[3].item() == pytest.approx((1 - 0.9**n) / 0.1, rel=1e-6)


# -- LMPolicy: the KV cache after an edited prefix ------------------------------------------


@pytest.fixture(scope="module")
def text_vec() -> gym.vector.VectorEnv:
    return gym.make_vec(TEXT, num_envs=2)


@pytest.fixture(scope="module")
def tiny_lm(text_vec) -> LMPolicy:
    return LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=text_vec, device="cpu")


def _edit_token(obs: dict[str, np.ndarray], row: int, column: int) -> dict[str, np.ndarray]:
    """``obs`` with one real token of ``row`` replaced by another token id (same mask)."""
    edited = {k: np.array(v) for k, v in obs.items()}
    assert edited["attention_mask"][row, column] == 1
    edited["input_ids"][row, column] = (edited["input_ids"][row, column] + 7) % 200 + 10
    assert edited["input_ids"][row, column] != obs["input_ids"][row, column]
    return edited


def _assert_matches_recomputation(policy: LMPolicy, obs, cache) -> None:
    """predict(obs, cache) gives what predict(obs) without a cache gives."""
    cached_actions, cached = policy.predict(obs, cache, deterministic=True)
    fresh_actions, fresh = policy.predict(obs, None, deterministic=True)
    torch.testing.assert_close(cached.logits, fresh.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        torch.log_softmax(cached.logits, -1), torch.log_softmax(fresh.logits, -1), atol=1e-4, rtol=0
    )
    np.testing.assert_array_equal(cached_actions, fresh_actions)


def test_an_edited_earlier_token_with_the_same_mask_is_not_served_from_a_stale_cache(
    text_vec, tiny_lm
):
    obs, _ = text_vec.reset(seed=0)
    _, cache = tiny_lm.predict(obs, deterministic=True)
    prompt = tiny_lm.prompt_length
    # The prompt's last token of row 0 changes; the attention mask does not.
    edited = _edit_token(obs, row=0, column=prompt - 1)
    _assert_matches_recomputation(tiny_lm, edited, cache)


def test_an_edited_earlier_token_plus_an_appended_one_is_not_decoded_on_a_stale_cache(
    text_vec, tiny_lm
):
    obs, _ = text_vec.reset(seed=0)
    actions, cache = tiny_lm.predict(obs, deterministic=True)
    obs, *_ = text_vec.step(actions)
    actions, cache = tiny_lm.predict(obs, cache, deterministic=True)
    obs, *_ = text_vec.step(actions)
    # Each row appended one token (a decode step would do), but row 1's first generated
    # token also changed since the cache was computed.
    edited = _edit_token(obs, row=1, column=tiny_lm.prompt_length)
    _assert_matches_recomputation(tiny_lm, edited, cache)


# -- PG-Rank: reward-to-go and the leave-one-out baseline -------------------------------------


class TinyRankingEnv(RankingEnv):
    """A RankingEnv over given queries (the base class has no id of its own to put in
    its States)."""

    default_id = "Rank-Tiny-v0"


class ScriptedRanker(PlackettLucePolicy):
    """Puts all probability on the next slot of a fixed list of picks, so that the sampled
    rankings are known in advance."""

    def __init__(self, env: gym.Env, picks: list[int]) -> None:
        super().__init__(env.observation_space, env.action_space, net_arch=(2,))
        self.picks = list(picks)

    def get_distribution(self, observations):
        slot = self.picks.pop(0)
        assert observations["mask"][0, slot] == 1, f"slot {slot} is not selectable"
        logits = torch.full((1, self.max_candidates), -math.inf)
        logits[0, slot] = 0.0
        return torch.distributions.Categorical(logits=logits)


def test_pg_rank_credits_each_pick_with_its_dcg_to_go_minus_the_others_mean():
    # One query, 3 documents of relevance 2, 0, 1: gains 2^rel - 1 = 3, 0, 1; position
    # discounts 1 / log2(k + 1) = 1, 1 / log2(3), 1/2.
    queries = QuerySet(
        features=np.eye(3, dtype=np.float32),
        relevance=np.array([2, 0, 1]),
        offsets=np.array([0, 3]),
        qids=np.array([0]),
    )
    env = TinyRankingEnv({"train": queries}, k_positions=3)
    rankings = [[0, 1, 2], [2, 1, 0], [1, 0, 2]]
    policy = ScriptedRanker(env, [slot for ranking in rankings for slot in ranking])
    agent = PGRank(env, policy, n_samples=3, seed=0)
    observations, actions, advantages, steps = agent._rollout_query(tqdm(disable=True))

    assert steps == 9 and actions == [slot for ranking in rankings for slot in ranking]
    assert [o["mask"].sum() for o in observations] == [3, 2, 1] * 3
    d2 = 1 / math.log2(3)  # the second position's discount
    # DCG increments per pick:  A [3, 0, 1/2]   B [1, 0, 3/2]   C [0, 3 d2, 1/2]
    # DCG still to come (G):    A [7/2, 1/2, 1/2]   B [5/2, 3/2, 3/2]
    #                           C [3 d2 + 1/2, 3 d2 + 1/2, 1/2]
    g = {
        "A": [3.5, 0.5, 0.5],
        "B": [2.5, 1.5, 1.5],
        "C": [3 * d2 + 0.5, 3 * d2 + 0.5, 0.5],
    }
    expected = []
    for me, others in (("A", "BC"), ("B", "AC"), ("C", "AB")):
        for t in range(3):
            # credit: G_i,t minus the mean of the other two samples' G_j,t
            expected.append(g[me][t] - sum(g[o][t] for o in others) / 2)
    np.testing.assert_allclose(advantages, expected, atol=1e-12)
    # The same numbers written out (d2 = 0.6309298):
    np.testing.assert_allclose(
        np.reshape(advantages, (3, 3)),
        [
            [1.053605, -1.446395, -0.5],  # A: 3.5 - (2.5 + 2.392789) / 2, ...
            [-0.446395, 0.053605, 1.0],  # B: 2.5 - (3.5 + 2.392789) / 2, ...
            [-0.607211, 1.392789, -0.5],  # C: 2.392789 - (3.5 + 2.5) / 2, ...
        ],
        atol=1e-6,
    )
