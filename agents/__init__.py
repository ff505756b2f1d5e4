"""lfi-gym agents, in the Stable-Baselines3 shape (``learn`` / ``predict`` / ``save`` / ``load``).

Agents that query an expert (DAgger) take any Policy: an SB3 model, another agent,
``lfi_gym.envs.make_expert(env)``. Every agent builds its learner with ``lfi_gym.agents.learners``
(``policy="auto"``: the same network for the same env, whichever agent trains it).
"""

from __future__ import annotations

from lfi_gym.agents.base import BaseAgent
from lfi_gym.agents.bc import BC
from lfi_gym.agents.dagger import DAgger
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.demofile import DemonstrationsFileError
from lfi_gym.agents.dpo import DPO
from lfi_gym.agents.dril import DRIL
from lfi_gym.agents.evaluation import episode_returns, evaluate_ranker, rollout_return
from lfi_gym.agents.guided import D2LOLS, LOLS, AggreVaTeD, PPOPlusPlus
from lfi_gym.agents.labelled import LabelDrivenAgent
from lfi_gym.agents.learners import make_learner
from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.agents.pgrank import PGRank
from lfi_gym.agents.plackett_luce import PlackettLucePolicy
from lfi_gym.agents.policies import MixturePolicy
from lfi_gym.agents.ppo import PPO
from lfi_gym.agents.preferences import Preferences, PreferencesError
from lfi_gym.agents.reward_model import RewardModel
from lfi_gym.agents.rlhf import RLHF
from lfi_gym.agents.serialization import AgentFileError
from lfi_gym.agents.teachers import QueryBudgetExhausted, SimulatedTeacher
from lfi_gym.agents.threads import set_torch_threads
from lfi_gym.envs.policies import OraclePolicy, Policy, as_policy

#: Agents by the short name used on the command line (``lfi-gym compare --agents``).
AGENTS: dict[str, type[BaseAgent]] = {
    "bc": BC,
    "dagger": DAgger,
    "dril": DRIL,
    "pgrank": PGRank,
    "ppo": PPO,
    "ppo++": PPOPlusPlus,
    "aggrevated": AggreVaTeD,
    "lols": LOLS,
    "d2lols": D2LOLS,
    "rlhf": RLHF,
    "dpo": DPO,
}

__all__ = [
    "AGENTS",
    "BC",
    "D2LOLS",
    "DPO",
    "DRIL",
    "LOLS",
    "PPO",
    "RLHF",
    "AgentFileError",
    "AggreVaTeD",
    "BaseAgent",
    "DAgger",
    "Demonstrations",
    "DemonstrationsFileError",
    "LMPolicy",
    "LabelDrivenAgent",
    "MixturePolicy",
    "OraclePolicy",
    "PGRank",
    "PPOPlusPlus",
    "PlackettLucePolicy",
    "Policy",
    "Preferences",
    "PreferencesError",
    "QueryBudgetExhausted",
    "RewardModel",
    "SimulatedTeacher",
    "agent_class",
    "as_policy",
    "episode_returns",
    "evaluate_ranker",
    "make_learner",
    "rollout_return",
    "set_torch_threads",
]


def agent_class(name: str) -> type[BaseAgent]:
    """The agent class for a short name, or a ValueError listing the valid names."""
    try:
        return AGENTS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; valid agents: {', '.join(AGENTS)}") from None
