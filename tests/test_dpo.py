"""DPO: the loss against hand computations, sequence log-probabilities as the env scores them,
the reference's pull at large beta, learning a toy preference, exact resume and bad input."""

from __future__ import annotations

import copy
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import KVWriter, Logger

from lfi_gym.agents import DPO, LMPolicy
from lfi_gym.agents.dpo import TINYREVIEWS, dpo_loss, preference_metrics
from lfi_gym.agents.preferences import Preferences, PreferencesError, tokenizer_digest

ENV_ID = "TextGen-TinyReviews-v0"
#: Completions of the toy preference: the one with GOOD is preferred to the one with BAD.
GOOD, BAD = "wonderful", "awful"
TRAIN_TEMPLATES = (
    "the film is {}.",
    "it was {} and fun.",
    "a {} story, really.",
    "the cast was {}.",
)
HELD_OUT_TEMPLATES = ("the music was {} too.", "all in all, {}.")


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def sft(env) -> LMPolicy:
    """The shipped TinyReviews LM, loaded once; each agent trains a copy."""
    return LMPolicy.from_pretrained("lfi-gym/tinyreviews-lm", env=env, device="cpu")


def _preferences(env, samples, completions_a, completions_b, labels) -> Preferences:
    """A set on the env's prompts ``samples`` (rows of its train split); completions are
    text, tokenized as the env's continuations, or token ids."""
    task = env.unwrapped.task

    def ids(completion):
        return task.continuation_ids(completion) if isinstance(completion, str) else completion

    def text(completion):
        return completion if isinstance(completion, str) else task.decode_completion(completion)

    return Preferences(
        env_id=ENV_ID,
        tokenizer_digest=tokenizer_digest(task.tokenizer),
        prompts=[task.samples[i].prompt for i in samples],
        completions_a=[text(c) for c in completions_a],
        completions_b=[text(c) for c in completions_b],
        prompt_ids=[task.prompt_ids(i) for i in samples],
        completion_ids_a=[ids(c) for c in completions_a],
        completion_ids_b=[ids(c) for c in completions_b],
        labels=labels,
        teacher={"name": "test"},
    )


def _toy_preferences(env, samples, templates) -> Preferences:
    """Pairs that differ in one word, GOOD preferred: on even rows it is completion a
    (label 1), on odd rows completion b (label 0), so both label values are exercised."""
    a, b, labels = [], [], []
    for k, _ in enumerate(samples):
        template = templates[k % len(templates)]
        good, bad = template.format(GOOD), template.format(BAD)
        a_preferred = k % 2 == 0
        a.append(good if a_preferred else bad)
        b.append(bad if a_preferred else good)
        labels.append(1.0 if a_preferred else 0.0)
    return _preferences(env, samples, a, b, labels)


@pytest.fixture(scope="module")
def toy(env) -> Preferences:
    return _toy_preferences(env, range(32), TRAIN_TEMPLATES)


@pytest.fixture(scope="module")
def held_out(env) -> Preferences:
    """Other prompts and other sentences around the same two words."""
    return _toy_preferences(env, range(1000, 1032), HELD_OUT_TEMPLATES)


def _agent(env, sft, preferences, **kwargs) -> DPO:
    return DPO(env, copy.deepcopy(sft), preferences=preferences, seed=0, device="cpu", **kwargs)


def _parameters(policy: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in policy.parameters()])


# -- the loss ---------------------------------------------------------------------------------

# A toy batch, beta = 0.5. Row 0: a preferred (y = 1); row 1: b preferred (y = 0); row 2: a
# tie. Log-ratios (policy - reference) of a and b: (0.5, -0.5), (-1, 0.5), (-1, 0), so
# h = 0.5 * (ratio_a - ratio_b) = 0.5, -0.75, -0.5.
POLICY_A = [-1.0, -3.0, -2.0]
POLICY_B = [-3.0, -1.0, -2.5]
REFERENCE_A = [-1.5, -2.0, -1.0]
REFERENCE_B = [-2.5, -1.5, -2.5]
LABELS = [1.0, 0.0, 0.5]
BETA = 0.5


