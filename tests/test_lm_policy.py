"""LMPolicy: a Hugging Face LM as a Policy, with its KV cache carried in ``state``."""

from __future__ import annotations

import pickle
from importlib.metadata import requires, version
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from packaging.requirements import Requirement

from lfi_gym.agents import BC
from lfi_gym.agents.data import Demonstrations
from lfi_gym.agents.lm_policy import LMCache, LMPolicy
from lfi_gym.envs import make_expert

IMDB = "TextGen-IMDB-v0"
COMMONGEN = "TextGen-CommonGen-v0"


class ForwardRecorder:
    """Records the sequence length of every forward pass of a model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.lengths: list[int] = []
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is None:
            ids = kwargs.get("decoder_input_ids")
        self.lengths.append(int(ids.shape[1]))


def _rollout(policy, vec, steps: int, *, cached: bool = True):
    """Greedy actions from predict (with or without the cache) and from forward_last."""
    obs, _ = vec.reset(seed=0)
    state, predicted, recomputed = None, [], []
    for _ in range(steps):
        actions, state = policy.predict(obs, state if cached else None, deterministic=True)
        with torch.no_grad():
            logits, _ = policy.forward_last({k: torch.as_tensor(v) for k, v in obs.items()})
        predicted.append(actions)
        recomputed.append(logits.argmax(-1).numpy())
        obs, *_ = vec.step(actions)
    return np.array(predicted), np.array(recomputed)


@pytest.mark.parametrize("env_id", [IMDB, COMMONGEN])
def test_cached_decoding_equals_full_recomputation(env_id, text_assets) -> None:
    vec = gym.make_vec(env_id, num_envs=4, **text_assets.env_kwargs(env_id))
    path = text_assets.gpt2 if env_id == IMDB else text_assets.t5
    policy = LMPolicy.from_pretrained(path, env=vec, device="cpu")
    steps = vec.task.max_new_tokens - 1
    predicted, recomputed = _rollout(policy, vec, steps)
    assert np.array_equal(predicted, recomputed)
    # And the cache changes nothing against predicting without it.
    uncached, _ = _rollout(policy, vec, steps, cached=False)
    assert np.array_equal(predicted, uncached)


@pytest.mark.parametrize("env_id", [IMDB, COMMONGEN])
def test_scoring_whole_sequences_equals_scoring_each_step(env_id, text_assets) -> None:
    """evaluate_generated (one pass per sequence, how PPO trains) gives each token the
    log-probability, entropy and value evaluate_actions gives it on its own step."""
    vec = gym.make_vec(env_id, num_envs=3, **text_assets.env_kwargs(env_id))
    path = text_assets.gpt2 if env_id == IMDB else text_assets.t5
    torch.manual_seed(0)
    policy = LMPolicy.from_pretrained(path, env=vec, value_head=True, device="cpu")
    torch.nn.init.normal_(policy.value_head.weight)
    obs, _ = vec.reset(seed=3)
    steps, actions, state = [], [], None
    for _ in range(vec.task.max_new_tokens - 2):
        action, state = policy.predict(obs, state)
        steps.append({k: torch.as_tensor(v) for k, v in obs.items()})
        actions.append(torch.as_tensor(action))
        obs, *_ = vec.step(action)
    with torch.no_grad():
        values, log_prob, entropy = policy.evaluate_generated(obs)
        for t, (step, action) in enumerate(zip(steps, actions, strict=True)):
            step_values, step_log_prob, step_entropy = policy.evaluate_actions(step, action)
            torch.testing.assert_close(log_prob[:, t], step_log_prob, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(entropy[:, t], step_entropy, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(values[:, t], step_values[:, 0], atol=1e-4, rtol=1e-4)


def test_gradients_stay_finite_where_eos_is_masked() -> None:
    """min_new_tokens masks EOS with -inf: the entropy's gradient must not be NaN."""
    env = gym.make("TextGen-TinyReviews-v0", max_new_tokens=4, min_new_tokens=4)
    policy = LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env, value_head=True)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        action, _ = policy.predict(obs)
        obs, *_ = env.step(int(action))
    values, log_prob, entropy = policy.evaluate_generated(
        {k: torch.as_tensor(v[None]) for k, v in obs.items()}
    )
    (log_prob.mean() - entropy.mean() + values.mean()).backward()
    for parameter in policy.parameters():
        assert torch.isfinite(parameter.grad).all()


