"""Atari imitation envs: ``AtariImitation-*`` (ALE) and ``MinAtarImitation-*`` (MinAtar).

Both keep every bit that decides the future in their State (emulator with its RNG, frame
stack, counters), so DAgger and the guided algorithms can restart them anywhere, and both
come with computational oracles (``lfi_gym.envs.make_expert(env)``).
"""

from __future__ import annotations

from typing import Any

from lfi_gym.envs.vector import RestartableSyncVectorEnv, restartable_sync_vector_env

#: ALE game name -> id suffix, for the games with a registered AtariImitation id.
ATARI_GAMES = {
    "pong": "Pong",
    "breakout": "Breakout",
    "space_invaders": "SpaceInvaders",
    "beam_rider": "BeamRider",
    "qbert": "Qbert",
    "ms_pacman": "MsPacman",
}

#: MinAtar game name -> id suffix.
MINATAR_GAMES = {
    "breakout": "Breakout",
    "freeway": "Freeway",
    "asterix": "Asterix",
    "seaquest": "Seaquest",
    "space_invaders": "SpaceInvaders",
}


def make_atari_vector(num_envs: int = 1, *, game: str, **kwargs: Any) -> RestartableSyncVectorEnv:
    """Vector entry point of the ``AtariImitation-*`` ids: each id's spec passes its game."""
    return restartable_sync_vector_env(
        _id_of(game, ATARI_GAMES, "AtariImitation"), num_envs, game=game, **kwargs
    )


def make_minatar_vector(num_envs: int = 1, *, game: str, **kwargs: Any) -> RestartableSyncVectorEnv:
    """Vector entry point of the ``MinAtarImitation-*`` ids: each id's spec passes its game."""
    return restartable_sync_vector_env(
        _id_of(game, MINATAR_GAMES, "MinAtarImitation"), num_envs, game=game, **kwargs
    )


def _id_of(game: str, games: dict[str, str], family: str) -> str:
    # Rows are built by id so that their states carry it; only registered games have one.
    if game not in games:
        raise ValueError(
            f"gym.make_vec builds {family} rows from a registered id, and no id plays "
            f"game={game!r}; choose one of {', '.join(games)} or build the rows yourself "
            "with lfi_gym.envs.RestartableSyncVectorEnv"
        )
    return f"{family}-{games[game]}-v0"
