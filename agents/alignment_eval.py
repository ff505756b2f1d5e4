"""Evaluating a policy trained from preferences against its SFT policy on a text env.

* gold reward: the env's own reward of the policy's samples;
* proxy reward: a reward model's score of the same samples (with the gold reward and the
  KL, the over-optimisation curve of Gao et al. 2022);
* KL to SFT: per sequence, the sum over generated tokens of
  ``log pi(a_t | s_t) - log pi_sft(a_t | s_t)`` at the policy's own samples (the estimator
  the PPO update's KL penalty uses), averaged over sequences;
* win rate against SFT: both policies complete the same prompts (row ``i`` seeded
  ``seed + i``) and a judge says which completion is better; ties count one half. The
  default judge is the gold reward; any callable ``judge(prompts, completions_a,
  completions_b) -> P(a better)`` per row (0, 0.5 or 1) can stand for a model judge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym.agents.env_kinds import text_task
from lfi_gym.agents.preference_collection import segment_prompt_ids
from lfi_gym.agents.rollouts import LEARNER, EpisodePlan, run_wave
from lfi_gym.envs.validation import check_positive_int

__all__ = ["Samples", "alignment_metrics", "proxy_rewards", "sample", "sequence_kl", "win_rate"]

#: ``judge(prompts, completions_a, completions_b) -> P(a better)`` per row.
Judge = Callable[[Sequence[str], Sequence[str], Sequence[str]], Sequence[float]]


@dataclasses.dataclass(frozen=True)
class Samples:
    """One completion per prompt: texts, the env's final observations, gold rewards."""

    prompts: list[str]
    prompt_ids: list[np.ndarray]
    completions: list[str]
    completion_ids: list[np.ndarray]
    observations: dict[str, np.ndarray]  # the episodes' last observations, stacked
    gold: np.ndarray


def sample(policy: Any, env: Any, n: int, seed: int = 0, num_envs: int = 32) -> Samples:
    """``n`` episodes of ``policy`` on ``env``'s prompts, row ``i`` seeded ``seed + i``
    (the same prompts for every policy given the same ``seed``). ``env`` is a text env,
    single (its task is run ``num_envs`` rows at a time) or vector (its own rows)."""
    from lfi_gym.envs.text import TextGenVectorEnv

    n = check_positive_int(n, "n")
    task = text_task(env, "sampling a policy for evaluation needs a text env", TypeError)
    vec = getattr(env, "unwrapped", env)
    if not isinstance(vec, gym.vector.VectorEnv):
        vec = TextGenVectorEnv(task, min(check_positive_int(num_envs, "num_envs"), n))
    p = task.prompt_length
    prompts, prompt_ids, completions, ids, finals, gold = [], [], [], [], [], []
    while len(ids) < n:
        first = seed + len(ids)
        rows = min(vec.num_envs, n - len(ids))
        plans = [EpisodePlan(LEARNER, LEARNER, 0)] * vec.num_envs
        wave = run_wave(vec, {LEARNER: policy}, plans, list(range(first, first + vec.num_envs)))
        for segment, episode_return in zip(
            wave.segments[:rows], wave.episode_returns[:rows], strict=True
        ):
            prompt_ids.append(segment_prompt_ids(segment, p))
            generated = np.asarray(segment.actions, dtype=np.int64)
            prompts.append(task.decode_prompt(prompt_ids[-1]))
            completions.append(task.decode_completion(generated))
            ids.append(generated)
            finals.append(segment.next_observation)
            gold.append(float(episode_return))
    observations = {key: np.stack([f[key] for f in finals]) for key in finals[0]}
    return Samples(prompts, prompt_ids, completions, ids, observations, np.asarray(gold))


def sequence_kl(policy: Any, reference: Any, samples: Samples, batch_size: int = 64) -> np.ndarray:
    """Per sample, ``sum_t log pi(a_t|s_t) - log pi_ref(a_t|s_t)`` over its generated
    tokens (both ``LMPolicy``; the samples should be ``policy``'s own)."""
    lengths = np.array([len(c) for c in samples.completion_ids])
    out = np.zeros(len(lengths))
    with torch.inference_mode():
        for start in range(0, len(lengths), batch_size):
            rows = slice(start, start + batch_size)
            batch = {
                k: torch.as_tensor(v[rows], device=policy.device)
                for k, v in samples.observations.items()
            }
            _, log_p, _ = policy.evaluate_generated(batch, values=False, entropy=False)
            batch = {k: v.to(reference.device) for k, v in batch.items()}
            _, log_ref, _ = reference.evaluate_generated(batch, values=False, entropy=False)
            diff = (log_p.float().cpu() - log_ref.float().cpu()).numpy()
            columns = np.arange(diff.shape[1])
            mask = columns[None, :] < lengths[rows][:, None]
            out[rows] = np.where(mask, diff, 0.0).sum(1)
    return out


def gold_judge(gold_a: np.ndarray, gold_b: np.ndarray) -> np.ndarray:
    """P(a better) by the gold reward: 1, 0, or 0.5 on equal rewards."""
    return np.where(gold_a > gold_b, 1.0, np.where(gold_a < gold_b, 0.0, 0.5))


def win_rate(
    policy_samples: Samples, baseline_samples: Samples, judge: Judge | None = None
) -> np.ndarray:
    """Per prompt, whether the policy's completion beats the baseline's (1, 0, or 0.5 for
    a tie) by ``judge`` (default: the gold reward). Both sample sets must be of the same
    prompts (:func:`sample` with the same ``seed``); the win rate is the mean."""
    if policy_samples.prompts != baseline_samples.prompts:
        raise ValueError(
            "the two sample sets are of different prompts: sample both with the same seed"
        )
    if judge is None:
        return gold_judge(policy_samples.gold, baseline_samples.gold)
    wins = np.asarray(
        judge(policy_samples.prompts, policy_samples.completions, baseline_samples.completions),
        dtype=np.float64,
    ).reshape(-1)
    if wins.shape != (len(policy_samples.prompts),) or not np.all(np.isin(wins, (0, 0.5, 1))):
        raise ValueError("a judge must return one of 0, 0.5, 1 per prompt (P(a better))")
    return wins


def alignment_metrics(
    policy: Any,
    sft: Any,
    env: gym.Env,
    n: int = 256,
    seed: int = 0,
    reward_model: Any = None,
    judge: Judge | None = None,
) -> dict[str, float]:
    """Gold reward, KL to SFT and win rate against SFT of ``policy`` on ``n`` prompts
    (and the reward model's mean score, the proxy reward, when given)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ours = sample(policy, env, n, seed)
        torch.manual_seed(seed + 1)
        theirs = sample(sft, env, n, seed)
    metrics = {
        "gold_reward": float(ours.gold.mean()),
        "sft_gold_reward": float(theirs.gold.mean()),
        "kl_to_sft": float(sequence_kl(policy, sft, ours).mean()),
        "win_rate": float(win_rate(ours, theirs, judge).mean()),
    }
    if reward_model is not None:
        metrics["proxy_reward"] = float(proxy_rewards(reward_model, ours).mean())
    return metrics


def proxy_rewards(reward_model: Any, samples: Samples) -> np.ndarray:
    """Per sample, ``reward_model``'s score of its completion (the proxy reward), called
    with the keyword reward contract on the samples' exact token ids."""
    scores = reward_model(
        prompts=samples.prompts,
        completions=samples.completions,
        completion_ids=[c.tolist() for c in samples.completion_ids],
    )
    return np.asarray(scores, dtype=float)
