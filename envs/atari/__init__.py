"""Atari imitation envs: ``AtariImitation-*`` (ALE) and ``MinAtarImitation-*`` (MinAtar).

Both keep every bit that decides the future in their State (emulator with its RNG, frame
stack, counters), so DAgger and the guided algorithms can restart them anywhere, and both
come with computational oracles (``lfi_gym.envs.make_expert(env)``).
"""

from __future__ import annotations

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
