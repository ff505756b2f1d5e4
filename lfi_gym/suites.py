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
from pathlib import Path
from typing import Any

from lfi_gym.agents.dpo import TINYREVIEWS as DPO_TINYREVIEWS
from lfi_gym.agents.ppo import TINYREVIEWS as PPO_TINYREVIEWS
from lfi_gym.envs.validation import check_positive_int

#: Where a curve point's labels come from: single expert labels, or whole expert episodes
#: (the DRIL benchmark's x-axis; a seed's labels are then its episodes' lengths).
CURVE_UNITS = ("expert_labels", "expert_episodes")
#: Scores of a run: the episode return, or a metric the env reports in its last info.
METRICS = ("return", "ndcg@1", "ndcg@5", "ndcg@10")
#: Named ends of a normalisation pair, measured on the agents' evaluation episodes.
REFERENCE_POLICIES = ("random", "expert", "zero-shot")


def agent_key(spec: str) -> str:
    """How an agent is keyed in a suite: a name in lower case, an import path as given."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"an agent is a name or 'module:Class', got {spec!r}")
    spec = spec.strip()
    return spec if ":" in spec else spec.lower()


def _check_choice(value: Any, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
    """One env of a suite and how its agents are compared.

    ``curve_points`` are expert-label counts (or expert episodes, with
    ``curve_unit="expert_episodes"``), strictly increasing and ending at ``label_budget``
    (default: four evenly spaced points). ``n_epochs`` is the number of passes over the
    labelled data per training: BC trains once on its demonstrations for ``n_epochs``
    passes, DAgger retrains ``n_epochs`` passes over its aggregate each round (unless its
    settings say otherwise). ``agent_kwargs`` maps an agent's name (or ``module:Class``) to
    its settings: constructor arguments, plus ``total_timesteps`` (how long ``learn`` runs
    for agents that are not budgeted in labels) and ``env_kwargs`` (their training env).

    ``env_kwargs`` go to ``gym.make`` for evaluation and RL training; ``demo_env_kwargs``
    are added for the env where expert labels are spent (demonstrations, DAgger's rounds,
    a guide's data: e.g. positive train reviews, GRUE's supervised fine-tuning data), so
    that every label-using agent learns from the same expert on the same prompts.
    ``deterministic_eval=False`` evaluates sampled actions (language models: greedy
    decoding is not how they are used). ``metric`` is what a run scores: its return or an
    NDCG the env reports. ``normalization`` is the pair ``(low, high)`` of the normalised
    score ``(x - low) / (high - low)``: a reference policy measured on the same episodes
    for each seed (``"random"``, ``"expert"``, ``"zero-shot"``) or a number;
    ``normalization_source`` says why that pair.
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
    curve_unit: str = "expert_labels"
    metric: str = "return"
    normalization: tuple[str | float, str | float] = ("random", "expert")
    normalization_source: str = "a uniformly random policy (low) and the env's expert (high)"

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
        _check_choice(self.curve_unit, CURVE_UNITS, "curve_unit")
        _check_choice(self.metric, METRICS, "metric")
        pair = tuple(self.normalization)
        if len(pair) != 2:
            raise ValueError(f"normalization is a pair (low, high), got {self.normalization!r}")
        for end in pair:
            if isinstance(end, str):
                _check_choice(end, REFERENCE_POLICIES, "a normalization end")
            elif isinstance(end, bool) or not isinstance(end, (int, float)):
                raise ValueError(
                    f"a normalization end is one of {REFERENCE_POLICIES} or a number, got {end!r}"
                )
        if pair[0] == pair[1]:
            raise ValueError(f"normalization {pair!r}: low and high must differ")
        # Frozen dataclass: normalise through object.__setattr__.
        object.__setattr__(self, "curve_points", points)
        object.__setattr__(self, "agents", tuple(agent_key(a) for a in self.agents))
        object.__setattr__(
            self, "agent_kwargs", {agent_key(k): dict(v) for k, v in self.agent_kwargs.items()}
        )
        object.__setattr__(self, "normalization", pair)

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
            "curve_unit": self.curve_unit,
            "metric": self.metric,
            "normalization": list(self.normalization),
            "normalization_source": self.normalization_source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuiteEntry:
        """The entry :meth:`to_dict` wrote (or a suite file's ``[[env]]`` table, where
        ``id`` may stand for ``env_id``); unknown keys are refused by name."""
        data = dict(data)
        if "id" in data and "env_id" not in data:
            data["env_id"] = data.pop("id")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(
                f"unknown suite entry key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(fields))}"
            )
        if "env_id" not in data:
            raise ValueError("a suite entry needs its env id ('id' or 'env_id')")
        for key in ("agents", "curve_points", "normalization"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


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
def _text_rl(agents: Sequence[str], total_timesteps: int) -> dict[str, dict[str, Any]]:
    """Settings of RL agents on a text env: the LMPolicy from the task's LM, trained on
    train prompts with the CPU preset of ``agents.ppo.TINYREVIEWS``."""
    return {
        name: {
            "policy": "LMPolicy",
            "total_timesteps": total_timesteps,
            "env_kwargs": {"split": "train"},
            **PPO_TINYREVIEWS,
        }
        for name in agents
    }


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
        **_text_rl(("ppo", "ppo++", "aggrevated"), total_timesteps=10_000),
    },
    env_kwargs={"split": "validation"},
    demo_env_kwargs={"split": "train", "labels": [1]},
    deterministic_eval=False,
    normalization=("zero-shot", 1.0),
    normalization_source=(
        "the zero-shot LM (low) and the lexicon reward's maximum, 1 (high): the reference "
        "oracle writes reviews of both sentiments and scores about as much as the zero-shot "
        "LM, so it is no reward maximiser"
    ),
)

