"""Agent files never run code when loaded: forged members (a pickle payload in each member of
a real save of every kind of agent, smuggling safetensors, classes outside the allow-list)
and oversized members are refused with AgentFileError, and the payload never runs.

The forged zips are rewritten with zipfile, which recomputes every CRC: the files pass every
integrity check, so only the format's own refusals stand between the payload and the loader.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lfi_gym import agents, envs
from lfi_gym.agents import serialization
from lfi_gym.agents.serialization import AgentFileError

torch.set_num_threads(1)

CARTPOLE = "Control-CartPole-v0"
RANK_KWARGS = {"n_queries": (30, 5, 5), "max_candidates": 6, "n_features": 4, "k_positions": 3}
POLICY = ["agent.json", "policy.json", "policy.safetensors"]
TRAINER = ["optimizer.data", "trainer.data"]
PPO_MEMBERS = [*POLICY, *TRAINER, "reference.json", "reference.safetensors"]

#: Every member a real save of each kind of agent holds.
MEMBERS: dict[str, list[str]] = {
    "bc": [*POLICY, *TRAINER],
    "dagger": [*POLICY, *TRAINER, "aggregate.lfid", "rollout.data"],
    "dril": [
        *POLICY,
        "demonstrations.lfid",
        "ensemble.safetensors",
        "dril.data",
        "bc_optimizer.data",
        "rl_model.data",
        "rl_optimizer.data",
    ],
    "ppo": PPO_MEMBERS,
    "lols": [*PPO_MEMBERS, "lols.json"],
    "pgrank": [*POLICY, *TRAINER],
}


class Payload:
    """Unpickling this creates ``marker``: what a malicious file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


def torch_payload(marker: Path) -> bytes:
    """The payload in torch.save's zip format (what version-1 ``.pt`` members were)."""
    import io

    buffer = io.BytesIO()
    torch.save({"state_dict": Payload(marker)}, buffer)
    return buffer.getvalue()


# -- real saves ---------------------------------------------------------------------------------


def _cartpole() -> gym.Env:
    return gym.make(CARTPOLE)


def _rank_env() -> gym.Env:
    return gym.make("Rank-Synthetic-v0", **RANK_KWARGS)


def _save_bc(path: Path) -> Path:
    env = _cartpole()
    demos = agents.Demonstrations.collect(env, envs.make_expert(env), n_steps=40, seed=0)
    return agents.BC(env, demos, seed=0, device="cpu").learn(64).save(path)


def _save_dagger(path: Path) -> Path:
    env = _cartpole()
    dagger = agents.DAgger(env, envs.make_expert(env), steps_per_round=30, n_epochs=1, seed=0)
    return dagger.learn(45).save(path)  # mid-round: the rollout holds the env's State


def _save_dril(path: Path) -> Path:
    env = _cartpole()
    demos = agents.Demonstrations.collect(env, envs.make_expert(env), n_steps=40, seed=0)
    dril = agents.DRIL(
        env,
        demos,
        ensemble_size=2,
        ensemble_epochs=1,
        bc_epochs=1,
        n_envs=1,
        rl_kwargs={"n_steps": 16, "batch_size": 16, "n_epochs": 1},
        seed=0,
        device="cpu",
    )
    return dril.learn(32).save(path)


def _save_ppo(path: Path) -> Path:
    ppo = agents.PPO(
        _cartpole(), kl_coef=0.1, n_envs=1, n_steps=16, batch_size=16, seed=0, device="cpu"
    )
    assert ppo.reference is not None
    return ppo.learn(16).save(path)


def _save_lols(path: Path) -> Path:
    env = _cartpole()
    lols = agents.LOLS(
        env, guide=envs.make_expert(env), n_envs=1, n_steps=16, batch_size=16, seed=0, device="cpu"
    )
    return lols.learn(16).save(path)


def _save_pgrank(path: Path) -> Path:
    pgrank = agents.PGRank(_rank_env(), queries_per_update=2, n_samples=2, seed=0, device="cpu")
    return pgrank.learn(4).save(path)


SAVERS: dict[str, Callable[[Path], Path]] = {
    "bc": _save_bc,
    "dagger": _save_dagger,
    "dril": _save_dril,
    "ppo": _save_ppo,
    "lols": _save_lols,
    "pgrank": _save_pgrank,
}


