"""Learners: which network an agent trains, and how to score actions under it.

Every agent builds its learner here, so that one observation space gets one network
whichever agent trains it. :func:`auto_policy` is the one place ``policy="auto"`` is
decided:

* text envs (``input_ids`` / ``attention_mask`` observations) -> ``LMPolicy``;
* ranking envs (``features`` / ``mask`` observations) -> ``PlackettLucePolicy``;
* Atari frames (SB3 image spaces, e.g. ALE's 4x84x84) -> ``CnnPolicy`` (Nature CNN);
* MinAtar grids (small channel-last boards) -> SB3's actor-critic policy on
  :class:`MinAtarCNN`, the MinAtar paper's network;
* other Dict observations -> ``MultiInputPolicy``; anything else -> ``MlpPolicy``.

The two image choices are the DRIL paper's (Brantley et al. 2020 use the Nature CNN on
Atari; Young and Tian 2019 give MinAtar's network), so BC, DAgger, DRIL, PPO and the
guided agents all train the network the DRIL benchmark does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    FlattenExtractor,
    NatureCNN,
)
from torch import nn

from lfi_gym.agents.env_kinds import row_env, row_spaces, single_spaces
from lfi_gym.envs.policies import check_spaces

#: SB3 actor-critic policies by the names SB3 models take.
POLICY_ALIASES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")

#: Learners of lfi-gym's own, by the name a suite or config gives (JSON-friendly):
#: built as ``cls.from_spaces(observation_space, action_space, **policy_kwargs)``.
LEARNER_CLASSES = {
    "LMPolicy": "lfi_gym.agents.lm_policy:LMPolicy",
    "PlackettLucePolicy": "lfi_gym.agents.plackett_luce:PlackettLucePolicy",
}

#: What a torch module needs, besides the two spaces, to be trained by BC / DAgger.
LEARNER_METHODS = (
    "predict",
    "evaluate_actions",
    "set_training_mode",
    "_get_constructor_parameters",
    "observation_space",
    "action_space",
)


# -- kinds of observation space -----------------------------------------------------------


def is_text_space(space: gym.Space | None) -> bool:
    """A TextGen env's observations: a Dict with ``input_ids`` and ``attention_mask``."""
    return isinstance(space, gym.spaces.Dict) and {"input_ids", "attention_mask"} <= set(
        space.spaces
    )


def is_ranking_space(space: gym.Space | None) -> bool:
    """A ranking env's observations: a Dict with ``features`` and ``mask``."""
    return isinstance(space, gym.spaces.Dict) and {"features", "mask"} <= set(space.spaces)


def is_atari_frames(space: gym.Space | None) -> bool:
    """Stacked Atari frames: what SB3 treats as an image (uint8 0-255, three dimensions)."""
    return isinstance(space, gym.spaces.Box) and is_image_space(space)


