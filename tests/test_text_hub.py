"""Offline-first loading of hub assets: local directories, the cache, fast clear failures."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from lfi_gym.envs.text import hub
from lfi_gym.envs.text.hub import MissingAssetError, hub_reachable, load_hf_dataset, load_pretrained

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.fixture
def online_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No offline variable set, and a fresh probe cache before and after the test."""
    from huggingface_hub import constants

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub.reset_hub_cache()
    yield monkeypatch
    hub.reset_hub_cache()


def _count_connects(monkeypatch: pytest.MonkeyPatch, *, succeed: bool) -> list[tuple]:
    calls: list[tuple] = []

    class _Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_connect(address, timeout=None):
        calls.append((address, timeout))
        if not succeed:
            raise OSError("unreachable")
        return _Connection()

    monkeypatch.setattr(socket, "create_connection", fake_connect)
    return calls


def test_hub_reachable_probes_endpoint_once_and_caches(online_env: pytest.MonkeyPatch) -> None:
    calls = _count_connects(online_env, succeed=True)
    assert hub_reachable(timeout=0.5) is True
    assert hub_reachable(timeout=0.5) is True
    assert len(calls) == 1
    (host, port), timeout = calls[0]
    assert port == 443 and timeout == 0.5 and host == "huggingface.co"
    hub_reachable.cache_clear()
    calls_after = _count_connects(online_env, succeed=False)
    assert hub_reachable(timeout=0.5) is False
    assert len(calls_after) == 1


@pytest.mark.parametrize("variable", OFFLINE_VARIABLES)
def test_offline_variables_make_hub_unreachable(
    online_env: pytest.MonkeyPatch, variable: str
) -> None:
    calls = _count_connects(online_env, succeed=True)
    assert hub_reachable() is True
    online_env.setenv(variable, "1")
    assert hub_reachable() is False  # also after a cached success: read on every call
    online_env.setenv(variable, "0")
    assert hub_reachable() is True
    assert len(calls) == 1


def _warm_up(loader) -> None:
    """Fail once on another name, so that the timed call measures no lazy imports of
    transformers' model code (seconds on a busy machine), only the absence of retries."""
    with pytest.raises(MissingAssetError):
        load_pretrained(loader, "lfi-gym-tests/warm-up", asset="model", argument="model")


def test_missing_model_fails_fast_with_a_useful_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForSequenceClassification

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=2.0: False)
    _warm_up(AutoModelForSequenceClassification.from_pretrained)
    start = time.perf_counter()
    with pytest.raises(MissingAssetError) as caught:
        load_pretrained(
            AutoModelForSequenceClassification.from_pretrained,
            "lfi-gym-tests/no-such-classifier",
            asset="reward model",
            argument="reward_model",
            env_id="TextGen-IMDB-v0",
        )
    assert time.perf_counter() - start < 5.0
    message = str(caught.value)
    for part in (
        "TextGen-IMDB-v0",
        "reward model",
        "'lfi-gym-tests/no-such-classifier'",
        "reward_model=",
        "TextGen-TinyReviews-v0",
        "AutoModelForSequenceClassification.from_pretrained(",
        "save_pretrained",
        "cannot be reached",
    ):
        assert part in message
    assert isinstance(caught.value, FileNotFoundError)


def test_reward_constructor_reports_missing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForSequenceClassification, PreTrainedModel

    from lfi_gym.envs.text.rewards import SequenceClassifierReward

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert PreTrainedModel
    _warm_up(AutoModelForSequenceClassification.from_pretrained)
    start = time.perf_counter()
    with pytest.raises(MissingAssetError, match=r"reward model .*reward_model=.*TinyReviews"):
        SequenceClassifierReward(model="lfi-gym-tests/no-such-classifier", env_id="TextGen-IMDB-v0")
    assert time.perf_counter() - start < 5.0


def test_load_pretrained_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[str, dict]] = []

    def loader(name: str, **kwargs):
        calls.append((name, kwargs))
        if kwargs.get("local_files_only") and name != "cached/model":
            raise OSError("not in cache")
        if name == "broken/model":
            raise OSError("404 Client Error")
        return f"loaded {name}"

    # 1. A local directory is used as is, with no cache or hub look-up.
    assert load_pretrained(loader, tmp_path, asset="policy", argument="model") == (
        f"loaded {tmp_path}"
    )
    assert calls == [(str(tmp_path), {})]
    # 2. A cached name needs no network: the hub is never probed.
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=2.0: pytest.fail("probed the hub"))
    calls.clear()
    assert load_pretrained(loader, "cached/model", asset="policy", argument="model", revision="x")
    assert calls == [("cached/model", {"local_files_only": True, "revision": "x"})]
    # 3. Not cached, hub reachable: downloaded; a download failure keeps its cause.
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=2.0: True)
    assert load_pretrained(loader, "hub/model", asset="policy", argument="model") == (
        "loaded hub/model"
    )
    with pytest.raises(MissingAssetError, match=r"downloading it .*404 Client Error") as caught:
        load_pretrained(loader, "broken/model", asset="policy", argument="policy_model")
    assert isinstance(caught.value.__cause__, OSError)
    assert "policy_model=" in str(caught.value)


def test_load_pretrained_real_tokenizer_from_directory(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        ["a b c", "b c d"], trainers.WordLevelTrainer(special_tokens=["[UNK]"])
    )
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(tmp_path)
    tokenizer = load_pretrained(
        AutoTokenizer.from_pretrained, str(tmp_path), asset="tokenizer", argument="tokenizer"
    )
    assert tokenizer("a d zz")["input_ids"] == [
        tokenizer.convert_tokens_to_ids("a"),
        tokenizer.convert_tokens_to_ids("d"),
        tokenizer.unk_token_id,
    ]


def test_load_hf_dataset_round_trip_and_objects(tmp_path: Path) -> None:
    import datasets

    data = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}),
            "test": datasets.Dataset.from_dict({"text": ["fine"], "label": [1]}),
        }
    )
    assert load_hf_dataset(data, asset="data set", argument="dataset") is data
    data.save_to_disk(str(tmp_path / "saved"))
    loaded = load_hf_dataset(tmp_path / "saved", asset="data set", argument="dataset")
    assert isinstance(loaded, datasets.DatasetDict)
    assert set(loaded) == {"train", "test"}
    assert loaded["train"]["text"] == ["good", "bad"] and loaded["test"]["label"] == [1]
    data["train"].save_to_disk(str(tmp_path / "split"))
    assert load_hf_dataset(str(tmp_path / "split"), asset="x", argument="y")["label"] == [1, 0]
    with pytest.raises(TypeError, match="do not apply"):
        load_hf_dataset(data, asset="data set", argument="dataset", split="train")
    with pytest.raises(TypeError, match=r"must be a datasets\.Dataset"):
        load_hf_dataset(3, asset="data set", argument="dataset")


def test_load_hf_dataset_unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "offline_mode", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=2.0: False)
    start = time.perf_counter()
    with pytest.raises(MissingAssetError) as caught:
        load_hf_dataset("imdb", asset="data set", argument="dataset", env_id="TextGen-IMDB-v0")
    assert time.perf_counter() - start < 5.0
    message = str(caught.value)
    for part in ("TextGen-IMDB-v0", "data set 'imdb'", "dataset=", "save_to_disk", "TinyReviews"):
        assert part in message
