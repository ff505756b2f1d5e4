"""Stable-Baselines3 models plug in as they are: a PPO model as DAgger's expert, and a
DQN model as BC's learner.

    python examples/sb3_expert_and_learner.py [--ppo-steps 30000]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import DQN, PPO

from lfi_gym import envs
from lfi_gym.agents import BC, DAgger, Demonstrations, episode_returns

ENV_ID = "Control-CartPole-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppo-steps", type=int, default=30_000)
    args = parser.parse_args()

    env = gym.make(ENV_ID)
    ppo = PPO("MlpPolicy", env, seed=0).learn(args.ppo_steps, progress_bar=True)
    print(f"PPO expert:          {episode_returns(ppo, gym.make(ENV_ID), 10).mean():6.1f}")

    dagger = DAgger(env, expert=ppo, steps_per_round=250, seed=0).learn(2_000, progress_bar=True)
    print(f"DAgger (PPO expert): {episode_returns(dagger, gym.make(ENV_ID), 10).mean():6.1f}")

    demos = Demonstrations.collect(env, envs.make_expert(env), n_episodes=4, seed=0)
    dqn = DQN("MlpPolicy", env, seed=0)
    BC(env, demos, policy=dqn, seed=0).learn(40_000)  # trains dqn's Q-network in place
    print(f"DQN after BC:        {episode_returns(dqn, gym.make(ENV_ID), 10).mean():6.1f}")


if __name__ == "__main__":
    main()