def is_minatar_grid(space: gym.Space | None) -> bool:
    """A MinAtar-shaped board: square, 3 to 20 cells a side, channel-last, few channels."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and space.shape[0] == space.shape[1]
        and 3 <= space.shape[0] <= 20
        and space.shape[2] <= 32
    )


# -- networks -----------------------------------------------------------------------------


class MinAtarCNN(BaseFeaturesExtractor):
    """The MinAtar paper's network (Young and Tian, 2019): one 3x3 convolution with 16
    channels, then a 128-unit layer. Takes channel-last ``(H, W, C)`` grids, as MinAtar
    gives them, so no transpose wrapper is needed."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        height, width, channels = observation_space.shape
        self.conv = nn.Sequential(nn.Conv2d(channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(
            nn.Linear(16 * (height - 2) * (width - 2), features_dim), nn.ReLU()
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(observations.float().permute(0, 3, 1, 2)))


def auto_policy(observation_space: gym.Space) -> tuple[str, dict[str, Any]]:
    """The learner name and ``policy_kwargs`` that ``policy="auto"`` means for an
    observation space (see the module docstring)."""
    if is_text_space(observation_space):
        return "LMPolicy", {}
    if is_ranking_space(observation_space):
        return "PlackettLucePolicy", {}
    if is_atari_frames(observation_space):
        return "CnnPolicy", {}
    if is_minatar_grid(observation_space):
        return "MlpPolicy", {"features_extractor_class": MinAtarCNN, "net_arch": []}
    if isinstance(observation_space, gym.spaces.Dict):
        return "MultiInputPolicy", {}
    return "MlpPolicy", {}


def resolve_policy(
    policy: Any, observation_space: gym.Space | None, policy_kwargs: dict[str, Any] | None
) -> tuple[Any, dict[str, Any]]:
    """``(policy, policy_kwargs)`` with ``"auto"`` replaced by :func:`auto_policy`'s choice
    (the given ``policy_kwargs`` override its kwargs); other policies pass through."""
    kwargs = dict(policy_kwargs or {})
    if isinstance(policy, str) and policy == "auto":
        if observation_space is None:
            raise ValueError('policy="auto" needs an env to choose from; pass env=')
        policy, auto_kwargs = auto_policy(observation_space)
        kwargs = {**auto_kwargs, **kwargs}
    return policy, kwargs


def features_network(observation_space: gym.Space) -> Callable[[], nn.Module]:
    """A factory of the feature network that ``policy="auto"``'s learner has for this
    space, alone (DRIL's ensemble members): the Nature CNN for Atari frames,
    :class:`MinAtarCNN` for MinAtar grids, SB3's default MLP (64-64, tanh) otherwise."""
    name, kwargs = auto_policy(observation_space)
    if name == "CnnPolicy":
        return lambda: NatureCNN(observation_space, features_dim=512)
    if kwargs.get("features_extractor_class") is MinAtarCNN:
        return lambda: MinAtarCNN(observation_space)
    if name != "MlpPolicy":
        raise ValueError(
            f"no feature network for {observation_space}: its learner is {name}, not an SB3 "
            "actor-critic policy"
        )

    def mlp() -> nn.Module:
        flat = FlattenExtractor(observation_space)
        return nn.Sequential(
            flat, nn.Linear(flat.features_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh()
        )

    return mlp


# -- building a learner -------------------------------------------------------------------


def make_learner(
    policy: Any,
    observation_space: gym.Space | None,
    action_space: gym.Space | None,
    policy_kwargs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    *,
    env: Any = None,
    value_head: bool = False,
) -> nn.Module:
    """Build or unwrap the learner -> the module to train.

    ``policy`` is ``"auto"`` (:func:`auto_policy`), an SB3 policy name (``"MlpPolicy"``...),
    one of :data:`LEARNER_CLASSES` (``"LMPolicy"``, ``"PlackettLucePolicy"``), an SB3
    model or policy, or a torch module with :data:`LEARNER_METHODS`. A named learner is
    checked against the spaces before it is built. ``env``: an LMPolicy is loaded with the
    text env's prompt length, ``min_new_tokens`` and EOS (``LMPolicy.from_pretrained(env=)``).
    ``value_head``: the learner must estimate values (actor-critic RL): an LMPolicy loads
    its saved value head, or gets a zero-initialised one.
    """
    policy, kwargs = resolve_policy(policy, observation_space, policy_kwargs)
    if isinstance(policy, str):
        check_learner_fits(policy, observation_space, action_space)
        if policy == "LMPolicy" and env is not None:
            from lfi_gym.agents.lm_policy import TINYREVIEWS_LM, LMPolicy

            task = getattr(getattr(env, "unwrapped", env), "task", None)
            default = getattr(task, "policy_model", None) or TINYREVIEWS_LM
            name = kwargs.pop("name_or_path", default)
            kwargs.setdefault("value_head", value_head)
            module = LMPolicy.from_pretrained(name, env=env, device=device, **kwargs)
        elif policy in LEARNER_CLASSES:
            module_name, class_name = LEARNER_CLASSES[policy].split(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            module = cls.from_spaces(observation_space, action_space, **kwargs)
        else:
            module = _sb3_policy(policy, observation_space, action_space, kwargs)
    else:
        if kwargs:
            raise ValueError(
                "policy_kwargs only apply when policy is a name ('auto', 'MlpPolicy', "
                "'LMPolicy', ...), not to a policy object"
            )
        module = trainable_module(policy)
    if value_head and getattr(module, "value_head", False) is None:
        module.add_value_head()  # an LMPolicy without one: actor-critic RL needs values
    return module.to(device)


def learner_for_env(
    agent: str,
    env: Any,
    policy: Any,
    policy_kwargs: dict[str, Any] | None,
    device: str | torch.device,
) -> nn.Module:
    """The learner an imitation agent (BC, DAgger) trains on ``env`` (single or vector): built
    by :func:`make_learner` and checked against one row's spaces. Without an env, ``policy``
    must be a policy object, not a name (``agent`` names the one asking in the error)."""
    if env is None and isinstance(policy, str):
        raise ValueError(f"{agent} needs an env to build a policy from a name; pass env=")
    spaces = (None, None) if env is None else single_spaces(env)
    learner = make_learner(policy, *spaces, policy_kwargs, device, env=row_env(env))
    if env is not None:
        check_spaces(learner, row_spaces(env), role="policy")
    return learner


def check_learner_fits(
    name: str, observation_space: gym.Space | None, action_space: gym.Space | None
) -> None:
    """Raise ValueError, naming the fix, if learner ``name`` cannot act on these spaces."""
    if observation_space is None:
        raise ValueError(f"a learner named {name!r} is built from the env's spaces; pass env=")
    if name in ("MlpPolicy", "CnnPolicy") and isinstance(observation_space, gym.spaces.Dict):
        # SB3 builds these on a Dict space but fails at the first forward pass ('dict' object
        # has no attribute 'flatten'), after the agent has collected data.
        raise ValueError(
            f"policy={name!r} takes Box observations; this env observes "
            f"{observation_space}. Use policy='auto' (here: "
            f"{auto_policy(observation_space)[0]!r}) or a learner made for Dict observations"
        )
    fits = {"LMPolicy": is_text_space, "PlackettLucePolicy": is_ranking_space}.get(name)
    if fits is None or fits(observation_space):
        return
    kind = {"LMPolicy": "a text env", "PlackettLucePolicy": "a ranking env"}[name]
    keys = {
        "LMPolicy": "'input_ids' and 'attention_mask'",
        "PlackettLucePolicy": "'features' and 'mask'",
    }[name]
    suggestion = auto_policy(observation_space)[0]
    raise ValueError(
        f"policy={name!r} needs {kind} (Dict observations with {keys}); this env observes "
        f"{observation_space}. Use policy='auto' (here: {suggestion!r}) or a learner made "
        "for this env"
    )


def _sb3_policy(
    name: str, observation_space: gym.Space, action_space: gym.Space, kwargs: dict[str, Any]
) -> nn.Module:
    from stable_baselines3.common.policies import (
        ActorCriticCnnPolicy,
        ActorCriticPolicy,
        MultiInputActorCriticPolicy,
    )

    classes = dict(
        zip(
            POLICY_ALIASES,
            (ActorCriticPolicy, ActorCriticCnnPolicy, MultiInputActorCriticPolicy),
            strict=True,
        )
    )
    if name not in classes:
        raise ValueError(
            f"unknown policy {name!r}; use 'auto', one of "
            f"{', '.join((*POLICY_ALIASES, *LEARNER_CLASSES))}, an SB3 model or an SB3 policy"
        )
    # The learning-rate schedule is unused: the agents bring their own optimizers.
    return classes[name](observation_space, action_space, lambda _: 0.0, **kwargs)


def trainable_module(obj: Any) -> nn.Module:
    """The torch module to train when ``obj`` is a learner.

    ``obj`` is an SB3 model or policy, or any ``torch.nn.Module`` that follows SB3's
    policy shape: ``predict``, ``evaluate_actions``, ``set_training_mode``,
    ``_get_constructor_parameters`` and the two spaces (e.g. ``LMPolicy`` or the ranking
    policy), so that BC and DAgger train it in place.
    """
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BasePolicy

    if isinstance(obj, BaseAlgorithm):
        obj = obj.policy
    if isinstance(obj, BasePolicy):
        return obj
    if isinstance(obj, nn.Module) and all(hasattr(obj, name) for name in LEARNER_METHODS):
        return obj
    raise TypeError(
        "a learner must be 'auto', an SB3 policy name ('MlpPolicy', 'CnnPolicy', "
        "'MultiInputPolicy'), an SB3 model (PPO, A2C, DQN, ...), an SB3 policy, or a "
        f"torch.nn.Module with {', '.join(LEARNER_METHODS)}; got {type(obj).__name__}"
    )


# -- scoring actions ----------------------------------------------------------------------


def action_log_prob(
    policy: nn.Module, observations: Any, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability and entropy of ``actions`` under an SB3 policy (for supervised loss).

    Actor-critic policies (PPO, A2C, TRPO, MaskablePPO) use their action distribution;
    Q-value policies (DQN, QR-DQN) are trained as softmax classifiers over their Q-values,
    which keeps ``predict`` (argmax Q) consistent with the learned labels.
    """
    if hasattr(policy, "evaluate_actions") and not hasattr(policy, "lstm_actor"):
        _, log_prob, entropy = policy.evaluate_actions(observations, actions)
        if entropy is None:
            entropy = -log_prob
        return log_prob, entropy
    q_values = _q_values(policy, observations)
    if q_values is not None:
        log_probs = torch.log_softmax(q_values, dim=-1)
        chosen = log_probs.gather(1, actions.long().reshape(-1, 1)).squeeze(1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return chosen, entropy
    raise TypeError(
        f"cannot train {type(policy).__name__} by imitation: supported learners are SB3 "
        "actor-critic policies (PPO, A2C, TRPO, MaskablePPO) and Q-value policies (DQN, "
        "QR-DQN); recurrent policies need their LSTM state and are not supported"
    )


def _q_values(policy: nn.Module, observations: Any) -> torch.Tensor | None:
    if hasattr(policy, "q_net") and hasattr(policy.q_net, "forward"):
        return policy.q_net(observations)
    if hasattr(policy, "quantile_net"):
        return policy.quantile_net(observations).mean(dim=1)
    return None