def load(kind: str, path: Path) -> Any:
    cls = agents.agent_class(kind)
    if kind == "pgrank":
        return cls.load(path, env=_rank_env())
    env = _cartpole()
    if kind == "dagger":
        return cls.load(path, env=env, expert=envs.make_expert(env))
    if kind == "lols":
        return cls.load(path, env=env, guide=envs.make_expert(env))
    return cls.load(path, env=env)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Callable[[str], Path]:
    """A real save of each kind of agent, made once, on first use."""
    directory = tmp_path_factory.mktemp("saves")
    paths: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in paths:
            paths[kind] = SAVERS[kind](directory / kind)
        return paths[kind]

    return get


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]]) -> Path:
    """A zip of ``members``, its CRCs computed by zipfile (it passes every integrity check)."""
    items = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, written on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in items:
                zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # every CRC checks out
    return path


def forged(saved_path: Path, out: Path, replacements: dict[str, bytes] | None = None) -> Path:
    """A copy of a real save with some members' bytes replaced."""
    return write_zip(out, {**members_of(saved_path), **(replacements or {})})


def assert_refused(kind: str, path: Path, member: str, marker: Path, *fragments: str) -> None:
    with pytest.raises(AgentFileError) as info:
        load(kind, path)
    message = str(info.value)
    assert str(path) in message and f"'{member}'" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert not marker.exists(), "the payload ran"


# -- a pickle payload in every member ---------------------------------------------------------


