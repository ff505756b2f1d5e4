"""Text generation environments (TextGen-*): token-level LM MDPs with exact restarts.

==========================  ======================================================
``TextGen-TinyReviews-v0``   offline: grammar-made reviews, shipped tiny GPT-2 and
                             tokenizer, lexicon sentiment reward
``TextGen-TinyConcepts-v0``  offline, CommonGen-shaped: write a review using 2-4
                             concepts; shipped tiny GPT-2 and tokenizer (trained on
                             the references only), concept-coverage reward
``TextGen-IMDB-v0``          GRUE IMDB: GPT-2 tokenizer, DistilBERT-IMDB reward
``TextGen-CommonGen-v0``     CommonGen: T5 tokenizer, SPIDER or CIDEr-D reward
==========================  ======================================================

``gym.make(id, **kwargs)`` returns a :class:`TextGenEnv`; ``gym.make_vec(id, num_envs=n,
**kwargs)`` the native :class:`TextGenVectorEnv`. The keyword arguments are those of the
task builders in :mod:`lfi_gym.envs.text.sources` (split, assets, reward, limits).
"""

from __future__ import annotations

from typing import Any

from lfi_gym.envs.text.env import TextGenEnv
from lfi_gym.envs.text.rows import TextGenState
from lfi_gym.envs.text.task import TextSample, TextTask
from lfi_gym.envs.text.vector import TextGenVectorEnv

__all__ = [
    "TextGenEnv",
    "TextGenState",
    "TextGenVectorEnv",
    "TextSample",
    "TextTask",
    "make_commongen",
    "make_commongen_vector",
    "make_imdb",
    "make_imdb_vector",
    "make_tinyconcepts",
    "make_tinyconcepts_vector",
    "make_tinyreviews",
    "make_tinyreviews_vector",
]


def make_tinyreviews(render_mode: str | None = None, **kwargs: Any) -> TextGenEnv:
    from lfi_gym.envs.text.sources import tinyreviews_task

    return TextGenEnv(tinyreviews_task(**kwargs), render_mode=render_mode)


def make_tinyreviews_vector(
    num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any
) -> TextGenVectorEnv:
    from lfi_gym.envs.text.sources import tinyreviews_task

    return TextGenVectorEnv(tinyreviews_task(**kwargs), num_envs, max_episode_steps)


def make_tinyconcepts(render_mode: str | None = None, **kwargs: Any) -> TextGenEnv:
    from lfi_gym.envs.text.sources import tinyconcepts_task

    return TextGenEnv(tinyconcepts_task(**kwargs), render_mode=render_mode)


def make_tinyconcepts_vector(
    num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any
) -> TextGenVectorEnv:
    from lfi_gym.envs.text.sources import tinyconcepts_task

    return TextGenVectorEnv(tinyconcepts_task(**kwargs), num_envs, max_episode_steps)


def make_imdb(render_mode: str | None = None, **kwargs: Any) -> TextGenEnv:
    from lfi_gym.envs.text.sources import imdb_task

    return TextGenEnv(imdb_task(**kwargs), render_mode=render_mode)


def make_imdb_vector(
    num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any
) -> TextGenVectorEnv:
    from lfi_gym.envs.text.sources import imdb_task

    return TextGenVectorEnv(imdb_task(**kwargs), num_envs, max_episode_steps)


def make_commongen(render_mode: str | None = None, **kwargs: Any) -> TextGenEnv:
    from lfi_gym.envs.text.sources import commongen_task

    return TextGenEnv(commongen_task(**kwargs), render_mode=render_mode)


def make_commongen_vector(
    num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any
) -> TextGenVectorEnv:
    from lfi_gym.envs.text.sources import commongen_task

    return TextGenVectorEnv(commongen_task(**kwargs), num_envs, max_episode_steps)
