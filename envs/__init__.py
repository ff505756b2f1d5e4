"""lfi-gym environments. Importing this package registers every env id with Gymnasium.

>>> import gymnasium as gym, envs
>>> env = gym.make("Control-CartPole-v0")
>>> obs, info = env.reset(seed=0)
>>> state = env.get_state()
>>> obs_again, info = env.reset_to(state)
"""

from __future__ import annotations

import gymnasium as gym

from lfi_gym.envs.core import RestartableEnv, State, StateError
from lfi_gym.envs.policies import OraclePolicy, Policy, RandomPolicy, as_policy
from lfi_gym.envs.registration import (
    FAMILIES,
    check_env_id,
    env_family,
    register_restartable,
    registered_ids,
)
from lfi_gym.envs.vector import RestartableSyncVectorEnv, VectorState

__all__ = [
    "FAMILIES",
    "OraclePolicy",
    "Policy",
    "RandomPolicy",
    "RestartableEnv",
    "RestartableSyncVectorEnv",
    "State",
    "StateError",
    "VectorState",
    "as_policy",
    "check_env_id",
    "env_family",
    "make_expert",
    "registered_ids",
]


def make_expert(env: gym.Env) -> Policy:
    """The env's computational oracle as a Policy bound to ``env``.

    Works through wrappers (it looks at ``env.unwrapped``). The oracle acts on the
    observations ``env`` returns, so wrap the env *after* making its expert only with
    wrappers that leave observations and actions unchanged.
    """
    base = env.unwrapped
    if not isinstance(base, RestartableEnv):
        raise TypeError(
            f"make_expert needs an lfi-gym env (one of: {', '.join(registered_ids())}); "
            f"got {type(base).__name__}"
        )
    return base.make_expert()


register_restartable(
    "Control-CartPole-v0",
    entry_point="lfi_gym.envs.control.cartpole:ControlCartPoleEnv",
    vector_entry_point="lfi_gym.envs.control:make_cartpole_vector",
    reward_threshold=475.0,
)

# Vector entry points: a RestartableSyncVectorEnv of the id's rows (envs/vector.py), or
# the family's native batched env (text).
for _name, _id in (
    ("tinyreviews", "TextGen-TinyReviews-v0"),
    ("tinyconcepts", "TextGen-TinyConcepts-v0"),
    ("imdb", "TextGen-IMDB-v0"),
    ("commongen", "TextGen-CommonGen-v0"),
):
    register_restartable(
        _id,
        entry_point=f"lfi_gym.envs.text:make_{_name}",
        vector_entry_point=f"lfi_gym.envs.text:make_{_name}_vector",
    )


def _register_atari() -> None:
    from lfi_gym.envs.atari import ATARI_GAMES, MINATAR_GAMES

    for game, suffix in ATARI_GAMES.items():
        register_restartable(
            f"AtariImitation-{suffix}-v0",
            entry_point="lfi_gym.envs.atari.ale:AtariImitationEnv",
            vector_entry_point="lfi_gym.envs.atari:make_atari_vector",
            kwargs={"game": game},
        )
    for game, suffix in MINATAR_GAMES.items():
        register_restartable(
            f"MinAtarImitation-{suffix}-v0",
            entry_point="lfi_gym.envs.atari.minatar:MinAtarImitationEnv",
            vector_entry_point="lfi_gym.envs.atari:make_minatar_vector",
            kwargs={"game": game},
        )


_register_atari()

# Ranking: sequential Plackett-Luce ranking with action masks (envs/ranking).
register_restartable(
    "Rank-Synthetic-v0",
    entry_point="lfi_gym.envs.ranking.env:RankSyntheticEnv",
    vector_entry_point="lfi_gym.envs.ranking:make_synthetic_vector",
)
register_restartable(
    "Rank-LETOR-v0",
    entry_point="lfi_gym.envs.ranking.env:RankLETOREnv",
    vector_entry_point="lfi_gym.envs.ranking:make_letor_vector",
)
