"""Experiment suites for ``lfi-gym compare``: which envs, agents and label budgets.

A suite is a sequence of :class:`SuiteEntry`, one per env. Each entry fixes the expert-label
budget every agent gets, the label counts at which the learning curve is measured, the
number of evaluation episodes and per-agent constructor arguments, so that adding an env
to a suite is adding one entry.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from lfi_gym.agents.ppo import TINYREVIEWS as PPO_TINYREVIEWS
from lfi_gym.envs.validation import check_positive_int


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
    """One env of a suite and how its agents are compared.

    ``curve_points`` are expert-label counts, strictly increasing and ending at
    ``label_budget`` (default: four evenly spaced points). ``n_epochs`` is the number of
    passes over the labelled data per training: BC trains once on its demonstrations for
    ``n_epochs`` passes, DAgger retrains ``n_epochs`` passes over its aggregate each round
    (unless ``agent_kwargs["dagger"]`` sets ``n_epochs``). ``agent_kwargs`` maps an agent's
    short name to keyword arguments for its constructor.

    ``env_kwargs`` go to ``gym.make`` for training and evaluation; ``demo_env_kwargs``
    are added for the env BC records its demonstrations on (e.g. positive reviews only:
    GRUE's supervised fine-tuning data). ``deterministic_eval=False`` evaluates sampled
    actions (language models: greedy decoding is not how they are used).
    """

    env_id: str
    agents: tuple[str, ...] = ("bc", "dagger")
    label_budget: int = 1000
    curve_points: tuple[int, ...] | None = None
    eval_episodes: int = 10
    n_epochs: int = 50
    agent_kwargs: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    demo_env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    deterministic_eval: bool = True

    def __post_init__(self) -> None:
        check_positive_int(self.label_budget, "label_budget")
        check_positive_int(self.eval_episodes, "eval_episodes")
        check_positive_int(self.n_epochs, "n_epochs")
        if not self.agents:
            raise ValueError(f"{self.env_id}: a suite entry needs at least one agent")
        points = self.curve_points
        if points is None:
            # Four evenly spaced points; tiny budgets collapse to fewer distinct points.
            points = sorted({max(1, round(self.label_budget * k / 4)) for k in range(1, 5)})
        points = tuple(int(p) for p in points)
        for p in points:
            check_positive_int(p, "curve point")
        if any(b <= a for a, b in itertools.pairwise(points)):
            raise ValueError(f"curve points must be strictly increasing, got {list(points)}")
        if points[-1] != self.label_budget:
            raise ValueError(
                f"the last curve point ({points[-1]}) must equal the label budget "
                f"({self.label_budget})"
            )
        # Frozen dataclass: normalise through object.__setattr__.
        object.__setattr__(self, "curve_points", points)
        object.__setattr__(self, "agents", tuple(a.lower() for a in self.agents))
        object.__setattr__(
            self, "agent_kwargs", {k.lower(): dict(v) for k, v in self.agent_kwargs.items()}
        )

    def with_budget(
        self, label_budget: int | None = None, curve_points: Sequence[int] | None = None
    ) -> SuiteEntry:
        """This entry with another budget and/or curve.

        Curve points alone set the budget to their last value; a budget alone keeps the
        entry's points below it and ends the curve at the new budget.
        """
        if curve_points is not None:
            points = tuple(curve_points)
            if label_budget is not None and points and points[-1] != label_budget:
                raise ValueError(
                    f"the last curve point ({points[-1]}) must equal the label budget "
                    f"({label_budget})"
                )
            return dataclasses.replace(
                self, label_budget=points[-1] if points else 0, curve_points=points
            )
        if label_budget is not None:
            points = (*(p for p in self.curve_points if p < label_budget), label_budget)
            return dataclasses.replace(self, label_budget=label_budget, curve_points=points)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for ``results.json``)."""
        return {
            "env_id": self.env_id,
            "agents": list(self.agents),
            "label_budget": self.label_budget,
            "curve_points": list(self.curve_points),
            "eval_episodes": self.eval_episodes,
            "n_epochs": self.n_epochs,
            "agent_kwargs": {k: dict(v) for k, v in self.agent_kwargs.items()},
            "env_kwargs": dict(self.env_kwargs),
            "demo_env_kwargs": dict(self.demo_env_kwargs),
            "deterministic_eval": self.deterministic_eval,
        }


# CartPole shows BC's covariate shift: with a few hundred labels the expert's
# demonstrations are one short stretch of a single episode, BC drifts off it, and DAgger,
# which labels the states its own learner visits, recovers. Measured with 3 seeds and 10
# evaluation episodes: at 300 labels BC returns about 250-300 and DAgger about 465-500
# (the LQR oracle: 500). One DAgger round per curve step (steps_per_round=50) and the same
# 50 passes over the data as BC, so that the agents differ only in which states get labels.
CARTPOLE = SuiteEntry(
    env_id="Control-CartPole-v0",
    agents=("bc", "dagger"),
    label_budget=300,
    curve_points=(50, 100, 150, 200, 250, 300),
    eval_episodes=10,
    n_epochs=50,
    agent_kwargs={"dagger": {"steps_per_round": 50}},
)

# Text: GRUE's IMDB protocol on the offline TinyReviews env. The shipped tiny GPT-2 is the
# zero-shot baseline; BC is supervised fine-tuning on positive reviews' continuations (the
# reference oracle writes them) of the train split, so it should raise the sentiment reward.
# Evaluated on validation prompts, sampled (top-k 50) as language models are used.
TINYREVIEWS = SuiteEntry(
    env_id="TextGen-TinyReviews-v0",
    agents=("zero-shot", "bc", "ppo", "ppo++", "aggrevated"),
    label_budget=960,
    curve_points=(240, 480, 960),
    eval_episodes=50,
    n_epochs=3,
    agent_kwargs={
        "zero-shot": {"policy": "LMPolicy"},
        "bc": {"policy": "LMPolicy", "batch_size": 32},
        # RL from the shipped LM on train prompts, 10k tokens each (the CPU preset of
        # agents.ppo.TINYREVIEWS); PPO++ and AggreVaTeD are guided by the BC model.
        **{
            name: {
                "policy": "LMPolicy",
                "total_timesteps": 10_000,
                "env_kwargs": {"split": "train"},
                **PPO_TINYREVIEWS,
            }
            for name in ("ppo", "ppo++", "aggrevated")
        },
    },
    env_kwargs={"split": "validation"},
    demo_env_kwargs={"split": "train", "labels": [1]},
    deterministic_eval=False,
)

# Ranking: the Plackett-Luce policy learns from the ideal-ranking oracle; return = DCG of
# the top 10. PPO++ is guided by the BC model of the whole label budget and trains on
# 20,000 env steps (picks) of its own.
RANK_SYNTHETIC = SuiteEntry(
    env_id="Rank-Synthetic-v0",
    agents=("bc", "dagger", "ppo++"),
    label_budget=1000,
    curve_points=(250, 500, 750, 1000),
    eval_episodes=10,
    n_epochs=20,
    agent_kwargs={
        "bc": {"policy": "PlackettLucePolicy"},
        "dagger": {"policy": "PlackettLucePolicy", "steps_per_round": 250},
        "ppo++": {
            "policy": "PlackettLucePolicy",
            "total_timesteps": 20_000,
            "beta": 0.5,
            "kl_coef": 0.0,
            "learning_rate": 3e-3,
            "n_envs": 8,
            "n_steps": 500,
            "batch_size": 100,
            "n_epochs": 4,
        },
    },
)

# Atari imitation at CPU scale: MinAtar Breakout (10x10 frames) with its lookahead oracle
# (40 points over a 500-step horizon). BC and DAgger train policy="auto"'s learner, the
# DRIL benchmark's (SB3's actor-critic policy on the MinAtar paper's CNN): seeds 0-2 at
# 2,000 labels give BC 34.7 ± 7.5, DAgger 33.3 ± 6.8. With SB3's MLP on the flat frame
# (before the learners were unified) they gave BC 21.1 ± 6.1, DAgger 31.5 ± 3.2
# (benchmarks/RESULTS.md, "The default suite across the one-package refactor").
MINATAR_BREAKOUT = SuiteEntry(
    env_id="MinAtarImitation-Breakout-v0",
    agents=("bc", "dagger"),
    label_budget=2000,
    curve_points=(500, 1000, 1500, 2000),
    eval_episodes=5,
    n_epochs=20,
    agent_kwargs={"dagger": {"steps_per_round": 250}},
    env_kwargs={"horizon": 500},
)

# The DRIL paper's benchmark at CPU scale: score against the number of demonstrations
# (1, 3, 5, 10, 20 episodes) for BC, DAgger and DRIL. ``lfi-gym compare --suite
# atari-imitation`` runs it through lfi_gym.imitation (a demonstrations sweep, not a
# label curve); the entries give the envs, their kwargs and evaluation episodes.
ATARI_IMITATION = tuple(
    SuiteEntry(
        env_id=f"MinAtarImitation-{game}-v0",
        agents=("bc", "dagger", "dril"),
        eval_episodes=10,
        env_kwargs={"horizon": 500},
    )
    for game in ("SpaceInvaders", "Freeway")
)

SUITES: dict[str, tuple[SuiteEntry, ...]] = {
    "default": (CARTPOLE, TINYREVIEWS, RANK_SYNTHETIC, MINATAR_BREAKOUT),
    "atari-imitation": ATARI_IMITATION,
}


def get_suite(name: str) -> tuple[SuiteEntry, ...]:
    """The entries of suite ``name``, or a ValueError listing the suites."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; suites: {', '.join(SUITES)}") from None


def entry_for(env_id: str, suite: str = "default") -> SuiteEntry:
    """The suite's entry for ``env_id``, or a generic entry if the suite has none."""
    for entry in get_suite(suite):
        if entry.env_id == env_id:
            return entry
    return SuiteEntry(env_id=env_id)