def test_the_loss_equals_its_closed_form_on_a_toy_batch():
    out = dpo_loss(
        *(torch.tensor(v) for v in (POLICY_A, POLICY_B, REFERENCE_A, REFERENCE_B)), LABELS, BETA
    )
    # Row 0: -log sigmoid(0.5) = log(1 + e^-0.5) = 0.474077. Row 1 (y = 0): -log
    # sigmoid(-h) = log(1 + e^-0.75) = 0.386871. Row 2 (tie): -(log sigmoid(-0.5) +
    # log sigmoid(0.5)) / 2 = (0.974077 + 0.474077) / 2 = 0.724077. Mean: 0.528342.
    assert out.loss.item() == pytest.approx(0.5283416581583711, abs=1e-6)
    assert out.rewards_a.tolist() == pytest.approx([0.25, -0.5, -0.5])
    assert out.rewards_b.tolist() == pytest.approx([-0.25, 0.25, 0.0])
    # The decided rows: chosen rewards 0.25 (a) and 0.25 (b), rejected -0.25 and -0.5.
    assert preference_metrics(out.rewards_a, out.rewards_b, LABELS) == pytest.approx(
        {
            "rewards/chosen": 0.25,
            "rewards/rejected": -0.375,
            "rewards/accuracies": 1.0,
            "rewards/margins": 0.625,
        }
    )
    assert preference_metrics(out.rewards_a, out.rewards_b, [0.5, 0.5, 0.5]) == {}


def test_the_gradient_makes_the_chosen_completion_more_likely():
    policy_a = torch.tensor(POLICY_A, requires_grad=True)
    policy_b = torch.tensor(POLICY_B, requires_grad=True)
    dpo_loss(
        policy_a, policy_b, torch.tensor(REFERENCE_A), torch.tensor(REFERENCE_B), LABELS, BETA
    )[0].backward()
    # d loss / d policy_a = beta * (sigmoid(h) - y) / n and d / d policy_b is its negative:
    # (0.5 / 3) * (0.622459 - 1, 0.320821 - 0, 0.377541 - 0.5).
    expected = [-0.06292344479969089, 0.05347021680410117, -0.02040988853364243]
    assert policy_a.grad.tolist() == pytest.approx(expected, abs=1e-6)
    assert policy_b.grad.tolist() == pytest.approx([-g for g in expected], abs=1e-6)
    # A descent step raises the chosen completion's log-probability and lowers the other's
    # (row 0: a, row 1: b); the tie raises a, whose implicit reward is the lower one.
    assert policy_a.grad[0] < 0 < policy_b.grad[0]
    assert policy_b.grad[1] < 0 < policy_a.grad[1]
    assert policy_a.grad[2] < 0 < policy_b.grad[2]


def test_the_loss_refuses_bad_labels_shapes_and_beta():
    logps = torch.zeros(2)
    with pytest.raises(ValueError, match="labels must be 1"):
        dpo_loss(logps, logps, logps, logps, [1.0, 0.3], 0.1)
    with pytest.raises(ValueError, match="four 1-D tensors of equal length"):
        dpo_loss(logps, torch.zeros(3), logps, logps, [1.0, 0.0], 0.1)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(logps, logps, logps, logps, [1.0, 0.0], 0.0)


# -- log-probabilities ------------------------------------------------------------------------


