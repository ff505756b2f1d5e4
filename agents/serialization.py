"""How an agent's parts become agent-file members, and how they are read back safely.

Loading an agent file never unpickles and never imports by name:

* weights (state dicts of policies, DRIL's ensemble) are safetensors, read into a module
  built beforehand, which fixes the tensors' names and shapes and so the member's size;
* optimizer states, RNG states, counters and the env's State are
  :mod:`lfi_gym.envs.codec` blobs (a JSON tree plus raw arrays);
* a policy's class and its constructor arguments are JSON: classes (the policy's, its
  activation, feature extractor and optimizer classes) are names looked up in an allow-list
  (:func:`allowed_classes`), spaces use the codec's JSON form, a transformers config is its
  ``to_dict()`` (what ``save_pretrained`` writes), rebuilt from transformers' own config
  classes only.

:class:`AgentFileReader` reads only the members an agent expects, each under a size cap,
checked on the zip's directory and enforced while decompressing (the directory can lie).
Every problem (malformed, oversized, unknown, or naming what may not be built) is an
:class:`AgentFileError` naming the file and the member.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import zipfile
import zlib
from collections import Counter
from collections.abc import Collection, Iterator
from functools import cache
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from lfi_gym.envs.codec import (
    MAX_DEPTH,
    CodecError,
    parse_json,
    preview,
    space_from_json,
    space_to_json,
    tree_bytes,
)
from lfi_gym.envs.codec import tree_from_bytes as _tree_from_bytes
from lfi_gym.envs.core import qualified_name

MIB = 1 << 20
#: Cap on a JSON member (agent.json, policy.json, ...).
MAX_JSON_BYTES = 16 * MIB
#: Cap on a codec member of counters, RNG states and the env's State.
MAX_STATE_BYTES = 256 * MIB
#: Cap on a demonstrations member (DAgger's aggregate, DRIL's data): large enough for
#: hundreds of thousands of stacked Atari frames.
MAX_DEMONSTRATIONS_BYTES = 32 * 1024 * MIB
#: A weights member may exceed its tensors' bytes by this much (the safetensors header).
WEIGHTS_HEADER_ALLOWANCE = MIB
WEIGHTS_HEADER_BYTES_PER_TENSOR = 512
#: An optimizer state may hold this many bytes per parameter byte (Adam keeps two).
OPTIMIZER_BYTES_PER_PARAMETER_BYTE = 4

WEIGHTS_FORMAT = "lfi-gym.weights"


class AgentFileError(ValueError):
    """An agent file is malformed, oversized, or names something that may not be built."""


# -- reading members -------------------------------------------------------------------------


class AgentFileReader:
    """The members of an open agent zip, read one at a time under caps.

    ``allowed``: every member name the agent may have written; any other member refuses the
    file (a file written by :meth:`BaseAgent.save` has none, so another member means the
    file was edited or written by something else).
    """

    def __init__(self, zf: zipfile.ZipFile, label: str, allowed: Collection[str]) -> None:
        self.zf, self.label = zf, label
        names = zf.namelist()
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise AgentFileError(f"{label}: member {duplicates[0]!r} appears more than once")
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise AgentFileError(
                f"{label}: unexpected member {unknown[0]!r}; this agent's files hold "
                f"{', '.join(sorted(allowed))}"
            )
        self.names = frozenset(names)
        self.prefix = ""

    def under(self, prefix: str) -> AgentFileReader:
        """A view that reads member ``prefix + name`` as ``name``: an agent stored inside
        another agent's file (RLHF's RL step under ``rl/``) reads its members as usual."""
        view = copy.copy(self)
        view.prefix = self.prefix + prefix
        return view

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.prefix + name in self.names

    def error(self, name: str, problem: str) -> AgentFileError:
        return AgentFileError(f"{self.label}: member {self.prefix + name!r}: {problem}")

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """Restoring values decoded from member ``name``: a value that does not fit (a wrong
        type, a missing key, an RNG state numpy refuses) refuses the file, naming it."""
        try:
            yield
        except AgentFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            raise self.error(name, f"malformed ({type(exc).__name__}: {exc})") from None

    def read(self, name: str, cap: int) -> bytes:
        """The member's bytes; refused if its directory entry or its data exceed ``cap``."""
        if name not in self:
            raise AgentFileError(f"{self.label}: missing member {self.prefix + name!r}")
        info = self.zf.getinfo(self.prefix + name)
        if info.file_size > cap:
            raise self.error(name, f"{info.file_size} bytes exceed the cap of {cap} bytes")
        try:
            with self.zf.open(info) as member:
                # The directory's size can lie (a compressed bomb): inflate at most one byte
                # more than it claims, which is under the cap.
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
            raise self.error(name, f"unreadable ({e})") from None
        if len(data) != info.file_size:
            raise self.error(name, f"holds other than the {info.file_size} bytes it claims")
        return data

    def json(self, name: str) -> Any:
        try:
            return parse_json(self.read(name, MAX_JSON_BYTES))
        except CodecError as exc:
            raise self.error(name, str(exc)) from None

    def data(self, name: str, cap: int | None = None) -> Any:
        """A codec blob (:func:`data_bytes`), capped at ``cap`` (default MAX_STATE_BYTES)."""
        cap = MAX_STATE_BYTES if cap is None else cap
        try:
            data = self.read(name, cap)
            return _tree_from_bytes(data, max_bytes=cap, label=f"member {self.prefix + name!r}")
        except CodecError as exc:
            raise AgentFileError(f"{self.label}: {exc}") from None

    def demonstrations(self, name: str) -> Any:
        """A ``.lfid`` member as Demonstrations (its own reader checks it)."""
        from lfi_gym.agents.data import Demonstrations
        from lfi_gym.agents.demofile import DemonstrationsFileError

        data = self.read(name, MAX_DEMONSTRATIONS_BYTES)
        try:
            return Demonstrations.from_bytes(data, name=name)
        except DemonstrationsFileError as exc:
            raise self.error(name, str(exc)) from None

    def load_weights(self, name: str, module: nn.Module) -> None:
        """Load the member (:func:`weights_bytes`) into ``module``: exactly its tensors, of
        its shapes, capped at their size."""
        expected = module.state_dict()
        cap = (
            sum(t.numel() * t.element_size() for t in expected.values())
            + WEIGHTS_HEADER_ALLOWANCE
            + WEIGHTS_HEADER_BYTES_PER_TENSOR * len(expected)
        )
        tensors = self._safetensors(name, self.read(name, cap))
        if set(tensors) != set(expected):
            extra = sorted(set(tensors) - set(expected))
            missing = sorted(set(expected) - set(tensors))
            problem = f"unexpected tensor {extra[0]!r}" if extra else f"no tensor {missing[0]!r}"
            raise self.error(name, f"{problem}; it does not fit a {type(module).__name__}")
        for key, tensor in tensors.items():
            want = expected[key]
            same_kind = tensor.dtype == want.dtype or (
                tensor.dtype.is_floating_point and want.dtype.is_floating_point
            )
            if tensor.shape != want.shape or not same_kind:
                raise self.error(
                    name,
                    f"tensor {key!r} is {tensor.dtype} {tuple(tensor.shape)}, the "
                    f"{type(module).__name__} has {want.dtype} {tuple(want.shape)}",
                )
        module.load_state_dict(tensors)

    def _safetensors(self, name: str, data: bytes) -> dict[str, torch.Tensor]:
        from safetensors.torch import load

        header = _safetensors_header(data)
        if header is None:
            raise self.error(name, "not a safetensors file")
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict) or set(metadata) - {"format", "aliases"}:
            raise self.error(name, "unexpected safetensors metadata")
        if metadata.get("format") != WEIGHTS_FORMAT:
            raise self.error(name, f"not {WEIGHTS_FORMAT} weights")
        try:
            tensors = load(data)
            aliases = json.loads(metadata.get("aliases", "{}"))
        except Exception as exc:  # safetensors raises its own error types
            raise self.error(name, f"malformed safetensors ({exc})") from None
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and v in tensors and k not in tensors for k, v in aliases.items()
        ):
            raise self.error(name, "malformed tensor aliases")
        tensors.update({alias: tensors[original] for alias, original in aliases.items()})
        return tensors

    def load_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        """Load :func:`optimizer_bytes`'s member into ``optimizer`` (its moments and step)."""
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        parameter_bytes = sum(p.numel() * p.element_size() for p in parameters)
        cap = OPTIMIZER_BYTES_PER_PARAMETER_BYTE * parameter_bytes + MAX_JSON_BYTES
        state = self.data(name, cap)
        try:
            if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
                raise ValueError("expected 'state' and 'param_groups'")
            per_parameter = {int(k): tensors_from_arrays(v) for k, v in state["state"].items()}
            optimizer.load_state_dict(
                {"state": per_parameter, "param_groups": tensors_from_arrays(state["param_groups"])}
            )
        except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
            problem = f"does not fit this {type(optimizer).__name__} ({exc})"
            raise self.error(name, problem) from None


