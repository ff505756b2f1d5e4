"""Roll-in / roll-out collection around restart points: the data of every guided algorithm.

An episode is planned as: the roll-in policy acts for ``switch`` steps, the env state
there is captured with ``get_state()``, and the roll-out policy continues from it after
``reset_to``. PPO, PPO++ and AggreVaTeD differ only in their plans (Chang et al. 2023):

    PPO           learner -> learner
    PPO++         guide   -> learner   (the learner is trained on its roll-out)
    AggreVaTeD    learner -> guide     (the learner is trained on its roll-in; the guide's
                                        completion is the return that credits it)

A wave runs one episode per row of a restartable vector env in two phases. In each phase a
policy decodes, one token per step with its KV cache, the rows it drives (fixed at the
phase's start: a guide that rolls in for a fifth of the rows costs a fifth of a batch).
Rows that have finished are *frozen*: they are shown the last observation they saw (an
LMPolicy then reuses its cache and logits for them) and whatever the env does with them is
ignored. Only the env's ``reset`` / ``get_state`` / ``reset_to``
/ ``step`` are used, so every env family works.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

LEARNER, GUIDE = "learner", "guide"


@dataclasses.dataclass(frozen=True)
class EpisodePlan:
    """Who acts before and after the restart point, and where it is (in steps)."""

    rollin: str
    rollout: str
    switch: int  # steps taken by the roll-in policy (a huge value: it never hands over)


@dataclasses.dataclass
class Segment:
    """The learner's trained steps of one episode, and what followed them.

    ``start`` is the number of steps taken before the segment in its episode (for a
    language model: the generated column of the segment's first token).
    ``tail_rewards`` are the rewards after the segment (the guide's completion), which
    credit the segment's last step.
    """

    observations: list[Any]
    actions: list[Any]
    rewards: list[float]
    start: int
    next_observation: Any
    terminated: bool
    truncated: bool
    tail_rewards: list[float]

    def __len__(self) -> int:
        return len(self.actions)


@dataclasses.dataclass
class Wave:
    """What one wave produced: the learner's segments and the episodes' statistics."""

    segments: list[Segment]
    episode_returns: list[float]
    steps: int  # env steps inside the episodes (roll-in and roll-out, both policies)


@dataclasses.dataclass
class _RowTrace:
    owners: list[str] = dataclasses.field(default_factory=list)
    observations: list[Any] = dataclasses.field(default_factory=list)
    actions: list[Any] = dataclasses.field(default_factory=list)
    rewards: list[float] = dataclasses.field(default_factory=list)
    last_observation: Any = None
    terminated: bool = False
    truncated: bool = False

    @property
    def ended(self) -> bool:
        return self.terminated or self.truncated


def run_wave(
    env: gym.vector.VectorEnv,
    policies: dict[str, Any],
    plans: list[EpisodePlan],
    seeds: list[int],
    *,
    check_reward: Callable[[float, int], None] | None = None,
) -> Wave:
    """Run one planned episode per row of ``env`` and return the learner's segments.

    ``policies`` maps ``"learner"`` / ``"guide"`` to Policies (or to one Policy per row, see
    :func:`per_row`); ``seeds[i]`` seeds row ``i``'s episode. ``check_reward(reward, row)``
    may raise to stop on a bad reward.
    """
    n = env.num_envs
    if len(plans) != n or len(seeds) != n:
        raise ValueError(f"a wave needs one plan and one seed per row ({n} rows)")
    obs, _ = env.reset(seed=[int(s) for s in seeds])
    traces = [_RowTrace() for _ in range(n)]
    restart_states: dict[int, Any] = {}

    # Phase A: roll-in until each row reaches its switch point (state captured) or ends.
    def capture_switches(step: int) -> None:
        due = [r for r in range(n) if not traces[r].ended and plans[r].switch == step]
        if due:  # one snapshot serves every row that switches at this step
            snapshot = env.get_state()
            for r in due:
                restart_states[r] = snapshot.states[r]

    rollin_steps = _drive(
        env,
        obs,
        policies,
        traces,
        owner_of=lambda row: plans[row].rollin,
        active=lambda row, step: not traces[row].ended and step < plans[row].switch,
        check_reward=check_reward,
        before_step=capture_switches,
    )
    # Phase B: restart every row that switched and let the roll-out policy finish it.
    rows = sorted(restart_states)
    if rows:
        if rollin_steps:  # else every row still is where it was captured (e.g. PPO)
            obs, _ = env.reset_to([restart_states[r] for r in rows], indices=rows)
        _drive(
            env,
            obs,
            policies,
            traces,
            owner_of=lambda row: plans[row].rollout,
            active=lambda row, step: row in restart_states and not traces[row].ended,
            check_reward=check_reward,
        )
    segments = [s for trace in traces if (s := _segment(trace)) is not None]
    return Wave(
        segments=segments,
        episode_returns=[float(sum(t.rewards)) for t in traces],
        steps=sum(len(t.actions) for t in traces),
    )


def _drive(
    env: gym.vector.VectorEnv,
    obs: Any,
    policies: dict[str, Any],
    traces: list[_RowTrace],
    *,
    owner_of: Callable[[int], str],
    active: Callable[[int, int], bool],
    check_reward: Callable[[float, int], None] | None,
    before_step: Callable[[int], None] | None = None,
) -> int:
    """Step the batch until no row is active, each active row acting by its owner's
    policy; returns the number of steps taken."""
    n = env.num_envs
    caches: dict[str, Any] = {}
    view = obs  # what the policies are shown: frozen rows keep their last observation
    step = 0
    masked = _has_action_masks(env)
    members: dict[str, list[int]] | None = None
    while True:
        if before_step is not None:
            before_step(step)
        live = [r for r in range(n) if active(r, step)]
        if not live:
            return step
        if members is None:
            # The rows each policy drives this phase, fixed at its start: it decodes only
            # those (a language model keeps one KV cache over them, finished rows frozen),
            # so a guide that rolls in for a few rows costs a few rows.
            members = {}
            for r in live:
                members.setdefault(owner_of(r), []).append(r)
        live_set = set(live)
        actions = _filler_actions(env)
        for owner, rows in members.items():
            if live_set.isdisjoint(rows):
                continue
            policy = policies[owner]
            if isinstance(policy, list):  # privileged oracles: each labels its own row
                for r in rows:
                    if r in live_set:
                        actions[r] = np.asarray(policy[r].predict(_row(obs, r))[0])
                continue
            chosen, caches[owner] = policy.predict(_take(view, rows), caches.get(owner))
            for i, r in enumerate(rows):
                if r in live_set:
                    actions[r] = chosen[i]
        if masked and len(live) < n:
            # Rows that are not acting still step; an env with action masks (ranking)
            # refuses invalid picks, so they take a valid one (ignored: their rows are
            # restored or reset before they count again).
            masks = env.call("action_masks")
            for r in range(n):
                if r not in live_set:
                    actions[r] = int(np.argmax(masks[r]))
        for r in live:
            trace = traces[r]
            trace.owners.append(owner_of(r))
            trace.observations.append(_row(obs, r))
            trace.actions.append(actions[r])
        obs, rewards, terminated, truncated, _ = env.step(actions)
        for r in live:
            trace = traces[r]
            reward = float(rewards[r])
            if check_reward is not None:
                check_reward(reward, r)
            trace.rewards.append(reward)
            trace.terminated, trace.truncated = bool(terminated[r]), bool(truncated[r])
            if trace.ended:
                # With NEXT_STEP autoreset the row resets only at the following step, so
                # the batch still holds the episode's last observation.
                trace.last_observation = _row(obs, r)
        step += 1
        view = _freeze(view, obs, [r for r in live if active(r, step)])


def _segment(trace: _RowTrace) -> Segment | None:
    """The learner's contiguous run of steps in ``trace``, or None if it has none."""
    learner_steps = [i for i, owner in enumerate(trace.owners) if owner == LEARNER]
    if not learner_steps:
        return None
    first, last = learner_steps[0], learner_steps[-1] + 1
    if learner_steps != list(range(first, last)):
        raise AssertionError("a plan gave the learner non-contiguous steps")
    ended_here = last == len(trace.actions)
    next_observation = trace.observations[last] if not ended_here else trace.last_observation
    return Segment(
        observations=trace.observations[first:last],
        actions=trace.actions[first:last],
        rewards=trace.rewards[first:last],
        start=first,
        next_observation=next_observation,
        terminated=trace.terminated if ended_here else False,
        truncated=trace.truncated if ended_here else False,
        tail_rewards=trace.rewards[last:],
    )


def per_row(policy: Any, env: gym.vector.VectorEnv) -> Any:
    """``policy``, or one oracle per row when it is a privileged oracle (it reads its bound
    env's hidden state, so it can only label that env's current situation)."""
    if not getattr(policy, "privileged", False):
        return policy
    make_row_experts = getattr(getattr(env, "unwrapped", env), "make_row_experts", None)
    if make_row_experts is not None:  # a native batched env (text): one oracle per row
        return make_row_experts()
    rows = getattr(env, "envs", None)
    if rows is None:
        raise ValueError(
            f"{type(policy).__name__} reads its env's hidden state and cannot label the rows "
            "of this vector env; use gym.make_vec(id, num_envs=n), whose rows are envs"
        )
    import lfi_gym.envs as lfi_envs

    return [lfi_envs.make_expert(row) for row in rows]


def _filler_actions(env: gym.vector.VectorEnv) -> np.ndarray:
    """Valid actions for every row, overwritten for the rows that act."""
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return np.full(env.num_envs, space.start, dtype=np.int64)
    return np.stack([space.sample() for _ in range(env.num_envs)])


def _take(batch: Any, rows: list[int]) -> Any:
    if isinstance(batch, dict):
        return {k: v[rows] for k, v in batch.items()}
    return batch[rows]


def _has_action_masks(env: gym.vector.VectorEnv) -> bool:
    rows = getattr(env, "envs", None)
    return bool(rows) and hasattr(rows[0].unwrapped, "action_masks")


def _row(obs: Any, r: int) -> Any:
    if isinstance(obs, dict):
        return {k: np.array(v[r]) for k, v in obs.items()}
    return np.array(obs[r])


def _freeze(view: Any, obs: Any, moving: list[int]) -> Any:
    """The batch shown to policies next: ``obs`` for moving rows, the old view for others."""
    if isinstance(obs, dict):
        out = {k: np.array(v) for k, v in view.items()}
        for k in out:
            out[k][moving] = obs[k][moving]
        return out
    out = np.array(view)
    out[moving] = obs[moving]
    return out