def test_a_row_shown_the_same_observation_is_frozen_in_the_cache(text_assets) -> None:
    vec = gym.make_vec(IMDB, num_envs=3, **text_assets.env_kwargs(IMDB))
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=vec, device="cpu")
    recorder = ForwardRecorder(policy.model)
    obs, _ = vec.reset(seed=0)
    actions, state = policy.predict(obs)
    first_logits = state.logits[1].clone()
    frozen = obs["input_ids"][1].copy(), obs["attention_mask"][1].copy()
    for _ in range(4):
        obs, *_ = vec.step(actions)
        view = {k: v.copy() for k, v in obs.items()}
        view["input_ids"][1], view["attention_mask"][1] = frozen
        actions, state = policy.predict(view, state)
        # row 1 keeps the distribution of its (unchanged) observation
        assert torch.equal(state.logits[1], first_logits)
    assert recorder.lengths[1:] == [1, 1, 1, 1]  # one decode step per call, no recompute
    # the moving rows match a full recomputation of their observations
    with torch.no_grad():
        logits, _ = policy.forward_last({k: torch.as_tensor(v) for k, v in view.items()})
    torch.testing.assert_close(
        policy._action_logits(state.logits, view["attention_mask"])[[0, 2]],
        logits[[0, 2]],
        atol=1e-4,
        rtol=1e-4,
    )


def test_greedy_rollout_matches_generate(text_assets) -> None:
    kwargs = text_assets.env_kwargs(IMDB)
    vec = gym.make_vec(IMDB, num_envs=5, **kwargs)
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=vec, device="cpu")
    obs, _ = vec.reset(seed=3)
    p, n = vec.prompt_length, vec.task.max_new_tokens
    ours, state = [], None
    for _ in range(n):
        actions, state = policy.predict(obs, state, deterministic=True)
        ours.append(actions)
        obs, *_ = vec.step(actions)
    prompts = torch.as_tensor(obs["input_ids"][:, :p])
    mask = torch.as_tensor(obs["attention_mask"][:, :p])
    generated = policy.model.generate(
        input_ids=prompts,
        attention_mask=mask,
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        pad_token_id=vec.task.pad_token_id,
    )
    assert np.array_equal(np.stack(ours, axis=1), generated[:, p:].numpy())


def test_restarting_from_prefixes_costs_one_prefill(text_assets) -> None:
    vec = gym.make_vec(IMDB, num_envs=4, **text_assets.env_kwargs(IMDB))
    single = gym.make(IMDB, **text_assets.env_kwargs(IMDB)).unwrapped
    single.reset(seed=0)
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=vec, device="cpu")
    recorder = ForwardRecorder(policy.model)
    states = [single.make_state("the film", prefix=[7 + row] * 5) for row in range(4)]
    obs, _ = vec.reset_to(states)
    state = None
    for _ in range(3):
        actions, state = policy.predict(obs, state)
        obs, *_ = vec.step(actions)
    # One pass over prompt + prefix, then one token per step.
    assert recorder.lengths[0] >= 2 + 5 and recorder.lengths[1:] == [1, 1]
    # A restart of one row invalidates the cache: the next predict recomputes once.
    obs, _ = vec.reset_to([states[0]], indices=[2])
    policy.predict(obs, state)
    assert recorder.lengths[-1] > 1
    # So does episode_start.
    _, state = policy.predict(obs, None)
    obs, *_ = vec.step(np.zeros(4, dtype=np.int64))
    policy.predict(obs, state, episode_start=np.array([False, True, False, False]))
    assert recorder.lengths[-1] > 1


def test_min_new_tokens_masks_eos(text_assets) -> None:
    env = gym.make(IMDB, **text_assets.env_kwargs(IMDB))
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=env, device="cpu")
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    eos = env.unwrapped.task.eos_token_id
    _, log_prob, _ = policy.evaluate_actions(batch, torch.tensor([eos]))
    assert log_prob.item() == float("-inf")
    unmasked = LMPolicy.from_pretrained(text_assets.gpt2, device="cpu")
    _, log_prob, _ = unmasked.evaluate_actions(batch, torch.tensor([eos]))
    assert np.isfinite(log_prob.item())