# Learning from preferences on TinyReviews: BC is the SFT step; RLHF (PPO on a Bradley-Terry
# reward model, RLHF's default KL of 0.05 to SFT) and DPO learn from 1,000 pairs of SFT
# completions labelled by a perfect simulated teacher (the lexicon reward), the same pairs for
# both; PPO on the gold reward from the shipped LM is the reference point. RLHF runs 10k
# tokens of RL as PPO does, DPO 3 passes over its pairs. benchmarks/rlhf_tinyreviews.py runs
# 300 to 3,000 pairs, with gold-reward PPO from the SFT model.
TINYREVIEWS_PREFERENCES = dataclasses.replace(
    TINYREVIEWS,
    agents=("zero-shot", "bc", "ppo", "rlhf", "dpo"),
    curve_points=(960,),
    agent_kwargs={
        "zero-shot": {"policy": "LMPolicy"},
        "bc": {"policy": "LMPolicy", "batch_size": 32},
        **_text_rl(("ppo",), total_timesteps=10_000),
        "rlhf": {
            "preference_queries": 1000,
            "total_timesteps": 10_000,
            "env_kwargs": {"split": "train"},
            "rl_kwargs": {k: v for k, v in PPO_TINYREVIEWS.items() if k != "kl_coef"},
        },
        "dpo": {
            "preference_queries": 1000,
            "total_timesteps": 3 * 1000,
            "env_kwargs": {"split": "train"},
            **DPO_TINYREVIEWS,
        },
    },
)

# Concept-to-text, where a reward is hard to find by sampling: zero-shot, BC (the shipped
# LM fine-tuned on references written by the reference oracle for train prompts), and RL
# from the shipped LM on train prompts with TinyReviews' CPU preset and 6k tokens, PPO++
# guided by the BC model; one curve point, so that the main job stays within 10 minutes on
# 2 cores (benchmarks/ runs the task at paper-like budgets). The reference oracle scores 1
# on every validation set, so the usual pair (random 0, expert 1) normalises.
TINYCONCEPTS = SuiteEntry(
    env_id="TextGen-TinyConcepts-v0",
    agents=("zero-shot", "bc", "ppo", "ppo++"),
    label_budget=960,
    curve_points=(960,),
    eval_episodes=50,
    n_epochs=3,
    agent_kwargs={
        "zero-shot": {"policy": "LMPolicy"},
        "bc": {"policy": "LMPolicy", "batch_size": 32},
        **_text_rl(("ppo", "ppo++"), total_timesteps=6_000),
    },
    env_kwargs={"split": "validation"},
    demo_env_kwargs={"split": "train"},
    deterministic_eval=False,
)

# Ranking: the Plackett-Luce policy learns from the ideal-ranking oracle; scored by the
# NDCG@10 of its final ranking (the DCG return's spread across queries, 1 to 40, would
# dwarf the differences between agents). PPO++ is guided by the BC model of the whole
# label budget and trains on 20,000 env steps (picks) of its own.
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
    metric="ndcg@10",
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

# The DRIL paper's benchmark at CPU scale (Brantley et al. 2020, Figure 2): score against
# the number of expert episodes (1, 3, 5, 10, 20) for BC, DAgger and DRIL, MinAtar with a
# 500-step horizon and 1M DRIL steps (5% of the paper's 20M; on SpaceInvaders DRIL
# separates from BC between 400k and 1M steps, benchmarks/RESULTS.md). DAgger gets as many
# labels as the seed's episodes hold, in rounds of 250. lfi_gym.imitation analyses it.
ATARI_IMITATION = tuple(
    SuiteEntry(
        env_id=f"MinAtarImitation-{game}-v0",
        agents=("bc", "dagger", "dril"),
        curve_unit="expert_episodes",
        label_budget=20,
        curve_points=(1, 3, 5, 10, 20),
        eval_episodes=10,
        n_epochs=50,
        agent_kwargs={
            "dagger": {"steps_per_round": 250, "beta_rounds": 5, "n_epochs": 10},
            "dril": {"total_timesteps": 1_000_000, "bc_epochs": 50, "ensemble_epochs": 50},
        },
        env_kwargs={"horizon": 500},
    )
    for game in ("SpaceInvaders", "Freeway")
)