def test_log_probs_are_the_policys_teacher_forced_sums(env, sft):
    task = env.unwrapped.task
    eos = task.eos_token_id
    # Prompts of different lengths and completions of different lengths, one ending on
    # EOS, so the batch pads both parts.
    pair_a = [
        "a fine film.",
        np.append(task.continuation_ids("so dull, and too long."), eos),
        "ok.",
    ]
    pair_b = ["it was a mess from the start to the end.", "great!", "the end"]
    prefs = _preferences(env, [0, 1, 3], pair_a, pair_b, [1.0, 0.0, 0.5])
    assert len({len(ids) for ids in prefs.prompt_ids}) == 3
    agent = _agent(env, sft, prefs)
    policy_a, policy_b = agent.log_probs()
    model = agent.policy.model
    for i in range(len(prefs)):
        for completion, got in (
            (prefs.completion_ids_a[i], policy_a[i]),
            (prefs.completion_ids_b[i], policy_b[i]),
        ):
            # The HF model on prompt + completion, unpadded: the token at position t is
            # predicted by the logits at t - 1.
            prompt = prefs.prompt_ids[i]
            ids = torch.tensor(np.concatenate([prompt, completion]).tolist())[None]
            with torch.no_grad():
                log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            rows = torch.arange(len(prompt) - 1, ids.shape[1] - 1)
            direct = log_probs[rows, torch.tensor(completion.tolist())].sum()
            assert got.item() == pytest.approx(direct.item(), abs=1e-4)
    # Before training the reference is the policy.
    reference_a, reference_b = agent.log_probs(reference=True)
    assert torch.equal(reference_a, policy_a) and torch.equal(reference_b, policy_b)

    # The same sum, token by token, along the env's own episode (its observation layout).
    obs, _ = env.reset(options={"sample_index": 1})
    total = 0.0
    for token in prefs.completion_ids_a[1]:
        batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
        with torch.no_grad():
            total += agent.policy.get_distribution(batch).log_prob(torch.tensor([token])).item()
        obs, _, terminated, _, _ = env.step(int(token))
    assert terminated  # the completion ended on EOS, as the episode does
    assert policy_a[1].item() == pytest.approx(total, abs=1e-4)


# -- training -----------------------------------------------------------------------------


def test_a_very_large_beta_keeps_the_policy_at_the_reference(env, sft, toy, held_out):
    # Why this holds with RMSprop: a step's size does not scale with the gradient (RMSprop
    # divides by the gradient's running RMS), so beta does not make steps larger; it
    # decides when they stop. d loss / dh = sigmoid(h) - y vanishes once each training
    # pair's log-ratio margin exceeds a few / beta nats: with beta = 1e4 the first update
    # (small: the paper's linear warm-up over 150 updates) already does that, the gradient
    # underflows and the policy stays where one warm-up step put it. With beta = 0.1 the
    # pairs need margins of tens of nats, so the policy keeps moving, with a growing
    # learning rate. (Without warm-up the first step is a full RMSprop step of ~10 * lr per
    # weight, whatever beta, and the gap is much smaller.)
    log_ratios = {}
    for beta in (0.1, 1e4):
        agent = _agent(env, sft, toy, beta=beta, learning_rate=1e-4, batch_size=16)
        agent.learn(20 * 16)
        assert agent.n_updates == 20
        policy_a, policy_b = agent.log_probs(held_out)
        reference_a, reference_b = agent.log_probs(held_out, reference=True)
        log_ratios[beta] = torch.cat([policy_a - reference_a, policy_b - reference_b]).abs()
    assert log_ratios[0.1].max() > 1.0  # beta = 0.1 moved the policy
    # more than ten times smaller (measured: about 30 times, max and mean alike)
    assert log_ratios[1e4].max() < 0.1 * log_ratios[0.1].max()
    assert log_ratios[1e4].mean() < 0.1 * log_ratios[0.1].mean()


def test_dpo_raises_the_probability_of_the_preferred_kind_of_text(env, sft, toy, held_out):
    agent = _agent(env, sft, toy, **TINYREVIEWS)
    before = agent.evaluate(held_out)
    agent.learn(10 * len(toy))  # 10 epochs, 20 updates
    after = agent.evaluate(held_out)
    assert before["loss"] == pytest.approx(np.log(2), abs=1e-6)  # policy = reference
    # On prompts and sentences it never saw, the policy now prefers the GOOD word's
    # completion more than the reference does: every held-out pair ordered, by nats.
    assert after["rewards/accuracies"] == 1.0
    assert after["rewards/margins"] > 0.2  # beta * (log-ratio margin) > 0.2: margin > 2 nats
    assert after["logps/chosen"] > before["logps/chosen"] + 1.0
    assert after["logps/rejected"] < before["logps/rejected"] - 1.0
    assert after["loss"] < before["loss"]