def test_save_pretrained_round_trip_with_value_head(text_assets, tmp_path) -> None:
    env = gym.make(IMDB, **text_assets.env_kwargs(IMDB))
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=env, value_head=True, device="cpu")
    with torch.no_grad():
        policy.value_head.bias.fill_(0.25)
    policy.save_pretrained(tmp_path / "policy")
    loaded = LMPolicy.from_pretrained(tmp_path / "policy", env=env, device="cpu")
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    actions = torch.tensor([3])
    with torch.no_grad():
        want, got = policy.evaluate_actions(batch, actions), loaded.evaluate_actions(batch, actions)
    assert torch.allclose(want[0], got[0]) and torch.allclose(want[1], got[1])
    assert torch.allclose(got[0], torch.tensor([[0.25]]))  # zero weights: value = bias
    # The agent file format rebuilds it from its constructor parameters too.
    rebuilt = LMPolicy(**policy._get_constructor_parameters())
    rebuilt.load_state_dict(policy.state_dict())
    with torch.no_grad():
        assert torch.allclose(rebuilt.evaluate_actions(batch, actions)[1], want[1])


@pytest.mark.parametrize("env_id", [IMDB, COMMONGEN])
def test_a_saved_policy_folder_loads_with_plain_transformers(env_id, text_assets, tmp_path):
    """The folder is a complete Hugging Face model repo: AutoTokenizer and the Auto model
    class load it, and give the tokens and logits of the policy's own tokenizer and model."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    env = gym.make(env_id, **text_assets.env_kwargs(env_id))
    path = text_assets.gpt2 if env_id == IMDB else text_assets.t5
    policy = LMPolicy.from_pretrained(path, env=env, device="cpu")
    folder = policy.save_pretrained(tmp_path / "policy")

    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "the plot was a masterpiece of acting"
    want = env.unwrapped.task.tokenizer(text)["input_ids"]
    assert tokenizer(text)["input_ids"] == want
    auto = AutoModelForSeq2SeqLM if policy.seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(folder).eval()
    ids = torch.tensor([want])
    inputs = {"input_ids": ids}
    if policy.seq2seq:
        inputs["decoder_input_ids"] = ids[:, :3]
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, policy.model(**inputs).logits)


def test_from_pretrained_round_trips_a_saved_folder_without_the_env(text_assets, tmp_path):
    env = gym.make(IMDB, **text_assets.env_kwargs(IMDB))
    policy = LMPolicy.from_pretrained(
        text_assets.gpt2, env=env, value_head=True, top_k=7, temperature=0.5, device="cpu"
    )
    with torch.no_grad():
        policy.value_head.weight.normal_()
    policy.save_pretrained(tmp_path / "policy")
    loaded = LMPolicy.from_pretrained(tmp_path / "policy", device="cpu")

    settings = ("prompt_length", "min_new_tokens", "eos_token_id", "top_k", "temperature")
    assert {k: getattr(loaded, k) for k in settings} == {k: getattr(policy, k) for k in settings}
    assert loaded.min_new_tokens == 8 and loaded.top_k == 7  # not the defaults
    assert loaded.action_space == policy.action_space
    assert loaded.tokenizer.get_vocab() == policy.tokenizer.get_vocab()
    obs, _ = env.reset(seed=0)
    for _ in range(3):  # partly generated: EOS is still masked (min_new_tokens)
        obs, *_ = env.step(policy.predict(obs, deterministic=True)[0])
    batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    with torch.no_grad():
        want, got = policy.evaluate_generated(batch), loaded.evaluate_generated(batch)
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    # And it saves again: the loaded policy carries the tokenizer it was saved with.
    again = loaded.save_pretrained(tmp_path / "again")
    assert (again / "tokenizer.json").is_file()


def test_saving_a_policy_without_a_tokenizer_names_the_fix(text_assets, tmp_path) -> None:
    policy = LMPolicy.from_pretrained(text_assets.gpt2, device="cpu")
    bare = LMPolicy(**policy._get_constructor_parameters())  # as an agent file rebuilds it
    with pytest.raises(ValueError, match=r"no tokenizer.*save_pretrained\(directory, tokenizer="):
        bare.save_pretrained(tmp_path / "bare")
    bare.save_pretrained(tmp_path / "bare", tokenizer=policy.tokenizer)
    assert (tmp_path / "bare" / "tokenizer.json").is_file()


def test_push_to_hub_uploads_the_saved_folder(text_assets, tmp_path, monkeypatch) -> None:
    """push_to_hub as transformers' PushToHubMixin: create the repo, save_pretrained into a
    temporary folder, upload it in one commit (the hub calls are captured: no network)."""
    from huggingface_hub import HfApi, RepoUrl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls: dict[str, object] = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return RepoUrl(f"https://huggingface.co/someone/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        import shutil

        calls["upload_folder"] = (repo_id, kwargs)
        shutil.copytree(folder_path, tmp_path / "uploaded")
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    env = gym.make(IMDB, **text_assets.env_kwargs(IMDB))
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=env, value_head=True, device="cpu")

    result = policy.push_to_hub("tiny-policy", private=True, token="t", tags=["imdb"])

    assert result == "commit-info"
    assert calls["create_repo"] == (
        "tiny-policy",
        {"private": True, "token": "t", "exist_ok": True},
    )
    repo_id, upload = calls["upload_folder"]
    assert repo_id == "someone/tiny-policy"  # the id create_repo resolved
    assert upload["token"] == "t" and upload["commit_message"] == "Upload LMPolicy"
    uploaded = tmp_path / "uploaded"
    files = {p.name for p in uploaded.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "lfi_policy.json",
        "value_head.safetensors",
        "README.md",
    } <= files
    card = (uploaded / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and "- imdb" in card
    AutoTokenizer.from_pretrained(uploaded)
    AutoModelForCausalLM.from_pretrained(uploaded)
    assert LMPolicy.from_pretrained(uploaded, device="cpu").value_head is not None


def test_a_pickled_cache_is_dropped_and_recomputed(text_assets) -> None:
    vec = gym.make_vec(IMDB, num_envs=2, **text_assets.env_kwargs(IMDB))
    policy = LMPolicy.from_pretrained(text_assets.gpt2, env=vec, device="cpu")
    obs, _ = vec.reset(seed=0)
    _, state = policy.predict(obs, None, deterministic=True)
    assert isinstance(state, LMCache)
    assert pickle.loads(pickle.dumps(state)) is None


def _mean_sampled_reward(policy: LMPolicy, n: int = 128) -> float:
    torch.manual_seed(123)
    vec = gym.make_vec("TextGen-TinyReviews-v0", num_envs=n, split="validation")
    obs, _ = vec.reset(seed=0)
    state, total, done = None, np.zeros(n), np.zeros(n, dtype=bool)
    while not done.all():
        actions, state = policy.predict(obs, state)
        obs, rewards, terminated, _, _ = vec.step(actions)
        total += np.where(done, 0.0, rewards)
        done |= terminated
    return float(total.mean())


def test_bc_fine_tuning_on_positive_reviews_raises_the_sentiment_reward() -> None:
    """Supervised fine-tuning through BC (GRUE's BC): the reference oracle writes positive
    reviews' continuations; the tuned LM's sampled continuations score higher."""
    from lfi_gym.envs.text.tinyreviews import ASSET_DIR

    env = gym.make("TextGen-TinyReviews-v0", labels=(1,))
    demos = Demonstrations.collect(env, make_expert(env), n_steps=480, seed=0)
    policy = LMPolicy.from_pretrained(ASSET_DIR, env=env, device="cpu")
    before = _mean_sampled_reward(policy)
    agent = BC(env, demos, policy=policy, batch_size=32, seed=0, device="cpu")
    agent.learn(total_timesteps=3 * len(demos))
    after = _mean_sampled_reward(policy)
    assert after > before + 0.15, (before, after)


# -- the transformers versions LMPolicy runs on ---------------------------------------------


def _transformers_requirement(lines: list[str]) -> Requirement:
    (requirement,) = [
        Requirement(line)
        for line in lines
        if Requirement(line).name == "transformers" and Requirement(line).marker is None
    ]
    return requirement


def test_the_installed_transformers_lies_in_the_declared_range() -> None:
    """The range read from the installed package's metadata (what pip resolved against)."""
    requirement = _transformers_requirement(requires("lfi-gym") or [])
    installed = version("transformers")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"transformers {installed} is outside lfi-gym's declared {requirement}"
    )


def test_pyproject_bounds_transformers_to_the_cache_keyword() -> None:
    """LMPolicy passes ``cache=`` and reads ``output.cache``: transformers 5.24 renamed
    ``past_key_values`` to them (the old name goes in 5.40), so 5.23 must be refused, and an
    upper bound keeps the next major release from breaking installs unannounced."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("run from an installed wheel, not the repository")
    project = tomllib.loads(pyproject.read_text())["project"]
    specifier = _transformers_requirement(project["dependencies"]).specifier
    assert not specifier.contains("5.23.0") and specifier.contains("5.24.0")
    assert not specifier.contains("6.0.0")
    assert specifier.contains(version("transformers"), prereleases=True)