def check_count(value: Any) -> int:
    """``value`` if it is a non-negative int (a counter read from a file), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"expected a count, got {preview(value)}")
    return int(value)


def _safetensors_header(data: bytes) -> dict[str, Any] | None:
    if len(data) < 8:
        return None
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        return None
    try:
        header = parse_json(data[8 : 8 + length])
    except CodecError:
        return None
    return header if isinstance(header, dict) else None


def tensors_from_arrays(value: Any) -> Any:
    """Arrays back into tensors (optimizer states hold no numpy arrays of their own)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, dict):
        return {k: tensors_from_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tensors_from_arrays(v) for v in value]
    if isinstance(value, tuple):
        return tuple(tensors_from_arrays(v) for v in value)
    return value


def _arrays(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(value, dict):
        return {str(k): _arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arrays(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_arrays(v) for v in value)
    return value


# -- writing members -------------------------------------------------------------------------


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def data_bytes(value: Any) -> bytes:
    """A codec blob of plain values, numpy arrays and States; tensors become arrays."""
    return tree_bytes(_arrays(value))


def optimizer_bytes(optimizer: torch.optim.Optimizer) -> bytes:
    """The optimizer's state dict (moments, step, param groups) as a codec blob; on load
    the optimizer casts each moment back to its parameter's dtype and device."""
    return data_bytes(optimizer.state_dict())


def weights_bytes(module: nn.Module) -> bytes:
    """``module.state_dict()`` as safetensors. Tied weights (one tensor under two names, e.g.
    an LM's embedding and output layer) are stored once, the other name as an alias."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[tuple[int, str]] = set()
    for key, value in module.state_dict().items():
        tensor = value.detach().cpu()
        identity = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.stride())
        if tensor.numel() and identity in seen:
            aliases[key] = seen[identity]
            continue
        storage = (tensor.untyped_storage().data_ptr(), str(tensor.device))
        if tensor.numel() and (storage in storages or not tensor.is_contiguous()):
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        storages.add((tensor.untyped_storage().data_ptr(), str(tensor.device)))
        seen[identity] = key
        tensors[key] = tensor
    metadata = {"format": WEIGHTS_FORMAT, "aliases": json.dumps(aliases, sort_keys=True)}
    return save(tensors, metadata=metadata)


# -- classes a file may name ------------------------------------------------------------------


@cache
def allowed_policy_classes() -> dict[str, type]:
    """The policies an agent file may hold, by name: SB3's and sb3-contrib's actor-critic
    and Q-value policies (every learner ``make_learner`` builds or accepts) and lfi-gym's."""
    from sb3_contrib.common.maskable import policies as maskable
    from sb3_contrib.qrdqn import policies as qrdqn
    from stable_baselines3.common import policies as sb3
    from stable_baselines3.dqn import policies as dqn

    from lfi_gym.agents.lm_policy import LMPolicy
    from lfi_gym.agents.plackett_luce import PlackettLucePolicy

    classes = [
        sb3.ActorCriticPolicy,
        sb3.ActorCriticCnnPolicy,
        sb3.MultiInputActorCriticPolicy,
        dqn.DQNPolicy,
        dqn.CnnPolicy,
        dqn.MultiInputPolicy,
        maskable.MaskableActorCriticPolicy,
        maskable.MaskableActorCriticCnnPolicy,
        maskable.MaskableMultiInputActorCriticPolicy,
        qrdqn.QRDQNPolicy,
        qrdqn.CnnPolicy,
        qrdqn.MultiInputPolicy,
        LMPolicy,
        PlackettLucePolicy,
    ]
    return {qualified_name(cls): cls for cls in classes}


@cache
def allowed_component_classes() -> dict[str, type]:
    """Classes a policy's constructor arguments may name: torch activations and optimizers,
    SB3's feature extractors and lfi-gym's MinAtar network."""
    from stable_baselines3.common import torch_layers
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

    from lfi_gym.agents.learners import MinAtarCNN

    activations = [
        nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Softplus,
        nn.Mish, nn.SELU, nn.CELU, nn.Hardtanh, nn.Hardswish, nn.LogSigmoid, nn.Softsign,
        nn.Tanhshrink, nn.Identity,
    ]  # fmt: skip
    optim = torch.optim
    optimizers = [
        optim.Adam, optim.AdamW, optim.SGD, optim.RMSprop, optim.Adagrad, optim.Adadelta,
        optim.Adamax, optim.NAdam, optim.RAdam, RMSpropTFLike,
    ]  # fmt: skip
    extractors = [
        torch_layers.FlattenExtractor,
        torch_layers.NatureCNN,
        torch_layers.CombinedExtractor,
        MinAtarCNN,
    ]
    return {qualified_name(cls): cls for cls in [*activations, *optimizers, *extractors]}


def _lookup(name: Any, allowed: dict[str, type], what: str) -> type:
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(
            f"names {preview(name)}, which is not a {what} an agent file may hold (allowed: "
            f"{', '.join(sorted(allowed))})"
        )
    return allowed[name]


# -- values with classes, spaces and configs ----------------------------------------------------


def encode_value(value: Any, what: str, _depth: int = 0) -> Any:
    """``value`` (constructor arguments, policy kwargs) as JSON: scalars and lists stand for
    themselves; dicts, tuples, spaces, allowed classes and transformers configs become
    one-key objects (``{"dict": ...}``, ``{"class": name}``, ...). ``what`` names the value
    in the error for anything else."""
    if _depth > MAX_DEPTH:
        raise ValueError(f"{what} nests deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, list):
        return [encode_value(v, what, _depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v, what, _depth + 1) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"{what}: only dicts with string keys can be saved, got {list(value)}")
        return {"dict": {k: encode_value(v, what, _depth + 1) for k, v in value.items()}}
    if isinstance(value, gym.Space):
        try:
            return {"space": space_to_json(value)}
        except CodecError as exc:
            raise ValueError(f"{what}: {exc}") from None
    if isinstance(value, type):
        allowed = allowed_component_classes()
        if qualified_name(value) not in allowed or allowed[qualified_name(value)] is not value:
            raise ValueError(
                f"{what} names the class {qualified_name(value)}, which agent files cannot hold "
                f"(they name classes from an allow-list: {', '.join(sorted(allowed))})"
            )
        return {"class": qualified_name(value)}
    from transformers import PretrainedConfig

    if isinstance(value, PretrainedConfig):
        config = value.to_dict()
        if config.get("auto_map"):
            raise ValueError(
                f"{what}: a model with remote code (auto_map {config['auto_map']}) cannot be "
                "saved to an agent file, which never runs code; use a transformers model type"
            )
        return {"transformers_config": config}
    raise ValueError(
        f"{what} holds a {type(value).__name__}, which agent files cannot hold (they hold "
        "numbers, strings, lists, tuples, dicts, Gymnasium spaces, transformers configs and "
        "allowed classes)"
    )


def decode_value(node: Any, _depth: int = 0) -> Any:
    """Invert :func:`encode_value`; ValueError for anything it would not write."""
    if _depth > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [decode_value(v, _depth + 1) for v in node]
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"malformed value {preview(node)}")
    ((kind, body),) = node.items()
    if kind == "tuple" and isinstance(body, list):
        return tuple(decode_value(v, _depth + 1) for v in body)
    if kind == "dict" and isinstance(body, dict):
        return {k: decode_value(v, _depth + 1) for k, v in body.items()}
    if kind == "space":
        return space_from_json(body)
    if kind == "class":
        return _lookup(body, allowed_component_classes(), "class")
    if kind == "transformers_config" and isinstance(body, dict):
        return _transformers_config(body)
    raise ValueError(f"malformed value {preview(node)}")


def _transformers_config(config: dict[str, Any]) -> Any:
    """A config of one of transformers' own model types (never remote code)."""
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    known = isinstance(model_type, str) and model_type in CONFIG_MAPPING
    if config.get("auto_map") or not known:
        raise ValueError(
            f"the transformers config has model_type {preview(model_type)}, which is not one "
            "of transformers' own model types (agent files never load remote code)"
        )
    for key in ("attn_implementation", "_attn_implementation"):
        # A value naming a hub repository ("org/kernels") downloads attention kernels and
        # runs them; transformers' own implementations ("sdpa", "eager", ...) are plain names.
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or "/" in value):
            raise ValueError(
                f"the transformers config sets {key}={preview(value)}; agent files accept "
                "only transformers' own attention implementations (a hub repository of "
                "kernels would run its code)"
            )
    return CONFIG_MAPPING[model_type].from_dict(config)


# -- policies ---------------------------------------------------------------------------------


def policy_members(policy: nn.Module, prefix: str = "policy") -> dict[str, bytes]:
    """``{prefix}.json`` (the class by name, its constructor arguments) and
    ``{prefix}.safetensors`` (the weights); :func:`read_policy` rebuilds the policy."""
    cls = type(policy)
    allowed = allowed_policy_classes()
    if allowed.get(qualified_name(cls)) is not cls:
        raise ValueError(
            f"cannot save a {qualified_name(cls)} policy: agent files name the policy class "
            f"from an allow-list ({', '.join(sorted(allowed))}); train one of these, or save the "
            "weights yourself (torch.save(policy.state_dict(), ...))"
        )
    what = f"the {cls.__name__}'s constructor argument"
    constructor = {}
    for key, value in policy._get_constructor_parameters().items():
        if key == "lr_schedule":
            # A callable: SB3 gives a dummy; the learning rate is all it sets (the optimizer's
            # state, saved separately where it matters, restores the rest).
            optimizer = getattr(policy, "optimizer", None)
            rate = optimizer.param_groups[0]["lr"] if optimizer is not None else 0.0
            constructor[key] = {"constant_schedule": float(rate)}
        elif key == "scorer" and value is not None:
            raise ValueError(
                f"cannot save a {cls.__name__} with a custom scorer ({type(value).__name__}): "
                "agent files rebuild policies from JSON, and a custom module's structure is "
                "code; use net_arch / activation, or save the weights yourself"
            )
        else:
            constructor[key] = encode_value(value, f"{what} {key!r}")
    description = {"class": qualified_name(cls), "constructor": constructor}
    return {
        f"{prefix}.json": json_bytes(description),
        f"{prefix}.safetensors": weights_bytes(policy),
    }


def read_policy(reader: AgentFileReader, device: torch.device, prefix: str = "policy") -> nn.Module:
    """Build the policy :func:`policy_members` described and load its weights."""
    name = f"{prefix}.json"
    description = reader.json(name)
    try:
        if not isinstance(description, dict) or set(description) != {"class", "constructor"}:
            raise ValueError("expected 'class' and 'constructor'")
        cls = _lookup(description["class"], allowed_policy_classes(), "policy class")
        arguments = description["constructor"]
        if not isinstance(arguments, dict):
            raise ValueError("malformed constructor arguments")
        kwargs = {k: _decode_argument(k, v) for k, v in arguments.items()}
    except (ValueError, CodecError) as exc:
        raise reader.error(name, str(exc)) from None
    try:
        policy = cls(**kwargs)
    except Exception as exc:  # the constructor's own checks: the arguments do not fit
        raise reader.error(name, f"cannot build a {cls.__name__} ({exc})") from None
    reader.load_weights(f"{prefix}.safetensors", policy)
    return policy.to(device)


def _decode_argument(key: str, node: Any) -> Any:
    if key == "lr_schedule":
        from stable_baselines3.common.utils import ConstantSchedule

        if not (isinstance(node, dict) and set(node) == {"constant_schedule"}):
            raise ValueError(f"malformed lr_schedule {preview(node)}")
        rate = node["constant_schedule"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
            raise ValueError(f"malformed learning rate {preview(rate)}")
        return ConstantSchedule(float(rate))
    return decode_value(node)


__all__ = [
    "AgentFileError",
    "AgentFileReader",
    "allowed_component_classes",
    "allowed_policy_classes",
    "check_count",
    "data_bytes",
    "decode_value",
    "encode_value",
    "json_bytes",
    "optimizer_bytes",
    "policy_members",
    "read_policy",
    "weights_bytes",
]