#: The DRIL paper's Atari training envs (Brantley et al. 2020): episodic life, fire reset,
#: clipped rewards (unused: DRIL replaces them); evaluation keeps the raw game score.
ATARI_TRAINING = {"episodic_life": True, "fire_reset": True, "clip_rewards": True}

# The same benchmark on the ALE games of the DRIL paper at its setting: 20M DRIL steps on
# the training envs above, 10 evaluation episodes, 20 BC passes (BC, DRIL's members and warm
# start) instead of the MinAtar entries' 50; DAgger in rounds of 1,000 labels, 4 passes
# over its aggregate each round. GPU scale: not run on CPU.
ATARI_IMITATION_ALE = tuple(
    SuiteEntry(
        env_id=f"AtariImitation-{game}-v0",
        agents=("bc", "dagger", "dril"),
        curve_unit="expert_episodes",
        label_budget=20,
        curve_points=(1, 3, 5, 10, 20),
        eval_episodes=10,
        n_epochs=20,
        agent_kwargs={
            "dagger": {"steps_per_round": 1000, "beta_rounds": 5, "n_epochs": 4},
            "dril": {
                "total_timesteps": 20_000_000,
                "bc_epochs": 20,
                "ensemble_epochs": 20,
                "train_env_kwargs": ATARI_TRAINING,
            },
        },
    )
    for game in ("Pong", "Breakout", "SpaceInvaders", "BeamRider", "Qbert", "MsPacman")
)

SUITES: dict[str, tuple[SuiteEntry, ...]] = {
    "default": (CARTPOLE, TINYREVIEWS, TINYCONCEPTS, RANK_SYNTHETIC, MINATAR_BREAKOUT),
    "preferences": (TINYREVIEWS_PREFERENCES,),
    "atari-imitation": ATARI_IMITATION,
    "atari-imitation-ale": ATARI_IMITATION_ALE,
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


#: Suite files are a few KB; anything much larger is not one.
MAX_SUITE_FILE_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class SuiteFile:
    """A suite read from a TOML or JSON file: its entries and, optionally, its seeds."""

    entries: tuple[SuiteEntry, ...]
    seeds: int | None = None


def load_suite_file(path: str | Path) -> SuiteFile:
    """Read a suite file (``.toml`` or ``.json``) naming envs, agents, settings and budgets.

    ```toml
    seeds = 3                          # optional
    [[env]]
    id = "Control-CartPole-v0"
    base = "default"                   # optional: start from that suite's entry for the id
    agents = ["bc", "dagger", "my_agents:MyAgent"]
    label_budget = 300
    [env.agent_kwargs.dagger]
    steps_per_round = 50
    ```

    Every other key of an ``[[env]]`` table is a :class:`SuiteEntry` field. Errors name
    the file, the table and the key.
    """
    import json

    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"{path}: a suite file ends in .toml or .json")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        if path.suffix == ".toml":
            raise ValueError(
                f"{path}: TOML suite files need Python 3.11+; write it as JSON"
            ) from None
        tomllib = None
    if path.stat().st_size > MAX_SUITE_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_SUITE_FILE_BYTES} bytes; not a suite file")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, TypeError) as exc:  # both decoders' errors are ValueErrors
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a suite file is a table with [[env]] entries")
    unknown = sorted(set(data) - {"seeds", "env"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; a suite has seeds and env")
    tables = data.get("env")
    if not isinstance(tables, list) or not tables:
        raise ValueError(f"{path}: no [[env]] entries")
    entries = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise ValueError(f"{path}: env #{i + 1} is not a table")
        table = dict(table)
        try:
            base_name = table.pop("base", None)
            env_id = table.get("id", table.get("env_id"))
            if base_name is None:
                entries.append(SuiteEntry.from_dict(table))
                continue
            base = entry_for(str(env_id), str(base_name))
            budget, points = table.pop("label_budget", None), table.pop("curve_points", None)
            base = base.with_budget(budget, points)
            table.pop("id", None)
            entries.append(SuiteEntry.from_dict({**base.to_dict(), **table, "env_id": env_id}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: env #{i + 1} ({env_id}): {exc}") from None
    seeds = data.get("seeds")
    if seeds is not None:
        seeds = check_positive_int(seeds, f"{path}: seeds")
    return SuiteFile(tuple(entries), seeds)