def test_the_payload_fires_under_plain_pickle(tmp_path) -> None:
    """The control: the payload the tests plant does run when unpickled."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle_payload(marker))
    assert marker.exists()
    marker.unlink()
    torch.load(__import__("io").BytesIO(torch_payload(marker)), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("kind", "member"), [(kind, member) for kind, names in MEMBERS.items() for member in names]
)
def test_a_pickle_payload_in_any_member_is_refused_and_never_runs(
    kind, member, saved, tmp_path
) -> None:
    path = saved(kind)
    assert sorted(members_of(path)) == sorted(MEMBERS[kind])  # every member is covered
    marker = tmp_path / "pwned"
    payload = pickle_payload(marker)
    bad = forged(path, tmp_path / "bad.zip", {member: payload})
    assert_refused(kind, bad, member, marker)
    pickle.loads(payload)  # control: the same bytes do run under pickle
    assert marker.exists()


#: Where version 1 held torch pickles (``policy.pt``, ``optimizer.pt``, ``trainer.pt``...).
FORMER_TORCH_MEMBERS = [
    (kind, member)
    for kind, names in MEMBERS.items()
    for member in names
    if member.endswith((".safetensors", ".data"))
]


@pytest.mark.parametrize(("kind", "member"), FORMER_TORCH_MEMBERS)
def test_a_torch_pickle_where_version_1_had_one_is_refused(kind, member, saved, tmp_path) -> None:
    marker = tmp_path / "pwned"
    bad = forged(saved(kind), tmp_path / "bad.zip", {member: torch_payload(marker)})
    assert_refused(kind, bad, member, marker)


@pytest.mark.parametrize("legacy", ["policy.pt", "optimizer.pt", "rl_model.zip"])
def test_an_extra_member_is_refused_unread(legacy, saved, tmp_path) -> None:
    """Only the expected members are read: a version-1 member name planted in a version-2
    file (or any other name) refuses the whole file."""
    marker = tmp_path / "pwned"
    bad = write_zip(
        tmp_path / "bad.zip", {**members_of(saved("bc")), legacy: pickle_payload(marker)}
    )
    assert_refused("bc", bad, legacy, marker, "unexpected member")


def test_a_member_given_twice_is_refused(saved, tmp_path) -> None:
    """zipfile reads the last of two entries of one name; a file with two is refused."""
    members = list(members_of(saved("bc")).items())
    marker = tmp_path / "pwned"
    bad = write_zip(tmp_path / "bad.zip", [*members, ("trainer.data", pickle_payload(marker))])
    assert_refused("bc", bad, "trainer.data", marker, "appears more than once")


# -- safetensors that smuggle something ------------------------------------------------------


def _weights(tensors: dict[str, torch.Tensor], **metadata: str) -> bytes:
    return save_safetensors(
        tensors, metadata={"format": "lfi-gym.weights", "aliases": "{}", **metadata}
    )


def test_safetensors_with_a_fine_header_that_smuggle_are_refused(saved, tmp_path) -> None:
    path = saved("bc")
    marker = tmp_path / "pwned"
    payload = pickle_payload(marker)
    tensors = load_safetensors(members_of(path)["policy.safetensors"])
    first = next(iter(tensors))
    cases = {
        "unexpected tensor 'payload'": _weights(
            {**tensors, "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
        ),
        "unexpected safetensors metadata": _weights(tensors, pickle=payload.hex()),
        f"tensor '{first}' is torch.float32 (3,)": _weights({**tensors, first: torch.zeros(3)}),
        f"no tensor '{first}'": _weights({k: v for k, v in tensors.items() if k != first}),
        "malformed tensor aliases": _weights(tensors, aliases=json.dumps({"x": "missing"})),
    }
    for problem, weights in cases.items():
        bad = forged(path, tmp_path / "bad.zip", {"policy.safetensors": weights})
        assert_refused("bc", bad, "policy.safetensors", marker, problem)


# -- classes outside the allow-list -----------------------------------------------------------


@pytest.fixture
def importable_payload(tmp_path, monkeypatch) -> Path:
    """A module ``lfi_evil`` that creates a marker when imported: a file naming
    ``lfi_evil.Evil`` would run it if loading imported classes by name."""
    marker = tmp_path / "imported"
    (tmp_path / "lfi_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass Evil:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lfi_evil", raising=False)
    return marker


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "lfi_evil.Evil"])
def test_a_policy_class_outside_the_allow_list_is_refused(
    name, saved, tmp_path, importable_payload
) -> None:
    for kind, member in [("bc", "policy.json"), ("ppo", "reference.json")]:
        path = saved(kind)
        description = json.loads(members_of(path)[member])
        description["class"] = name
        bad = forged(path, tmp_path / "bad.zip", {member: json.dumps(description).encode()})
        assert_refused(kind, bad, member, importable_payload, f"'{name}'", "not a policy class")
    assert "lfi_evil" not in sys.modules


@pytest.mark.parametrize("name", ["builtins.eval", "subprocess.Popen", "lfi_evil.Evil"])
def test_a_constructor_class_outside_the_allow_list_is_refused(
    name, saved, tmp_path, importable_payload
) -> None:
    path = saved("bc")
    description = json.loads(members_of(path)["policy.json"])
    assert description["constructor"]["activation_fn"] == {
        "class": "torch.nn.modules.activation.Tanh"
    }
    description["constructor"]["activation_fn"] = {"class": name}
    bad = forged(path, tmp_path / "bad.zip", {"policy.json": json.dumps(description).encode()})
    assert_refused("bc", bad, "policy.json", importable_payload, f"'{name}'", "not a class")
    assert "lfi_evil" not in sys.modules


def test_a_transformers_config_of_unknown_type_is_refused(saved, tmp_path) -> None:
    """An LMPolicy's model is rebuilt only from transformers' own model types, never from a
    config that maps to remote code."""
    path = saved("bc")
    description = json.loads(members_of(path)["policy.json"])
    marker = tmp_path / "pwned"
    own_types_only = "not one of transformers' own"
    for config, fragment in [
        ({"model_type": "lfi_evil"}, own_types_only),
        (
            {"model_type": "gpt2", "auto_map": {"AutoModelForCausalLM": "lfi_evil.E"}},
            own_types_only,
        ),
        (
            {"model_type": "gpt2", "attn_implementation": "kernels-community/flash-attn"},
            "only transformers' own attention implementations",
        ),
    ]:
        description["constructor"]["observation_space"] = {"transformers_config": config}
        bad = forged(path, tmp_path / "bad.zip", {"policy.json": json.dumps(description).encode()})
        assert_refused("bc", bad, "policy.json", marker, fragment)


def test_policy_kwargs_in_agent_json_name_only_allowed_classes(saved, tmp_path) -> None:
    path = saved("dagger")
    meta = json.loads(members_of(path)["agent.json"])
    meta["extra"]["policy_spec"] = {
        "tuple": ["MlpPolicy", {"dict": {"features_extractor_class": {"class": "os.system"}}}]
    }
    bad = forged(path, tmp_path / "bad.zip", {"agent.json": json.dumps(meta).encode()})
    assert_refused("dagger", bad, "agent.json", tmp_path / "pwned", "'os.system'")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        # A file must not pick the model DAgger reloads on retrain_from_scratch, nor let
        # that model's repository run its own code.
        ({"tuple": ["gpt2", None]}, "policy_spec names 'gpt2'"),
        (
            {"tuple": ["LMPolicy", {"dict": {"trust_remote_code": True}}]},
            "sets trust_remote_code, which a file may not set",
        ),
    ],
)
def test_a_policy_spec_that_could_run_a_models_code_is_refused(
    saved, tmp_path, spec, fragment
) -> None:
    path = saved("dagger")
    meta = json.loads(members_of(path)["agent.json"])
    meta["extra"]["policy_spec"] = spec
    bad = forged(path, tmp_path / "bad.zip", {"agent.json": json.dumps(meta).encode()})
    assert_refused("dagger", bad, "agent.json", tmp_path / "pwned", fragment)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"hyperparameters": {"lr_schedule_code": "x"}},
            "has no hyperparameter(s) 'lr_schedule_code'",
        ),
        ({"num_timesteps": -5}, "negative 'num_timesteps'"),
        ({"class": "PPO"}, "holds a PPO agent; load it with PPO.load(path)"),
    ],
)
def test_agent_json_fields_the_agent_does_not_have_are_refused(
    saved, tmp_path, change, fragment
) -> None:
    path = saved("bc")
    meta = json.loads(members_of(path)["agent.json"])
    for key, value in change.items():
        meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
    bad = forged(path, tmp_path / "bad.zip", {"agent.json": json.dumps(meta).encode()})
    with pytest.raises(AgentFileError) as info:
        load("bc", bad)
    assert fragment in str(info.value)


def test_saving_a_policy_of_an_unknown_class_names_it(tmp_path) -> None:
    from stable_baselines3.common.policies import ActorCriticPolicy

    class MyPolicy(ActorCriticPolicy):
        pass

    env = _cartpole()
    policy = MyPolicy(env.observation_space, env.action_space, lambda _: 1e-3)
    bc = agents.BC(env, policy=policy, device="cpu")
    with pytest.raises(
        ValueError, match=r"cannot save a .*MyPolicy policy.*allow-list.*ActorCriticPolicy"
    ):
        bc.save(tmp_path / "bc")
    policy = agents.BC(
        env, policy_kwargs={"activation_fn": torch.nn.Hardshrink}, device="cpu"
    ).policy
    with pytest.raises(
        ValueError, match=r"activation_fn.*torch.nn.modules.activation.Hardshrink.*allow-list"
    ):
        agents.BC(env, policy=policy, device="cpu").save(tmp_path / "bc")
    assert not (tmp_path / "bc.zip").exists()


# -- size caps ----------------------------------------------------------------------------------


@pytest.fixture
def bytes_decompressed(monkeypatch) -> dict[str, int]:
    """How many bytes were decompressed from each member while the test runs."""
    sizes: dict[str, int] = {}
    read = zipfile.ZipExtFile.read

    def spy(self, n=-1):
        data = read(self, n)
        sizes[self.name] = sizes.get(self.name, 0) + len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", spy)
    return sizes


def test_a_member_over_its_cap_is_refused_unread(saved, monkeypatch, bytes_decompressed) -> None:
    path = saved("bc")
    monkeypatch.setattr(serialization, "MAX_STATE_BYTES", 100)
    with pytest.raises(
        AgentFileError, match=r"member 'trainer.data': \d+ bytes exceed the cap of 100"
    ):
        load("bc", path)
    assert "trainer.data" not in bytes_decompressed and "policy.json" in bytes_decompressed


def _set_directory_size(path: Path, member: str, size: int) -> None:
    """Make the zip's central directory claim ``size`` uncompressed bytes for ``member``."""
    data = bytearray(path.read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + name_length].decode() == member:
            struct.pack_into("<I", data, start + 24, size)
            path.write_bytes(bytes(data))
            return
        start += 4
    raise AssertionError(f"{member} not in {path}")


