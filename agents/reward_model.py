"""Bradley-Terry reward models for the text envs (step 2 of RLHF).

A :class:`RewardModel` scores a prompt and its completion with a scalar. It is trained on a
:class:`~lfi_gym.agents.preferences.Preferences` set by the Bradley-Terry likelihood
(Bradley and Terry 1952; Christiano et al. 2017; Stiennon et al. 2020; Ouyang et al. 2022):
``P(a preferred) = sigma(r(x, a) - r(x, b))`` (:func:`bradley_terry_loss`). It follows
TRL's convention, a transformers ``AutoModelForSequenceClassification`` with
``num_labels=1``, and is built from the SFT policy (its transformer, a fresh scalar head).

Once trained it is a reward function of the text envs (the keyword contract of
:mod:`lfi_gym.envs.text.rewards`)::

    rm = RewardModel.from_policy(LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env))
    rm.fit(preferences)
    rm.center_on(sft_policy, env, n=256)  # mean reward 0 on the SFT policy's outputs
    env = gym.make("TextGen-TinyReviews-v0", reward=rm)

A pair is scored on exactly the env's tokens: ``prompt_ids + completion_ids`` (EOS included
where the episode ended on it), the score read at the last real token by the attention mask.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.utils import get_device

from lfi_gym.agents.env_kinds import text_task
from lfi_gym.agents.files import atomic_write
from lfi_gym.agents.preferences import Preferences, PreferencesError, tokenizer_digest
from lfi_gym.agents.serialization import data_bytes, decode_value, tensors_from_arrays
from lfi_gym.envs.codec import CodecError, parse_json, tree_from_bytes
from lfi_gym.envs.validation import check_positive_float, check_positive_int

__all__ = ["RewardModel", "RewardModelError", "bradley_terry_loss"]

#: Our settings file in a saved reward model's directory (its absence: not one of ours).
SETTINGS_FILE = "lfi_reward_model.json"
#: Optimizer and RNG states, so that training resumes exactly after a load.
TRAINER_FILE = "reward_trainer.data"
FORMAT = "lfi-gym.reward-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
)

_MIB = 1 << 20
#: Caps on what loading reads: JSON files, each tokenizer file, the weights' safetensors
#: header, the trainer state per parameter byte (Adam keeps two moments).
MAX_JSON_BYTES = _MIB
MAX_TOKENIZER_FILE_BYTES = 64 * _MIB
WEIGHTS_HEADER_ALLOWANCE = _MIB
TRAINER_BYTES_PER_PARAMETER_BYTE = 4

#: Training defaults, sized for TextGen-TinyReviews-v0 on a CPU (see :meth:`RewardModel.fit`).
DEFAULT_EPOCHS = 4
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_BATCH_SIZE = 32


#: What a non-text env is told.
_NOT_TEXT = "reward models are for text envs"


class RewardModelError(ValueError):
    """A reward model was misused: bad input, another tokenizer, or a directory not ours."""


def bradley_terry_loss(
    rewards_a: torch.Tensor, rewards_b: torch.Tensor, labels: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Mean Bradley-Terry negative log-likelihood of preference labels.

    ``labels[i]`` is P(a preferred) for pair ``i``; the loss of a pair is
    ``-(y log sigma(ra - rb) + (1 - y) log sigma(rb - ra))``. For ``y = 1`` this is the
    usual ``-log sigma(r_w - r_l)`` (Ouyang et al. 2022, Eq. 1; TRL's RewardTrainer); for
    ``y = 0`` the same with a and b swapped; for ``y = 0.5`` (the teacher found them equal)
    its gradient ``sigma(ra - rb) - 0.5`` pulls the two rewards together, vanishing only
    when they are equal. Computed with ``logsigmoid``, which neither overflows nor takes
    the log of 0 for large margins.
    """
    if not isinstance(rewards_a, torch.Tensor) or not isinstance(rewards_b, torch.Tensor):
        raise TypeError("rewards_a and rewards_b must be torch tensors (one reward per pair)")
    if rewards_a.shape != rewards_b.shape or rewards_a.ndim != 1:
        raise ValueError(
            f"rewards_a and rewards_b must be 1-D and of one shape, got {tuple(rewards_a.shape)} "
            f"and {tuple(rewards_b.shape)}"
        )
    if rewards_a.numel() == 0:
        raise ValueError("the Bradley-Terry loss needs at least one pair")
    if not isinstance(labels, torch.Tensor):
        labels = torch.from_numpy(np.array(labels, dtype=np.float64))  # a writable copy
    y = labels.to(dtype=rewards_a.dtype, device=rewards_a.device).reshape(-1)
    if y.shape != rewards_a.shape:
        raise ValueError(f"{y.numel()} labels for {rewards_a.numel()} pairs")
    if bool(((y < 0) | (y > 1) | ~torch.isfinite(y)).any()):
        raise ValueError("labels are probabilities that a is preferred: each must be in [0, 1]")
    margin = rewards_a - rewards_b
    return -(y * F.logsigmoid(margin) + (1 - y) * F.logsigmoid(-margin)).mean()