def test_learn_counts_pairs_logs_trls_statistics_and_stops_on_a_callback(env, sft, toy):
    class Records(KVWriter):
        def __init__(self):
            self.rows = []

        def write(self, key_values, key_excluded, step=0):
            self.rows.append((step, dict(key_values)))

    records = Records()
    agent = _agent(env, sft, toy, **TINYREVIEWS)
    agent.set_logger(Logger(folder=None, output_formats=[records]))
    agent.learn(40)  # batches of 16: stops at the first boundary at or past 40
    assert agent.num_timesteps == 48 and agent.n_updates == 3
    step, values = records.rows[-1]
    assert step == 48
    for key in ("train/loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies"):
        assert np.isfinite(values[key])
    assert values["rewards/margins"] == pytest.approx(
        values["rewards/chosen"] - values["rewards/rejected"]
    )
    assert values["train/n_updates"] == 3
    assert agent.budgets() == {
        "expert_labels": 0,
        "env_steps": 0,
        "reward_queries": 0,
        "preference_queries": 32,
    }
    agent.learn(100, callback=lambda _locals, _globals: False)
    assert agent.num_timesteps == 16  # one update, then the callback stopped it


def test_save_load_resumes_exactly(env, sft, toy, tmp_path):
    prefs = toy.select(range(24))  # passes of 24 pairs: minibatches of 16 and 8
    straight = _agent(env, sft, prefs, **TINYREVIEWS).learn(32)
    first = _agent(env, sft, prefs, **TINYREVIEWS).learn(16)  # stops mid-pass
    first.save(tmp_path / "dpo")
    resumed = DPO.load(tmp_path / "dpo", env=env, preferences=prefs, device="cpu")
    assert resumed.num_timesteps == 16 and resumed.beta == TINYREVIEWS.get("beta", 0.1)
    resumed.learn(16, reset_num_timesteps=False)
    assert resumed.num_timesteps == straight.num_timesteps == 40
    assert torch.equal(_parameters(resumed.policy), _parameters(straight.policy))
    assert torch.equal(_parameters(resumed.reference), _parameters(straight.reference))
    for mine, theirs in zip(
        resumed.optimizer.state_dict()["state"].values(),
        straight.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert torch.equal(mine["square_avg"], theirs["square_avg"])

    with pytest.raises(ValueError, match="needs the env and the preferences"):
        DPO.load(tmp_path / "dpo", env=env)
    other = dataclasses.replace(prefs, labels=1.0 - prefs.labels)
    with pytest.raises(PreferencesError, match="not the ones the agent was trained on"):
        DPO.load(tmp_path / "dpo", env=env, preferences=other)


# -- bad input ------------------------------------------------------------------------------


def test_bad_input_is_refused_at_construction(env, sft, toy):
    with pytest.raises(ValueError, match="beta must be"):
        _agent(env, sft, toy, beta=0.0)
    with pytest.raises(ValueError, match="beta must be"):
        _agent(env, sft, toy, beta=-1.0)
    with pytest.raises(TypeError, match="needs preferences="):
        _agent(env, sft, None)
    with pytest.raises(PreferencesError, match="at least one labelled pair"):
        _agent(env, sft, toy.select([]))
    with pytest.raises(PreferencesError, match="come from TextGen-TinyReviews-v0, the env is"):
        DPO(gym.make("TextGen-TinyConcepts-v0"), preferences=toy, device="cpu")
    with pytest.raises(PreferencesError, match="another tokenizer"):
        _agent(env, sft, dataclasses.replace(toy, tokenizer_digest="0" * 64))
    with pytest.raises(TypeError, match="must be an LMPolicy"):
        DPO(env, "MultiInputPolicy", preferences=toy, device="cpu")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt_ids": [np.arange(1, 40)]}, "the prompt has 39 tokens; TextGen-TinyReviews-v0"),
        ({"completion_ids_a": [np.arange(1, 40)]}, "completion_ids_a has 39 tokens"),
        ({"completion_ids_b": [np.array([5, 0, 6])]}, "completion_ids_b has EOS at token 1"),
        (
            {"completion_ids_a": [np.array([5, 5000])]},
            "completion_ids_a holds token ids outside TextGen-TinyReviews-v0's",
        ),
    ],
)
def test_pairs_the_env_could_not_produce_are_refused(env, sft, toy, row, message):
    one = toy.select([0])
    with pytest.raises(PreferencesError, match=f"row 0: {message}"):
        _agent(env, sft, dataclasses.replace(one, **row))
