"""LMPolicy: a Hugging Face causal or seq2seq language model as a Policy.

It acts on the TextGen observations (``input_ids`` / ``attention_mask``: the prompt padded
left, the generated tokens padded right) and carries its KV cache in the ``state`` of
``predict``, so that driving an env costs one decode step per token, like ``generate``:

    policy = LMPolicy.from_pretrained(path, env=env)
    actions, cache = policy.predict(obs)                       # prefill
    actions, cache = policy.predict(obs, cache, episode_start)  # one decode step

The cache is checked against each new observation: when every row appended one token or
kept its observation unchanged it is reused, otherwise (a reset row, a restart from a
prefix, another batch) all rows are recomputed in one prefill, so restarting from any
prefix costs one forward pass. A row whose observation is unchanged is *frozen*: it gets
the distribution it had at its last call again, and its cache grows by a masked slot. The
guided algorithms pass finished rows this way, so the batch keeps decoding one token per
step while other rows are still generating.

Sampling rule (shared by every algorithm): the action distribution is
``softmax(logits / temperature)`` over the env's action space, with EOS masked while
fewer than ``min_new_tokens`` tokens were generated; ``predict`` samples from its
``top_k`` most likely tokens (GRUE's top-k 50), ``deterministic=True`` takes the argmax.
``evaluate_actions`` / ``get_distribution`` use the full distribution.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from lfi_gym.envs.policies import batch_observation
from lfi_gym.envs.validation import check_positive_float, check_positive_int

POLICY_CONFIG = "lfi_policy.json"
#: The tiny GPT-2 shipped with TextGen-TinyReviews-v0, by a hub-style name that works offline.
TINYREVIEWS_LM = "lfi-gym/tinyreviews-lm"
#: The tiny GPT-2 shipped with TextGen-TinyConcepts-v0 (trained on its references alone).
TINYCONCEPTS_LM = "lfi-gym/tinyconcepts-lm"
VALUE_HEAD_FILE = "value_head.safetensors"


class LMCache:
    """The KV cache of a batch, and the observations it was computed from."""

    def __init__(self, past: Any, mask: torch.Tensor, positions: torch.Tensor, ids, obs_mask):
        # the model's transformers Cache (DynamicCache; EncoderDecoderCache for seq2seq),
        # passed back as ``cache=`` (the name since transformers 5.24)
        self.past = past
        self.mask = mask  # attention mask over cached tokens (batch, cached)
        self.positions = positions  # next position id per row (causal) or decoder length
        self.ids = ids  # the observation's input_ids the cache covers (numpy)
        self.obs_mask = obs_mask
        self.encoder: Any = None  # seq2seq: encoder outputs and mask
        self.encoder_mask: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None  # last next-token logits (for frozen rows)

    def __reduce__(self):
        # A cache is a derived quantity: pickled (e.g. in a checkpoint) it becomes empty,
        # and the next predict recomputes it with one prefill.
        return (type(None), ())


class LMPolicy(torch.nn.Module):
    """A language model with an optional value head, as a Policy and a BC / PPO learner.

    ``model`` is a loaded ``PreTrainedModel`` or a config (then built with random
    weights; this is how ``load`` rebuilds it before loading the saved weights).
    ``prompt_length`` is where the prompt ends in an observation; seq2seq models need it
    (encoder input vs. decoder input), and so does ``min_new_tokens``. ``tokenizer`` (the
    one the observations are tokenized with) is not used for acting; :meth:`save_pretrained`
    writes it next to the model, so that the folder is a complete Hugging Face model repo.
    """

    def __init__(
        self,
        model: Any,
        observation_space: spaces.Dict | None = None,
        action_space: spaces.Discrete | None = None,
        *,
        prompt_length: int | None = None,
        value_head: bool = False,
        top_k: int | None = 50,
        temperature: float = 1.0,
        min_new_tokens: int = 0,
        eos_token_id: int | None = None,
        tokenizer: Any = None,
    ) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig

        if isinstance(model, PretrainedConfig):
            auto = AutoModelForSeq2SeqLM if model.is_encoder_decoder else AutoModelForCausalLM
            model = auto.from_config(model)
        self.model = model
        self.seq2seq = bool(model.config.is_encoder_decoder)
        if action_space is None:
            action_space = spaces.Discrete(model.config.get_text_config().vocab_size)
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"an LMPolicy acts in a Discrete token space, got {action_space}")
        if observation_space is not None and not (
            isinstance(observation_space, spaces.Dict)
            and {"input_ids", "attention_mask"} <= set(observation_space.spaces)
        ):
            raise TypeError(
                "an LMPolicy reads Dict observations with 'input_ids' and 'attention_mask' "
                f"(the TextGen envs'); got {observation_space}"
            )
        if self.seq2seq and prompt_length is None:
            raise ValueError(
                "a seq2seq LMPolicy needs prompt_length (where the encoder input ends); use "
                "LMPolicy.from_pretrained(..., env=env) to read it from the env"
            )
        if top_k is not None:
            check_positive_int(top_k, "top_k")
        check_positive_float(temperature, "temperature")
        self.observation_space = observation_space
        self.action_space = action_space
        self.prompt_length = prompt_length
        self.top_k = top_k
        self.temperature = float(temperature)
        self.min_new_tokens = int(min_new_tokens)
        if eos_token_id is None:
            eos_token_id = model.config.eos_token_id
        self.eos_token_id = eos_token_id
        self.tokenizer = tokenizer
        if self.min_new_tokens and (prompt_length is None or eos_token_id is None):
            raise ValueError("min_new_tokens needs prompt_length and eos_token_id")
        self.value_head: torch.nn.Linear | None = None
        if value_head:
            self.add_value_head()
        self.set_training_mode(False)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        env: gym.Env | gym.vector.VectorEnv | None = None,
        *,
        value_head: bool | None = None,
        device: str | torch.device = "auto",
        top_k: int | None = 50,
        temperature: float = 1.0,
        **model_kwargs: Any,
    ) -> LMPolicy:
        """Load a causal or seq2seq LM (hub name or local directory) as a policy.

        With ``env`` (single or vector TextGen env) the policy takes its spaces, prompt
        length, ``min_new_tokens``, EOS and tokenizer. Without one, a directory written by
        :meth:`save_pretrained` gives them back (the tokenizer is loaded from
        ``name_or_path`` where it has one). Such a directory restores the value head too;
        ``value_head=True`` adds a fresh one.
        """
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        from lfi_gym.envs.text.hub import load_pretrained

        name = str(name_or_path)
        if name == TINYREVIEWS_LM:
            from lfi_gym.envs.text.tinyreviews import ASSET_DIR

            name = str(ASSET_DIR)
        elif name == TINYCONCEPTS_LM:
            from lfi_gym.envs.text.tinyconcepts import ASSET_DIR as TINYCONCEPTS_DIR

            name = str(TINYCONCEPTS_DIR)
        config = load_pretrained(
            AutoConfig.from_pretrained, name, asset="policy model", argument="name_or_path"
        )
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = load_pretrained(
            auto.from_pretrained,
            name,
            asset="policy model",
            argument="name_or_path",
            **model_kwargs,
        )
        saved = _read_policy_config(name)
        kwargs: dict[str, Any] = {"top_k": top_k, "temperature": temperature}
        kwargs.update({k: v for k, v in saved.items() if k in ("top_k", "temperature")})
        if env is not None:
            base = env.unwrapped if isinstance(env, gym.Env) else env
            task = base.task
            kwargs.update(
                observation_space=getattr(base, "single_observation_space", None)
                or base.observation_space,
                action_space=getattr(base, "single_action_space", None) or base.action_space,
                prompt_length=task.prompt_length,
                min_new_tokens=task.min_new_tokens,
                eos_token_id=task.eos_token_id,
                tokenizer=task.tokenizer,
            )
        else:
            kwargs["tokenizer"] = _load_tokenizer(name)
            kwargs.update(
                {k: v for k, v in saved.items() if k in _SAVED_WITHOUT_ENV and v is not None}
            )
            if saved.get("num_actions") is not None:
                kwargs["action_space"] = spaces.Discrete(int(saved["num_actions"]))
        has_saved_head = os.path.isfile(os.path.join(name, VALUE_HEAD_FILE))
        policy = cls(
            model, value_head=has_saved_head if value_head is None else value_head, **kwargs
        )
        if has_saved_head and policy.value_head is not None:
            from safetensors.torch import load_file

            policy.value_head.load_state_dict(load_file(os.path.join(name, VALUE_HEAD_FILE)))
        return policy.to(_device(device))

    @classmethod
    def from_spaces(
        cls,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        name_or_path: str = TINYREVIEWS_LM,
        **kwargs: Any,
    ) -> LMPolicy:
        """:meth:`from_pretrained` for given spaces (how BC / DAgger make a learner named
        ``"LMPolicy"``; ``policy_kwargs`` carry ``name_or_path`` and the rest)."""
        policy = cls.from_pretrained(name_or_path, **kwargs)
        policy.observation_space, policy.action_space = observation_space, action_space
        return policy

    def save_pretrained(
        self, directory: str | os.PathLike, *, tokenizer: Any = None, **save_kwargs: Any
    ) -> Path:
        """Write a complete Hugging Face model repo: the model (its ``save_pretrained``,
        which takes ``save_kwargs`` such as ``max_shard_size``), the tokenizer (this
        policy's, or ``tokenizer``), and the policy's own files (sampling settings, prompt
        length, EOS, action count and the value head) so that :meth:`from_pretrained` on
        the directory gives this policy back. ``AutoTokenizer`` and ``AutoModelForCausalLM``
        (``AutoModelForSeq2SeqLM``) load the directory as any hub model."""
        from safetensors.torch import save_file

        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        if tokenizer is None:
            raise ValueError(
                "this LMPolicy has no tokenizer (it was built from a config, an agent file or "
                "a model folder without one), and a model repo without its tokenizer cannot be "
                "used; pass the one its observations are tokenized with: "
                "policy.save_pretrained(directory, tokenizer=env.unwrapped.task.tokenizer)"
            )
        path = Path(directory)
        self.model.save_pretrained(path, **save_kwargs)
        tokenizer.save_pretrained(path)
        settings = {
            "top_k": self.top_k,
            "temperature": self.temperature,
            "prompt_length": self.prompt_length,
            "min_new_tokens": self.min_new_tokens,
            "eos_token_id": self.eos_token_id,
            "num_actions": int(self.action_space.n),
        }
        (path / POLICY_CONFIG).write_text(json.dumps(settings, indent=2) + "\n")
        if self.value_head is not None:
            state = {
                k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()
            }
            save_file(state, str(path / VALUE_HEAD_FILE))
        return path

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
    ) -> Any:
        """Upload the policy to the Hugging Face hub as ``repo_id`` (created if missing).

        The convention of transformers' ``PushToHubMixin.push_to_hub`` (same arguments):
        :meth:`save_pretrained` into a temporary folder, a model card (README.md), then
        one commit of the folder with ``huggingface_hub``. Returns the commit's info.
        """
        import tempfile

        from huggingface_hub import HfApi, ModelCardData

        api = HfApi()
        repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        card = ModelCardData(library_name="transformers", tags=["lfi-gym", *(tags or [])])
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, max_shard_size=max_shard_size)
            kind = "seq2seq" if self.seq2seq else "causal"
            Path(folder, "README.md").write_text(
                f"---\n{card.to_yaml()}\n---\n\n# {repo_id}\n\nA {kind} language model saved "
                "by lfi-gym's `LMPolicy` (load it with `LMPolicy.from_pretrained` or with "
                "transformers' `AutoTokenizer` / `AutoModel...`).\n"
            )
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=commit_message or "Upload LMPolicy",
                commit_description=commit_description,
                token=token,
                revision=revision,
                create_pr=create_pr,
            )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            "model": self.model.config,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "prompt_length": self.prompt_length,
            "value_head": self.value_head is not None,
            "top_k": self.top_k,
            "temperature": self.temperature,
            "min_new_tokens": self.min_new_tokens,
            "eos_token_id": self.eos_token_id,
        }

    def add_value_head(self) -> None:
        """Give the policy a fresh value head: a linear map of the last hidden state,
        zero-initialised so that it starts by predicting 0 for every state."""
        hidden = self.model.config.get_text_config().hidden_size
        head = torch.nn.Linear(hidden, 1).to(next(self.model.parameters()).device)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        self.value_head = head

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)

    # -- acting ---------------------------------------------------------------------------

    @torch.inference_mode()
    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: LMCache | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, LMCache]:
        """Next token per row, and the KV cache to pass back at the next step."""
        space = self.observation_space
        if space is None:
            batch = {k: np.asarray(v) for k, v in observation.items()}
            single = batch["input_ids"].ndim == 1
            batch = {k: v[None] for k, v in batch.items()} if single else batch
        else:
            batch, batched = batch_observation(observation, space)
            single = not batched
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        mask = np.asarray(batch["attention_mask"], dtype=np.int64)
        new_positions = _appended_positions(state, ids, mask, episode_start)
        if new_positions is None:
            logits, state = self._prefill(ids, mask)
        elif np.all(new_positions < 0):
            logits = state.logits  # no row changed: the same distributions again
        else:
            logits, state = self._decode(state, ids, mask, new_positions)
        state.logits = logits
        logits = self._action_logits(logits, mask)
        actions = self._sample(logits, deterministic).cpu().numpy()
        return (actions[0] if single else actions), state

    def _prefill(self, ids: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, LMCache]:
        out, cache_mask, encoder, encoder_mask = self._forward(
            *_to_torch(ids, mask, self.device), use_cache=True
        )
        cache = LMCache(out.cache, cache_mask, cache_mask.sum(1), ids, mask)
        cache.encoder, cache.encoder_mask = encoder, encoder_mask
        return out.logits[:, -1], cache

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        *,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[Any, torch.Tensor, Any, torch.Tensor | None]:
        """One pass over whole observations, logits kept at the last token only.

        Returns the model output, the attention mask of the block the cache covers (the
        right-aligned real tokens; for seq2seq the decoder inputs), and for seq2seq the
        encoder outputs and mask (None otherwise).
        """
        if self.seq2seq:
            p = self.prompt_length
            encoder_mask = mask[:, :p]
            encoder = self.model.get_encoder()(input_ids=ids[:, :p], attention_mask=encoder_mask)
            dec_ids, dec_mask = self._decoder_block(ids[:, p:], mask[:, p:])
            out = self.model(
                encoder_outputs=encoder,
                attention_mask=encoder_mask,
                decoder_input_ids=dec_ids,
                decoder_attention_mask=dec_mask,
                use_cache=use_cache,
                output_hidden_states=output_hidden_states,
            )
            return out, dec_mask, encoder, encoder_mask
        block_ids, block_mask = _right_aligned(ids, mask)
        out = self.model(
            input_ids=block_ids,
            attention_mask=block_mask,
            position_ids=(block_mask.cumsum(1) - 1).clamp(min=0),
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            logits_to_keep=1,
        )
        return out, block_mask, None, None

    def _decode(
        self, cache: LMCache, ids: np.ndarray, mask: np.ndarray, new_positions: np.ndarray
    ) -> tuple[torch.Tensor, LMCache]:
        device = self.device
        rows = np.arange(len(ids))
        moved = new_positions >= 0  # False: a frozen row (masked slot, same logits)
        token = torch.from_numpy(np.where(moved, ids[rows, new_positions], 0)).to(device)[:, None]
        moved_t = torch.from_numpy(moved).to(device)
        step_mask = torch.cat([cache.mask, moved_t[:, None].to(cache.mask.dtype)], dim=1)
        if self.seq2seq:
            out = self.model(
                encoder_outputs=cache.encoder,
                attention_mask=cache.encoder_mask,
                decoder_input_ids=token,
                decoder_attention_mask=step_mask,
                cache=cache.past,
                use_cache=True,
            )
        else:
            out = self.model(
                input_ids=token,
                attention_mask=step_mask,
                position_ids=cache.positions[:, None],
                cache=cache.past,
                use_cache=True,
            )
        cache.past, cache.mask, cache.positions = (
            out.cache,
            step_mask,
            cache.positions + moved_t.to(cache.positions.dtype),
        )
        cache.ids, cache.obs_mask = ids, mask
        logits = out.logits[:, -1]
        if not moved.all():
            logits = torch.where(moved_t[:, None], logits, cache.logits.to(logits.dtype))
        return logits, cache

    def _decoder_block(self, gen_ids: torch.Tensor, gen_mask: torch.Tensor):
        """Decoder inputs ``[start, g0, ..., g_{t-1}]`` per row, right-aligned."""
        start = torch.full_like(gen_ids[:, :1], self.model.config.decoder_start_token_id)
        return _right_aligned(
            torch.cat([start, gen_ids], dim=1),
            torch.cat([torch.ones_like(gen_mask[:, :1]), gen_mask], dim=1),
        )

    def _action_logits(self, logits: torch.Tensor, mask: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits over the action space, temperature applied, EOS masked if too early."""
        logits = logits[:, : self.action_space.n].float() / self.temperature
        if self.min_new_tokens and self.eos_token_id is not None:
            p = self.prompt_length
            generated = mask[:, p:].sum(1)
            generated = torch.as_tensor(generated, device=logits.device)
            early = generated < self.min_new_tokens
            if bool(early.any()):
                logits = logits.clone()
                logits[early, self.eos_token_id] = float("-inf")
        return logits

    def _sample(self, logits: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if deterministic:
            return logits.argmax(-1)
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            values, indices = torch.topk(logits, self.top_k, dim=-1)
            choice = torch.multinomial(torch.softmax(values, dim=-1), 1)
            return indices.gather(1, choice).squeeze(1)
        return torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(1)

    # -- learning -------------------------------------------------------------------------

    def forward_last(
        self, observations: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Action logits at each observation's last token, and values (or None); a full
        forward pass without cache (for training)."""
        ids = torch.as_tensor(observations["input_ids"], device=self.device).long()
        mask = torch.as_tensor(observations["attention_mask"], device=self.device).long()
        want_hidden = self.value_head is not None
        out, *_ = self._forward(ids, mask, output_hidden_states=want_hidden)
        values = None
        if want_hidden:
            states = out.decoder_hidden_states if self.seq2seq else out.hidden_states
            values = self.value_head(states[-1][:, -1].float())
        return self._action_logits(out.logits[:, -1], mask), values

    def get_distribution(
        self, observations: dict[str, torch.Tensor]
    ) -> torch.distributions.Categorical:
        logits, _ = self.forward_last(observations)
        return torch.distributions.Categorical(logits=logits)

    def evaluate_actions(
        self, observations: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(values, log-probability of ``actions``, entropy), as SB3's ActorCriticPolicy."""
        logits, values = self.forward_last(observations)
        distribution = torch.distributions.Categorical(logits=logits)
        actions = actions.long().reshape(-1)
        return values, distribution.log_prob(actions), distribution.entropy()

    def evaluate_generated(
        self, observations: dict[str, torch.Tensor], *, values: bool = True, entropy: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """Score every generated token of each observation in one forward pass.

        Returns ``(values, log_prob, entropy)``, each ``(batch, generated columns)`` (values
        None without a value head or with ``values=False``, entropy None with
        ``entropy=False``, which skip their cost, e.g. for a frozen reference): entry
        ``[i, t]`` is for generated token ``t`` of row ``i``, under the distribution the
        policy had before it (the observation up to token ``t``). It equals
        :meth:`evaluate_actions` on each step's observation, at the cost of one forward
        pass per sequence instead of one per token (how the PPO family trains). Entries
        past a row's last generated token are meaningless (mask them out).
        """
        if self.prompt_length is None:
            raise ValueError(
                "evaluate_generated needs prompt_length: build the policy with "
                "LMPolicy.from_pretrained(..., env=env)"
            )
        ids = torch.as_tensor(observations["input_ids"], device=self.device).long()
        mask = torch.as_tensor(observations["attention_mask"], device=self.device).long()
        p = self.prompt_length
        # Prompts are padded on the left: columns that are padding in every row add
        # nothing but cost, so they are dropped.
        lead = min(int((mask[:, :p].cumsum(1) == 0).all(0).sum()), p - 1)
        ids, mask, p = ids[:, lead:], mask[:, lead:], p - lead
        want_hidden = values and self.value_head is not None
        if self.seq2seq:
            start = torch.full_like(ids[:, :1], self.model.config.decoder_start_token_id)
            decoder_ids = torch.cat([start, ids[:, p:-1]], dim=1)
            decoder_mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, p:-1]], dim=1)
            out = self.model(
                input_ids=ids[:, :p],
                attention_mask=mask[:, :p],
                decoder_input_ids=decoder_ids,
                decoder_attention_mask=decoder_mask,
                output_hidden_states=want_hidden,
            )
            logits = out.logits
            hidden = out.decoder_hidden_states[-1] if want_hidden else None
        else:
            generated = ids.shape[1] - p
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                output_hidden_states=want_hidden,
                logits_to_keep=generated + 1,
            )
            logits = out.logits[:, :-1]
            hidden = out.hidden_states[-1][:, p - 1 : -1] if want_hidden else None
        # A new tensor (the division), so masking EOS in place is safe for autograd.
        logits = logits[..., : self.action_space.n].float() / self.temperature
        if self.min_new_tokens and self.eos_token_id is not None:
            logits[:, : self.min_new_tokens, self.eos_token_id] = float("-inf")
        log_probs = torch.log_softmax(logits, dim=-1)
        tokens = ids[:, p:]
        chosen = log_probs.gather(2, tokens.unsqueeze(-1)).squeeze(-1)
        token_entropy = None
        if entropy:
            probs = log_probs.exp()
            # Masked tokens have log-probability -inf: zero it before the product, or the
            # backward pass computes 0 * inf = NaN.
            token_entropy = -(probs * log_probs.masked_fill(probs == 0, 0.0)).sum(-1)
        token_values = None
        if hidden is not None:
            token_values = self.value_head(hidden.float()).squeeze(-1)
        return token_values, chosen, token_entropy

    def forward(
        self, observations: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """:meth:`evaluate_generated`: the training pass (what ``accelerate`` wraps for
        multi-process training, whose gradient sync runs through ``forward``)."""
        return self.evaluate_generated(observations)

    def predict_values(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.value_head is None:
            raise ValueError("this LMPolicy has no value head; build it with value_head=True")
        return self.forward_last(observations)[1]


# -- helpers ------------------------------------------------------------------------------


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: Settings of POLICY_CONFIG that an env gives instead when from_pretrained gets one.
_SAVED_WITHOUT_ENV = ("prompt_length", "min_new_tokens", "eos_token_id")


def _load_tokenizer(name: str) -> Any:
    """The tokenizer saved with a model (None for a local folder without one)."""
    from transformers import AutoTokenizer

    from lfi_gym.envs.text.hub import load_pretrained

    if os.path.isdir(name) and not any(
        os.path.isfile(os.path.join(name, file))
        for file in ("tokenizer.json", "tokenizer_config.json")
    ):
        return None
    return load_pretrained(
        AutoTokenizer.from_pretrained, name, asset="policy tokenizer", argument="name_or_path"
    )


def _read_policy_config(name: str) -> dict[str, Any]:
    path = os.path.join(name, POLICY_CONFIG)
    if os.path.isfile(path):
        with open(path) as handle:
            return json.load(handle)
    return {}


def _to_torch(ids: np.ndarray, mask: np.ndarray, device: torch.device):
    return (
        torch.from_numpy(np.ascontiguousarray(ids)).to(device),
        torch.from_numpy(np.ascontiguousarray(mask)).to(device),
    )


def _last_real(mask: np.ndarray) -> np.ndarray:
    """Column of each row's last real token (rows' real tokens are contiguous)."""
    width = mask.shape[1]
    return width - 1 - np.argmax(mask[:, ::-1], axis=1)


def _right_aligned(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each row so that its real block (contiguous) ends at the last column, then
    drop the columns that are padding in every row: a left-padded batch, as generate()
    takes."""
    width = ids.shape[1]
    last = width - 1 - mask.flip(1).argmax(1)
    columns = (torch.arange(width, device=ids.device)[None, :] + last[:, None] + 1) % width
    ids, mask = ids.gather(1, columns), mask.gather(1, columns)
    keep = int(mask.sum(1).max())
    return ids[:, width - keep :], mask[:, width - keep :]


def _appended_positions(
    cache: Any, ids: np.ndarray, mask: np.ndarray, episode_start: np.ndarray | None
) -> np.ndarray | None:
    """The column of the one token each row appended since ``cache`` was computed (-1 for
    a row whose observation is unchanged), or None when the cache cannot be reused (then
    all rows are recomputed)."""
    if not isinstance(cache, LMCache) or cache.ids.shape != ids.shape:
        return None
    if episode_start is not None and np.any(episode_start):
        return None
    added = mask - cache.obs_mask
    counts = added.sum(1)
    if added.min() < 0 or not np.all((counts == 1) | (counts == 0)):
        return None
    if not np.array_equal(ids * cache.obs_mask, cache.ids * cache.obs_mask):
        return None
    positions = np.where(counts == 1, np.argmax(added, axis=1), -1)
    moved = counts == 1
    if not np.array_equal(positions[moved], _last_real(cache.obs_mask)[moved] + 1):
        return None
    return positions