class RewardModel:
    """An ensemble of ``n_models`` scalar sequence classifiers sharing one tokenizer.

    The reward of a (prompt, completion) is the mean of the members' scores minus
    :attr:`offset` (set by :meth:`center` / :meth:`center_on`); :meth:`disagreement` is
    their standard deviation. One member (the default) is a plain reward model; several,
    each from its own seeded head and optionally trained on its own bootstrap resample of
    the pairs, give an uncertainty estimate (the ensemble of Christiano et al. 2017, who
    average normalised members and bootstrap the data).

    Build one with :meth:`from_policy` (from the SFT policy) or :meth:`from_pretrained`
    (a directory written by :meth:`save_pretrained`, or a hub name). ``models`` are
    transformers sequence classifiers with one label whose head is a linear ``score``
    layer on the base model's last hidden state (GPT-2, Llama, Mistral, Qwen: TRL's
    reward models).

    Calling it follows the env reward contract: ``rm(prompts=..., completions=...,
    completion_ids=...) -> list[float]``, batched by ``batch_size`` under
    ``torch.inference_mode``. The prompt's ids are the prompt text encoded as the env
    encodes prompts (``tokenizer(text)`` with special tokens), or ``prompt_ids=`` when
    given; the completion's are ``completion_ids`` as the env generated them.
    """

    name = "reward-model"

    def __init__(
        self,
        models: Sequence[Any],
        tokenizer: Any,
        *,
        env_id: str | None = None,
        offset: float = 0.0,
        seed: int = 0,
        bootstrap: bool = False,
        batch_size: int = 64,
    ) -> None:
        if not models:
            raise RewardModelError("a reward model needs at least one member model")
        if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
            raise RewardModelError(
                "a reward model needs the tokenizer its token ids come from (the env's: "
                "env.unwrapped.task.tokenizer)"
            )
        for model in models:
            _check_architecture(model)
        self.models = list(models)
        self.tokenizer = tokenizer
        self.tokenizer_digest = tokenizer_digest(tokenizer)
        self.env_id = env_id
        self.offset = float(offset)
        self.seed = int(seed)
        self.bootstrap = bool(bootstrap)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        #: One record per training epoch: mean loss, train accuracy, held-out metrics.
        self.history: list[dict[str, float | None]] = []
        self.epochs_done = 0
        self.learning_rate: float | None = None
        self._optimizers: list[torch.optim.Optimizer] | None = None
        self._rngs = [np.random.default_rng([self.seed, 0, k]) for k in range(self.n_models)]
        for model in self.models:
            model.eval()  # no dropout, in training too (TRL's RewardConfig disable_dropout)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_policy(
        cls,
        policy: Any,
        env: gym.Env | gym.vector.VectorEnv | None = None,
        *,
        n_models: int = 1,
        seed: int = 0,
        bootstrap: bool = False,
        batch_size: int = 64,
    ) -> RewardModel:
        """A reward model initialised from the SFT policy (an ``LMPolicy`` of a GPT-2).

        Each member is a ``GPT2ForSequenceClassification`` with ``num_labels=1`` whose
        transformer weights are a copy of the policy LM's and whose ``score`` head is
        drawn from N(0, 1 / (d_model + 1)) with its own seed (derived from ``seed``; the
        head initialisation of Ziegler et al. 2019's released code). Dropout is off (TRL's
        ``RewardConfig.disable_dropout``). ``env`` (the env the preferences come from) sets
        the env id and the tokenizer, which must be the policy's.
        """
        from transformers import GPT2ForSequenceClassification, GPT2LMHeadModel

        model = getattr(policy, "model", None)
        if not isinstance(model, GPT2LMHeadModel):
            raise RewardModelError(
                "from_policy takes an LMPolicy of a GPT-2 causal LM (e.g. "
                "LMPolicy.from_pretrained('lfi-gym/tinyreviews-lm', env=env)); got "
                f"{type(model).__name__ if model is not None else type(policy).__name__}. "
                "Load other architectures with RewardModel.from_pretrained"
            )
        check_positive_int(n_models, "n_models")
        tokenizer = getattr(policy, "tokenizer", None)
        env_id = None
        if env is not None:
            task = text_task(env, _NOT_TEXT, RewardModelError)
            env_id = task.name
            if tokenizer is not None and tokenizer_digest(tokenizer) != tokenizer_digest(
                task.tokenizer
            ):
                raise RewardModelError(
                    f"the policy's tokenizer differs from {env_id}'s: build the reward model "
                    "from a policy of this env (LMPolicy.from_pretrained(..., env=env))"
                )
            tokenizer = task.tokenizer
        if tokenizer is None:
            raise RewardModelError(
                "the policy has no tokenizer; pass the env its preferences come from: "
                "RewardModel.from_policy(policy, env)"
            )
        config = model.config.__class__.from_dict(model.config.to_dict())
        config.num_labels = 1
        config.architectures = ["GPT2ForSequenceClassification"]
        for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout"):
            setattr(config, key, 0.0)
        trunk = {k: v.detach().cpu() for k, v in model.transformer.state_dict().items()}
        members = []
        for k in range(n_models):
            with torch.random.fork_rng(devices=[]):  # building draws weights: not from ours
                member = GPT2ForSequenceClassification(config)
            member.transformer.load_state_dict(trunk)
            generator = torch.Generator().manual_seed(_member_seed(seed, 2, k))
            with torch.no_grad():
                std = 1.0 / math.sqrt(config.n_embd + 1)
                weight = torch.randn(member.score.weight.shape, generator=generator) * std
                member.score.weight.copy_(weight)
            members.append(member.to(next(model.parameters()).device))
        return cls(
            members,
            tokenizer,
            env_id=env_id,
            seed=seed,
            bootstrap=bootstrap,
            batch_size=batch_size,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
    ) -> RewardModel:
        """Load a reward model saved by :meth:`save_pretrained` (a directory or a hub name).

        Nothing is unpickled: the configs are JSON, rebuilt only as transformers' own model
        types; the weights are safetensors read into the model built from them, each file
        under a size cap; the trainer state is an lfi-gym data blob. A directory without
        our settings file is refused (wrap a plain transformers classifier with
        ``lfi_gym.envs.text.rewards.SequenceClassifierReward`` instead).
        """
        path = _resolve(name_or_path)
        settings = _read_settings(path)
        members = [_load_member(path / sub if sub else path, path) for sub in settings["members"]]
        tokenizer = _load_tokenizer(path)
        if tokenizer_digest(tokenizer) != settings["tokenizer_digest"]:
            raise RewardModelError(
                f"{path}: the saved tokenizer does not match the one the reward model was "
                "trained with (its digest differs); the directory was edited or mixed up"
            )
        rm = cls(
            members,
            tokenizer,
            env_id=settings["env_id"],
            offset=settings["offset"],
            seed=settings["seed"],
            bootstrap=settings["bootstrap"],
            batch_size=settings["batch_size"] if batch_size is None else batch_size,
        )
        rm.epochs_done = settings["epochs_done"]
        rm.learning_rate = settings["learning_rate"]
        rm.history = settings["history"]
        if (path / TRAINER_FILE).is_file():
            rm._load_trainer_state(path / TRAINER_FILE)
        return rm.to(get_device(device))

    def to(self, device: str | torch.device) -> RewardModel:
        for model in self.models:
            model.to(device)
        if self._optimizers is not None:  # moments follow their parameters
            for optimizer in self._optimizers:
                for state in optimizer.state.values():
                    for key, value in state.items():
                        if isinstance(value, torch.Tensor) and key != "step":
                            state[key] = value.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.models[0].parameters()).device

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def __name__(self) -> str:
        # TRL names a callable reward's logged metrics after its __name__.
        return self.name

    def __repr__(self) -> str:
        return (
            f"RewardModel({self.n_models} member(s), env {self.env_id}, offset "
            f"{self.offset:.4g}, {self.epochs_done} epoch(s) trained)"
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for model in self.models for p in model.parameters()]

    # -- saving ---------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the reward model as a Hugging Face model directory.

        The first member is ``config.json`` + ``model.safetensors`` at the top (so
        ``AutoModelForSequenceClassification.from_pretrained(directory)`` loads it, as TRL
        does; without our offset and the other members), member ``k`` the same in
        ``member-k/``; then the tokenizer, :data:`TRAINER_FILE` (optimizer and RNG states:
        training resumes exactly) and :data:`SETTINGS_FILE` (offset, ensemble size, env id,
        tokenizer digest, training settings and history).
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        subdirs = [""] + [f"member-{k}" for k in range(1, self.n_models)]
        for sub, model in zip(subdirs, self.models, strict=True):
            model.save_pretrained(path / sub if sub else path)
        self.tokenizer.save_pretrained(path)
        with atomic_write(path / TRAINER_FILE) as handle:
            handle.write(self._trainer_bytes())
        with atomic_write(path / SETTINGS_FILE) as handle:
            handle.write(json.dumps(self._settings(), indent=2).encode() + b"\n")
        return path

    # What save_pretrained writes besides the weights, as values and bytes, so that a
    # reward model can also be stored inside another file (an RLHF agent file).

    def _settings(self) -> dict[str, Any]:
        """:data:`SETTINGS_FILE`'s content (JSON-able)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "env_id": self.env_id,
            "tokenizer_digest": self.tokenizer_digest,
            "n_models": self.n_models,
            "members": [""] + [f"member-{k}" for k in range(1, self.n_models)],
            "offset": self.offset,
            "seed": self.seed,
            "bootstrap": self.bootstrap,
            "batch_size": self.batch_size,
            "epochs_done": self.epochs_done,
            "learning_rate": self.learning_rate,
            "history": self.history,
        }

    def _restore_settings(self, settings: Any, label: str) -> None:
        """Take the offset, training progress and settings of :meth:`_settings`'s output
        (checked) into this reward model, whose members and tokenizer must be the same."""
        _check_settings(settings, label)
        if settings["tokenizer_digest"] != self.tokenizer_digest:
            raise RewardModelError(f"{label}: saved with another tokenizer than this one's")
        if settings["n_models"] != self.n_models:
            raise RewardModelError(
                f"{label}: {settings['n_models']} member(s), this reward model has {self.n_models}"
            )
        self.env_id = settings["env_id"]
        self.offset = float(settings["offset"])
        self.seed = settings["seed"]
        self.bootstrap = settings["bootstrap"]
        self.batch_size = settings["batch_size"]
        self.epochs_done = settings["epochs_done"]
        self.learning_rate = settings["learning_rate"]
        self.history = settings["history"]

    def _trainer_bytes(self) -> bytes:
        """:data:`TRAINER_FILE`'s bytes: the members' RNG and optimizer states."""
        trainer = {
            "rngs": [rng.bit_generator.state for rng in self._rngs],
            "optimizers": None
            if self._optimizers is None
            else [optimizer.state_dict() for optimizer in self._optimizers],
        }
        return data_bytes(trainer)

    def _trainer_cap(self) -> int:
        """The most bytes a trainer state of this reward model may take (Adam: two moments)."""
        parameter_bytes = sum(p.numel() * p.element_size() for p in self.parameters())
        return TRAINER_BYTES_PER_PARAMETER_BYTE * parameter_bytes + MAX_JSON_BYTES

    def _load_trainer_state(self, file: Path) -> None:
        self._restore_trainer_state(_read_capped(file, self._trainer_cap()), str(file))

    def _restore_trainer_state(self, data: bytes, label: str) -> None:
        """Restore :meth:`_trainer_bytes`'s states (``label`` names the source in errors)."""
        cap = self._trainer_cap()
        try:
            trainer = tree_from_bytes(data, max_bytes=cap, label=label)
            if not isinstance(trainer, dict) or set(trainer) != {"rngs", "optimizers"}:
                raise ValueError("expected 'rngs' and 'optimizers'")
            rngs = trainer["rngs"]
            if not isinstance(rngs, list) or len(rngs) != self.n_models:
                raise ValueError(f"expected {self.n_models} RNG states")
            for rng, state in zip(self._rngs, rngs, strict=True):
                rng.bit_generator.state = state
            states = trainer["optimizers"]
            if states is not None:
                if not isinstance(states, list) or len(states) != self.n_models:
                    raise ValueError(f"expected {self.n_models} optimizer states")
                if self.learning_rate is None:
                    raise ValueError("optimizer states without a learning rate")
                self._optimizers = self._new_optimizers(self.learning_rate)
                for optimizer, state in zip(self._optimizers, states, strict=True):
                    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
                        raise ValueError("malformed optimizer state")
                    optimizer.load_state_dict(
                        {
                            "state": {
                                int(k): tensors_from_arrays(v) for k, v in state["state"].items()
                            },
                            "param_groups": tensors_from_arrays(state["param_groups"]),
                        }
                    )
        except (CodecError, TypeError, ValueError, KeyError, AttributeError, RuntimeError) as e:
            raise RewardModelError(f"{label}: malformed trainer state ({e})") from None

    # -- the env and the data -------------------------------------------------------------

    def check_task(self, task: Any) -> None:
        """Refuse a text task whose tokenizer is not this reward model's (token ids would
        mean other text). The text envs call it at ``gym.make(id, reward=rm)``."""
        if tokenizer_digest(task.tokenizer) != self.tokenizer_digest:
            raise RewardModelError(
                f"this reward model was trained with another tokenizer than {task.name}'s (its "
                "vocabulary differs), so it would score other text than the env's; train a "
                "reward model on this env (RewardModel.from_policy(LMPolicy.from_pretrained("
                "..., env=env), env)) or make the env with the reward model's tokenizer"
            )

    def check_env(self, env: gym.Env | gym.vector.VectorEnv) -> None:
        """:meth:`check_task` on a text env (single or vector)."""
        self.check_task(text_task(env, _NOT_TEXT, RewardModelError))

    def _check_preferences(self, preferences: Any, what: str) -> None:
        if not isinstance(preferences, Preferences):
            raise RewardModelError(
                f"{what} must be a Preferences set (lfi_gym.agents.preferences), got "
                f"{type(preferences).__name__}"
            )
        if len(preferences) == 0:  # Preferences refuses it too; a subclass might not
            raise RewardModelError(f"{what} is empty: a reward model needs labelled pairs")
        if self.env_id is not None:
            preferences.check_env(self.env_id)
        if preferences.tokenizer_digest != self.tokenizer_digest:
            raise PreferencesError(
                f"{what} were tokenized with another tokenizer than this reward model's (the "
                "vocabulary differs), so their token ids mean other text: collect them on the "
                "env the reward model was built for"
            )

    # -- scoring --------------------------------------------------------------------------

    def _score(self, model: Any, sequences: Sequence[np.ndarray]) -> torch.Tensor:
        """One member's scores of token sequences, read at each one's last real token.

        Rows are right-padded and the position of the last real token comes from the
        attention mask alone: GPT2ForSequenceClassification's own pooling looks for the
        last token that is not ``pad_token_id``, and GPT-2 tokenizers (TinyReviews' too)
        pad with EOS, so it would skip an EOS that ends a completion.
        """
        device = self.device
        lengths = torch.tensor([len(s) for s in sequences], device=device)
        ids = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, sequence in enumerate(sequences):
            ids[i, : len(sequence)] = torch.from_numpy(sequence).to(device)
            mask[i, : len(sequence)] = 1
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        last = mask.sum(1) - 1
        pooled = hidden[torch.arange(len(sequences), device=device), last]
        return model.score(pooled).squeeze(-1).float()

    def _sequences(
        self, prompt_ids: Sequence[Any], completion_ids: Sequence[Any]
    ) -> list[np.ndarray]:
        if len(prompt_ids) != len(completion_ids):
            raise RewardModelError(
                f"{len(prompt_ids)} prompts for {len(completion_ids)} completions: pass one "
                "prompt per completion"
            )
        config = self.models[0].config
        vocab = int(config.vocab_size)
        limit = getattr(config, "n_positions", None) or getattr(
            config, "max_position_embeddings", None
        )
        out = []
        for i, (prompt, completion) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
            sequence = np.concatenate([_token_ids(prompt, i), _token_ids(completion, i)])
            if sequence.size == 0:
                raise RewardModelError(f"row {i}: the prompt and the completion are both empty")
            if sequence.max() >= vocab:
                raise RewardModelError(
                    f"row {i}: token id {int(sequence.max())} is outside the reward model's "
                    f"vocabulary of {vocab}: the ids come from another tokenizer"
                )
            if limit is not None and sequence.size > int(limit):
                raise RewardModelError(
                    f"row {i}: prompt + completion is {sequence.size} tokens, more than the "
                    f"reward model's {limit} positions"
                )
            out.append(sequence)
        return out

    def member_rewards(
        self, prompt_ids: Sequence[Any], completion_ids: Sequence[Any]
    ) -> np.ndarray:
        """Each member's raw score (no offset) of each row: shape (n_models, rows)."""
        sequences = self._sequences(prompt_ids, completion_ids)
        out = np.empty((self.n_models, len(sequences)), dtype=np.float64)
        with torch.inference_mode():
            for k, model in enumerate(self.models):
                for start in range(0, len(sequences), self.batch_size):
                    chunk = sequences[start : start + self.batch_size]
                    out[k, start : start + len(chunk)] = self._score(model, chunk).cpu().numpy()
        return out

    def rewards(self, prompt_ids: Sequence[Any], completion_ids: Sequence[Any]) -> np.ndarray:
        """The reward of each row: the members' mean score minus :attr:`offset`."""
        return self.member_rewards(prompt_ids, completion_ids).mean(0) - self.offset

    def _prompt_ids(self, prompts: Any, prompt_ids: Any) -> Sequence[Any]:
        if prompt_ids is not None:
            return prompt_ids
        if prompts is None:
            raise RewardModelError("pass prompts= (texts, as the env does) or prompt_ids=")
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise RewardModelError(
                "prompts must be a list of str, one per row (conversational prompts are not "
                "supported); or pass prompt_ids="
            )
        # As TextTask.encode encodes a prompt: with the tokenizer's special tokens.
        return [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]

    def __call__(
        self,
        prompts: Sequence[str] | None = None,
        completions: Sequence[str] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        *,
        prompt_ids: Sequence[Sequence[int]] | None = None,
        **unused: Any,
    ) -> list[float]:
        """Rewards of finished episodes (the env reward contract; ``completions`` and the
        other keywords the env passes are accepted and not used)."""
        if completion_ids is None:
            raise RewardModelError(
                "a reward model scores token ids: pass completion_ids= (the text envs and "
                "TRL's GRPOTrainer pass it)"
            )
        if len(completion_ids) == 0:
            return []
        ids = self._prompt_ids(prompts, prompt_ids)
        return self.rewards(ids, completion_ids).tolist()

    def disagreement(
        self,
        prompts: Sequence[str] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        *,
        prompt_ids: Sequence[Sequence[int]] | None = None,
    ) -> list[float]:
        """The members' standard deviation (ddof 0) per row: 0 with one member."""
        if completion_ids is None:
            raise RewardModelError("pass completion_ids=")
        ids = self._prompt_ids(prompts, prompt_ids)
        return self.member_rewards(ids, completion_ids).std(0).tolist()

    # -- training -------------------------------------------------------------------------

    def _new_optimizers(self, learning_rate: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(model.parameters(), lr=learning_rate) for model in self.models]

    def _member_rows(self, member: int, n: int) -> np.ndarray:
        """The rows member ``member`` trains on: all, or its bootstrap resample (fixed by
        the seed and the set's size, so repeated fits use the same resample)."""
        if not self.bootstrap:
            return np.arange(n)
        return np.random.default_rng([self.seed, 1, member, n]).integers(n, size=n)

    def fit(
        self,
        preferences: Preferences,
        epochs: int = DEFAULT_EPOCHS,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int | None = None,
        held_out: Preferences | None = None,
        verbose: int = 0,
    ) -> RewardModel:
        """Train every member on ``preferences`` by the Bradley-Terry loss with Adam.

        Papers: Stiennon et al. 2020 and Ouyang et al. 2022 train their 1.3B-6.7B reward
        models with Adam for a single epoch over tens of thousands of comparisons. The
        defaults here are CPU-sized for TextGen-TinyReviews-v0's 1M-parameter LM and the
        few hundred pairs a test or a benchmark labels: ``epochs=4``, ``batch_size=32``,
        ``learning_rate=1e-4`` (TRL's ``RewardConfig`` default), constant. Pairs labelled 0.5 pull
        the two rewards together. Each epoch visits each member's rows (all, or its
        bootstrap resample) in an order drawn from the member's RNG; ``seed`` re-seeds those
        RNGs, None continues them, so that "fit k epochs, save, load, fit k more" equals
        "fit 2k epochs". The optimizers persist across calls (their moments are saved).
        Each epoch appends a record to :attr:`history`: mean loss and train accuracy, and
        with ``held_out`` its loss and accuracy; ``verbose=1`` prints it.
        """
        self._check_preferences(preferences, "preferences")
        if held_out is not None:
            self._check_preferences(held_out, "held_out")
        epochs = check_positive_int(epochs, "epochs")
        learning_rate = check_positive_float(learning_rate, "learning_rate")
        batch_size = check_positive_int(batch_size, "batch_size")
        if self.env_id is None:
            self.env_id = preferences.env_id
        if seed is not None:
            self._rngs = [np.random.default_rng([int(seed), 0, k]) for k in range(self.n_models)]
        if self._optimizers is None:
            self._optimizers = self._new_optimizers(learning_rate)
        else:
            for optimizer in self._optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
        self.learning_rate = learning_rate
        seq_a = self._sequences(preferences.prompt_ids, preferences.completion_ids_a)
        seq_b = self._sequences(preferences.prompt_ids, preferences.completion_ids_b)
        labels = preferences.labels
        n = len(preferences)
        for _ in range(epochs):
            loss_sum = correct = counted = 0.0
            seen = 0
            for k, (model, optimizer) in enumerate(zip(self.models, self._optimizers, strict=True)):
                rows = self._member_rows(k, n)
                order = rows[self._rngs[k].permutation(len(rows))]
                for start in range(0, len(order), batch_size):
                    batch = order[start : start + batch_size]
                    scores = self._score(
                        model, [seq_a[i] for i in batch] + [seq_b[i] for i in batch]
                    )
                    reward_a, reward_b = scores[: len(batch)], scores[len(batch) :]
                    loss = bradley_terry_loss(reward_a, reward_b, labels[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    loss_sum += float(loss.detach()) * len(batch)
                    seen += len(batch)
                    hits, total = _ranked_as_labelled(
                        reward_a.detach().cpu().numpy(),
                        reward_b.detach().cpu().numpy(),
                        labels[batch],
                    )
                    correct += hits
                    counted += total
            self.epochs_done += 1
            record = {
                "epoch": self.epochs_done,
                "loss": loss_sum / seen,
                # None, not NaN, where every pair is a tie: the history is saved as JSON.
                "accuracy": correct / counted if counted else None,
            }
            if held_out is not None:
                record.update({f"held_out_{k}": v for k, v in self.evaluate(held_out).items()})
            self.history.append(record)
            if verbose:
                print(
                    "reward model: "
                    + ", ".join(
                        f"{k} {v}" if v is None or k == "epoch" else f"{k} {v:.4g}"
                        for k, v in record.items()
                    )
                )
        return self

    def evaluate(self, preferences: Preferences) -> dict[str, float | None]:
        """Bradley-Terry loss of the ensemble's rewards and accuracy on ``preferences``
        (None where every pair is a tie)."""
        self._check_preferences(preferences, "preferences")
        reward_a = self.rewards(preferences.prompt_ids, preferences.completion_ids_a)
        reward_b = self.rewards(preferences.prompt_ids, preferences.completion_ids_b)
        loss = bradley_terry_loss(
            torch.from_numpy(reward_a), torch.from_numpy(reward_b), preferences.labels
        )
        hits, total = _ranked_as_labelled(reward_a, reward_b, preferences.labels)
        return {"loss": float(loss), "accuracy": hits / total if total else None}

    def accuracy(self, preferences: Preferences) -> float:
        """Fraction of the rows with a strict preference (label 0 or 1; ties left out)
        whose preferred completion gets the higher reward; equal rewards count one half."""
        self._check_preferences(preferences, "preferences")
        if not np.any(preferences.labels != 0.5):
            raise RewardModelError(
                "every pair is labelled equal (0.5): accuracy needs pairs with a preference"
            )
        return self.evaluate(preferences)["accuracy"]

    # -- centring -------------------------------------------------------------------------

    def center(
        self,
        prompts: Sequence[str] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        *,
        prompt_ids: Sequence[Sequence[int]] | None = None,
    ) -> float:
        """Set :attr:`offset` so that the mean reward over these outputs is 0; returns it.

        The Bradley-Terry loss is blind to a constant shift, so the level is fixed before
        RL: Ziegler et al. 2019 normalise the reward to mean 0 on samples of the initial
        policy (what :meth:`center_on` does), Stiennon et al. 2020 on the dataset's
        reference summaries and Ouyang et al. 2022 on the labelers' demonstrations (pass
        those here).
        """
        if completion_ids is None or len(completion_ids) == 0:
            raise RewardModelError("center needs at least one output: pass completion_ids=")
        ids = self._prompt_ids(prompts, prompt_ids)
        self.offset = float(self.member_rewards(ids, completion_ids).mean(0).mean())
        return self.offset

    def center_on(
        self,
        policy: Any,
        env: gym.Env | gym.vector.VectorEnv,
        n: int = 256,
        *,
        seed: int = 0,
        num_envs: int = 32,
    ) -> float:
        """:meth:`center` on ``n`` completions that ``policy`` (the SFT policy) samples on
        ``env``'s prompts, seeded ``seed, seed + 1, ...`` per episode (Ziegler et al. 2019).
        ``env`` is a text env, single or vector; a single env's task is run ``num_envs``
        rows at a time."""
        from lfi_gym.agents.alignment_eval import sample

        check_positive_int(n, "n")
        self.check_env(env)
        samples = sample(policy, env, n, seed=seed, num_envs=num_envs)
        return self.center(prompt_ids=samples.prompt_ids, completion_ids=samples.completion_ids)


# -- helpers ----------------------------------------------------------------------------------


def _ranked_as_labelled(
    reward_a: np.ndarray, reward_b: np.ndarray, labels: np.ndarray
) -> tuple[float, int]:
    """(hits, rows) over the rows with a strict preference; an equal reward is half a hit."""
    strict = labels != 0.5
    margin = np.where(labels[strict] == 1.0, 1.0, -1.0) * (reward_a[strict] - reward_b[strict])
    return float(np.sum(margin > 0) + 0.5 * np.sum(margin == 0)), int(strict.sum())


def _member_seed(seed: int, purpose: int, member: int) -> int:
    return int(np.random.SeedSequence([int(seed), purpose, member]).generate_state(1)[0])


def _token_ids(values: Any, row: int) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise RewardModelError(f"row {row}: token ids must be a 1-D list of ints >= 0")
    return array.astype(np.int64)


def _check_architecture(model: Any) -> None:
    config = getattr(model, "config", None)
    score = getattr(model, "score", None)
    if (
        config is None
        or int(getattr(config, "num_labels", 0)) != 1
        or not isinstance(score, torch.nn.Linear)
        or score.out_features != 1
        or getattr(model, "base_model", model) is model
    ):
        raise RewardModelError(
            f"a reward model member must be a transformers sequence classifier with num_labels=1 "
            f"and a linear `score` head on its base model (GPT-2, Llama, Mistral, Qwen); got "
            f"{type(model).__name__}"
        )


def _read_capped(file: Path, cap: int) -> bytes:
    size = file.stat().st_size
    if size > cap:
        raise RewardModelError(f"{file}: {size} bytes exceed the cap of {cap} bytes")
    with open(file, "rb") as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise RewardModelError(f"{file}: grew past the cap of {cap} bytes while read")
    return data


def _read_json(file: Path) -> Any:
    try:
        return parse_json(_read_capped(file, MAX_JSON_BYTES))
    except CodecError as exc:
        raise RewardModelError(f"{file}: malformed JSON ({exc})") from None


def _download(name: str, **kwargs: Any) -> str:
    """A hub snapshot of a saved reward model (our files only), as a local directory."""
    from huggingface_hub import snapshot_download

    patterns = [SETTINGS_FILE, TRAINER_FILE, CONFIG_FILE, WEIGHTS_FILE, *TOKENIZER_FILES]
    patterns += [f"member-*/{CONFIG_FILE}", f"member-*/{WEIGHTS_FILE}"]
    return snapshot_download(name, allow_patterns=patterns, **kwargs)


# The offline-first loader names the class in its hint for making a local copy.
_download.__qualname__ = "RewardModel._download"


def _resolve(name_or_path: str | os.PathLike) -> Path:
    from lfi_gym.envs.text.hub import load_pretrained

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path must be a directory or a hub name, got {type(name_or_path).__name__}"
        )
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise RewardModelError(f"{path} is a file; pass the directory save_pretrained wrote")
    return Path(
        load_pretrained(
            _download, os.fspath(name_or_path), asset="reward model", argument="name_or_path"
        )
    )


def _read_settings(path: Path) -> dict[str, Any]:
    file = path / SETTINGS_FILE
    if not file.is_file():
        raise RewardModelError(
            f"{path} is not a reward model saved by lfi-gym's RewardModel.save_pretrained (no "
            f"{SETTINGS_FILE}); build one with RewardModel.from_policy and train it, or wrap a "
            "plain transformers classifier with lfi_gym.envs.text.rewards.SequenceClassifierReward"
        )
    settings = _read_json(file)
    _check_settings(settings, str(file))
    return settings


def _check_settings(settings: Any, label: str) -> None:
    """Refuse settings that :meth:`RewardModel._settings` would not write."""
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        raise RewardModelError(f"{label}: not an lfi-gym reward model settings file")
    if settings.get("version") != FORMAT_VERSION:
        raise RewardModelError(
            f"{label}: format version {settings.get('version')!r}; this lfi-gym reads "
            f"version {FORMAT_VERSION}"
        )
    members = settings.get("members")
    expected = [""] + [f"member-{k}" for k in range(1, len(members or []))]
    checks = {
        "env_id": settings.get("env_id") is None or isinstance(settings.get("env_id"), str),
        "tokenizer_digest": isinstance(settings.get("tokenizer_digest"), str),
        "members": isinstance(members, list) and members == expected and members != [],
        "n_models": settings.get("n_models") == len(members or []),
        "offset": _is_finite_number(settings.get("offset")),
        "seed": _is_int(settings.get("seed")),
        "bootstrap": isinstance(settings.get("bootstrap"), bool),
        "batch_size": _is_int(settings.get("batch_size")) and settings["batch_size"] >= 1,
        "epochs_done": _is_int(settings.get("epochs_done")) and settings["epochs_done"] >= 0,
        "learning_rate": settings.get("learning_rate") is None
        or _is_finite_number(settings.get("learning_rate")),
        "history": isinstance(settings.get("history"), list),
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise RewardModelError(f"{label}: malformed or missing setting {bad[0]!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_member(directory: Path, root: Path) -> Any:
    """One member: its config (transformers' own model types only), a model built from it,
    and its safetensors weights, capped at the model's size."""
    from safetensors.torch import load
    from transformers import AutoModelForSequenceClassification

    config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for file in (config_file, weights_file):
        if not file.is_file():
            raise RewardModelError(f"{root}: missing {file.relative_to(root)}")
    raw = _read_json(config_file)
    try:
        config = decode_value({"transformers_config": raw})
    except (ValueError, TypeError) as exc:
        raise RewardModelError(f"{config_file}: {exc}") from None
    if int(getattr(config, "num_labels", 0)) != 1:
        raise RewardModelError(
            f"{config_file}: a reward model has num_labels=1, this config {config.num_labels}"
        )
    try:
        with torch.random.fork_rng(devices=[]):
            model = AutoModelForSequenceClassification.from_config(config)
    except ValueError as exc:
        raise RewardModelError(f"{config_file}: no sequence classifier for it ({exc})") from None
    _check_architecture(model)
    expected = model.state_dict()
    cap = sum(t.numel() * t.element_size() for t in expected.values()) + WEIGHTS_HEADER_ALLOWANCE
    try:
        tensors = load(_read_capped(weights_file, cap))
    except Exception as exc:  # safetensors raises its own error types
        raise RewardModelError(f"{weights_file}: not safetensors weights ({exc})") from None
    if set(tensors) != set(expected):
        extra = sorted(set(tensors) - set(expected))
        missing = sorted(set(expected) - set(tensors))
        problem = f"unexpected tensor {extra[0]!r}" if extra else f"no tensor {missing[0]!r}"
        raise RewardModelError(f"{weights_file}: {problem} for a {type(model).__name__}")
    for key, tensor in tensors.items():
        if tensor.shape != expected[key].shape:
            raise RewardModelError(
                f"{weights_file}: tensor {key!r} has shape {tuple(tensor.shape)}, the model "
                f"{tuple(expected[key].shape)}"
            )
    model.load_state_dict(tensors)
    return model


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    for name in TOKENIZER_FILES:
        file = path / name
        if file.is_file() and file.stat().st_size > MAX_TOKENIZER_FILE_BYTES:
            raise RewardModelError(
                f"{file}: {file.stat().st_size} bytes exceed the cap of "
                f"{MAX_TOKENIZER_FILE_BYTES} bytes"
            )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise RewardModelError(f"{path}: no tokenizer files (tokenizer.json)")
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
