"""Write your own agent: a SEARN-style one-step-deviation learner (see docs/writing-agents.md).

At each state the learner visits, MyAgent tries every allowed action, lets the expert finish
the episode and labels the state with the action of the highest roll-out return (ties go to
the expert's own action). LabelDrivenAgent does the rest: roll-in, aggregation, retraining,
counters, callbacks, save / load. Compare it with ours:

    python examples/write_your_own_agent.py [expert labels, default 200]
    lfi-gym compare --agents examples.write_your_own_agent:MyAgent,bc,dagger \
        --env Control-CartPole-v0
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np

import lfi_gym  # noqa: F401  (registers the env ids)
from lfi_gym.agents import LabelDrivenAgent, episode_returns, rollout_return
from lfi_gym.envs import RandomPolicy, make_expert


class MyAgent(LabelDrivenAgent):
    def label(self, env, observation):
        state = env.get_state()
        expert_action = int(self.expert.predict(observation, deterministic=True)[0])
        if isinstance(observation, dict) and "mask" in observation:  # ranking: unplaced docs
            actions = np.flatnonzero(observation["mask"])
        else:
            actions = np.arange(env.action_space.n)
        returns = [rollout_return(env, self.expert, state, first_action=a) for a in actions]
        best = actions[np.isclose(returns, max(returns))]
        return expert_action if expert_action in best else int(best[0])


if __name__ == "__main__":
    labels = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    env = gym.make("Control-CartPole-v0")
    # Small rounds and more epochs than the defaults (DAgger's) suit a budget this small.
    agent = MyAgent(env, expert=make_expert(env), steps_per_round=50, n_epochs=20, seed=0)
    agent.learn(labels)
    for name, policy in (("MyAgent", agent), ("random", RandomPolicy.for_env(env, seed=0))):
        returns = episode_returns(policy, gym.make("Control-CartPole-v0"), 10, seed=100)
        print(f"{name:8s} mean return over 10 episodes: {returns.mean():6.1f}")
    print("MyAgent used", agent.budgets())