def test_a_directory_claiming_a_huge_member_is_refused_before_reading(
    saved, tmp_path, bytes_decompressed
) -> None:
    bad = forged(saved("bc"), tmp_path / "bad.zip")
    _set_directory_size(bad, "optimizer.data", 0xFFFF0000)
    bytes_decompressed.clear()
    with pytest.raises(AgentFileError, match=r"member 'optimizer.data': 4294901760 bytes exceed"):
        load("bc", bad)
    assert "optimizer.data" not in bytes_decompressed


def test_a_compressed_bomb_under_a_lying_directory_never_inflates(saved, tmp_path) -> None:
    """64 MiB of zeros (64 KiB compressed) whose directory claims 1 KiB: reading stops at the
    claimed size (then the CRC fails) or the cap, never inflating the 64 MiB."""
    import tracemalloc

    bomb = bytes(64 << 20)
    bad = forged(saved("bc"), tmp_path / "bad.zip", {"trainer.data": bomb})
    del bomb
    assert bad.stat().st_size < 1 << 20
    _set_directory_size(bad, "trainer.data", 1024)
    tracemalloc.start()
    try:
        with pytest.raises(AgentFileError, match=r"member 'trainer.data': unreadable \(Bad CRC"):
            load("bc", bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_weights_are_capped_at_the_size_of_the_model_they_load_into(saved, tmp_path) -> None:
    """A weights member may not exceed its module's tensors plus a header allowance."""
    path = saved("bc")
    tensors = load_safetensors(members_of(path)["policy.safetensors"])
    padding = {"padding": torch.zeros(serialization.WEIGHTS_HEADER_ALLOWANCE // 2)}
    bad = forged(
        path, tmp_path / "bad.zip", {"policy.safetensors": _weights({**tensors, **padding})}
    )
    with pytest.raises(
        AgentFileError, match=r"member 'policy.safetensors': \d+ bytes exceed the cap"
    ):
        load("bc", bad)
