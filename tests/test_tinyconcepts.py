"""TinyConcepts: the concept sets and references, the shipped tokenizer and tiny GPT-2, the env."""

from __future__ import annotations

import functools
import json
import os
import random
import re
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym import envs
from lfi_gym.envs.text.concepts import concept_coverage
from lfi_gym.envs.text.lmbuild import encode_texts, perplexity
from lfi_gym.envs.text.tinyconcepts import (
    ASSET_DIR,
    KINDS,
    MAX_NEW_TOKENS,
    MAX_WORDS,
    MIN_WORDS,
    PROMPT_LENGTH,
    REFERENCES,
    SPLIT_SIZES,
    ConceptSet,
    concept_kind,
    concept_prompt,
    generate_concept_sets,
    load_split,
    mentions,
)
from lfi_gym.envs.text.tinyconcepts.build import corpus_digest, main, references
from lfi_gym.envs.text.tinyreviews.grammar import NEGATIVE_ADJECTIVES, POSITIVE_ADJECTIVES

transformers = pytest.importorskip("transformers")
vader = pytest.importorskip("vaderSentiment.vaderSentiment")

ENV_ID = "TextGen-TinyConcepts-v0"
_WORD = re.compile(r"[a-z]+")


@functools.cache
def _training() -> dict:
    return json.loads((ASSET_DIR / "training.json").read_text())


@functools.cache
def _tokenizer():
    return transformers.AutoTokenizer.from_pretrained(ASSET_DIR)


@functools.cache
def _model():
    return transformers.AutoModelForCausalLM.from_pretrained(ASSET_DIR).eval()


def _all_sets() -> list[ConceptSet]:
    return [s for split in SPLIT_SIZES for s in load_split(split)]


def _coverage_reward(completions, concepts, **kwargs) -> list[float]:
    """Test reward: the fraction of a row's concepts its completion mentions verbatim."""
    return [
        float(np.mean([mentions(text, c) for c in row])) if row else 0.0
        for text, row in zip(completions, concepts, strict=True)
    ]


# ------------------------------------------------------------------------------ concepts


def test_concept_kinds_prompt_and_whole_word_mentions() -> None:
    assert [
        concept_kind(c)
        for c in ("Greta Voss", "The Silent Harbor", "thriller", "soundtrack", "brilliant")
    ] == list(KINDS)
    assert concept_kind("Harbor of Greta") == concept_kind("The Fox and the Raven") == "title"
    with pytest.raises(ValueError, match="not a TinyConcepts concept"):
        concept_kind("Greta")
    prompt = concept_prompt(("Greta Voss", "thriller", "soundtrack", "brilliant"))
    assert prompt == "write a review with: Greta Voss, thriller, soundtrack, brilliant."
    assert mentions("The music was loud.", "music")
    assert not mentions("A musical about music", "musical music")
    assert not mentions("a musical", "music") and not mentions("the Music", "music")
    assert mentions("I watched The Silent Harbor.", "The Silent Harbor")


def test_generation_is_deterministic_within_and_across_processes() -> None:
    first = generate_concept_sets(200, seed=5)
    assert first == generate_concept_sets(200, seed=5)
    assert first != generate_concept_sets(200, seed=6)
    assert all(isinstance(s, ConceptSet) for s in first)
    code = (
        "from lfi_gym.envs.text.tinyconcepts import generate_concept_sets\n"
        "from lfi_gym.envs.text.tinyconcepts.build import corpus_digest\n"
        "print(corpus_digest(generate_concept_sets(200, seed=5)))"
    )
    # another interpreter with another hash seed: nothing may depend on hash() or set order
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == corpus_digest(first)


def test_splits_match_the_corpus_the_shipped_model_was_trained_on() -> None:
    """Fails when the grammar changes without rebuilding the assets (see build.py)."""
    recorded = _training()["split_sha256"]
    for split in SPLIT_SIZES:
        assert corpus_digest(load_split(split)) == recorded[split], (
            f"the {split!r} split changed: rebuild the assets with `python -m "
            "lfi_gym.envs.text.tinyconcepts.build --out envs/text/assets/tinyconcepts`"
        )


@pytest.mark.parametrize("split", sorted(SPLIT_SIZES))
def test_every_reference_uses_every_concept_of_its_set(split: str) -> None:
    sets = load_split(split)
    assert len(sets) == SPLIT_SIZES[split]
    for concept_set in sets:
        kinds = [concept_kind(c) for c in concept_set.concepts]
        assert 2 <= len(kinds) <= 4 and len(set(kinds)) == len(kinds), concept_set.concepts
        assert len(concept_set.references) == REFERENCES
        assert len(set(concept_set.references)) == REFERENCES  # four different realisations
        for text in concept_set.references:
            missing = [c for c in concept_set.concepts if not mentions(text, c)]
            assert not missing, (missing, text)
            # the reward's own test (case-insensitive, inflections) agrees
            assert concept_coverage(text, concept_set.concepts) == 1.0
    # every size and kind occurs, and the prompt order is not the kinds' order
    assert {len(s.concepts) for s in sets} == {2, 3, 4}
    assert {concept_kind(c) for s in sets for c in s.concepts} == set(KINDS)
    orders = {tuple(concept_kind(c) for c in s.concepts) for s in sets if len(s.concepts) == 2}
    assert len(orders) == 20  # 10 pairs of kinds, each in both orders


@pytest.mark.parametrize("split", sorted(SPLIT_SIZES))
def test_reference_shape_and_length_bounds(split: str) -> None:
    texts = references(load_split(split))
    words = [len(t.split()) for t in texts]
    assert min(words) >= MIN_WORDS and max(words) <= MAX_WORDS
    sentences = [len(re.findall(r"[.!?](?:\s|$)", t)) for t in texts]
    assert set(sentences) == {2, 3}
    assert all(t[0].isupper() and t[-1] in ".!?" for t in texts)


def test_splits_are_disjoint_on_concept_sets() -> None:
    keys = {split: [frozenset(s.concepts) for s in load_split(split)] for split in SPLIT_SIZES}
    for split, split_keys in keys.items():
        assert len(set(split_keys)) == len(split_keys), f"a concept set repeats in {split}"
    assert not set(keys["train"]) & set(keys["validation"])
    assert not set(keys["train"]) & set(keys["test"])
    assert not set(keys["validation"]) & set(keys["test"])


def test_exclude_skips_concept_sets() -> None:
    first = generate_concept_sets(50, seed=3)
    excluded = {frozenset(s.concepts) for s in first[:10]}
    again = generate_concept_sets(50, seed=3, exclude=excluded)
    assert not {frozenset(s.concepts) for s in again} & excluded


def test_the_sentiment_concept_sets_the_polarity_of_the_references() -> None:
    analyzer = vader.SentimentIntensityAnalyzer()
    scores: dict[int, list[float]] = {1: [], -1: []}
    for concept_set in load_split("test"):
        for concept in concept_set.concepts:
            if concept in POSITIVE_ADJECTIVES or concept in NEGATIVE_ADJECTIVES:
                sign = 1 if concept in POSITIVE_ADJECTIVES else -1
                scores[sign] += [
                    analyzer.polarity_scores(t)["compound"] for t in concept_set.references
                ]
    assert min(len(v) for v in scores.values()) > 200
    positive, negative = np.array(scores[1]), np.array(scores[-1])
    # VADER's compound score has the adjective's sign on 95% / 84% of the test references
    assert np.mean(positive > 0) > 0.9 and np.mean(negative < 0) > 0.75
    assert positive.mean() - negative.mean() > 1.0


def test_load_split_is_cached_but_returns_a_fresh_list() -> None:
    a = load_split("test")
    a.clear()
    assert len(load_split("test")) == SPLIT_SIZES["test"]
    assert load_split("test")[0] is load_split("test")[0]


def test_unknown_split_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'dev'.*\['test', 'train', 'validation'\]"):
        load_split("dev")


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (2.5, 0), (True, 0), (3, "0"), (3, None)])
def test_bad_generate_arguments(n, seed) -> None:
    with pytest.raises(ValueError, match="must be"):
        generate_concept_sets(n, seed)


# ------------------------------------------------------------------------------ tokenizer


def test_token_lengths_fit_the_env_limits_and_match_the_record() -> None:
    tok = _tokenizer()
    sets = _all_sets()
    texts = references(sets)
    full = [len(x) for x in tok(texts, add_special_tokens=False)["input_ids"]]
    continuation = [len(x) for x in tok([" " + t for t in texts])["input_ids"]]
    prompts = [len(x) for x in tok([concept_prompt(s.concepts) for s in sets])["input_ids"]]
    assert max(full) <= 40  # a reference is at most ~40 tokens
    assert max(prompts) <= PROMPT_LENGTH  # every prompt fits, untruncated
    assert max(continuation) + 1 <= MAX_NEW_TOKENS  # every reference, then eos
    recorded = _training()["token_lengths"]["all_splits"]
    assert recorded["reference_tokens_max"] == max(full)
    assert recorded["continuation_tokens_max"] == max(continuation)
    assert recorded["prompt_tokens_max"] == max(prompts)
    limits = _training()["env_limits"]
    assert (limits["prompt_length"], limits["max_new_tokens"]) == (PROMPT_LENGTH, MAX_NEW_TOKENS)


def test_tokenizer_round_trips_and_follows_gpt2_conventions() -> None:
    tok, model = _tokenizer(), _model()
    texts = references(load_split("test")) + [
        concept_prompt(s.concepts) for s in load_split("test")
    ]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert tok.batch_decode(ids) == texts
    eos = model.config.eos_token_id
    assert tok.eos_token == "<|endoftext|>"
    assert tok.eos_token_id == tok.pad_token_id == tok.bos_token_id == eos
    assert model.generation_config.pad_token_id == model.generation_config.eos_token_id == eos
    assert tok.padding_side == "left"
    assert len(tok) == model.config.vocab_size == _training()["vocab_size"]


# ------------------------------------------------------------------------------ model


def test_shipped_assets_are_small_and_documented() -> None:
    size = sum(p.stat().st_size for p in ASSET_DIR.iterdir())
    assert size < 8 * 2**20, size
    assert not list(ASSET_DIR.glob("*.bin"))
    record = _training()
    assert isinstance(_model(), transformers.GPT2LMHeadModel)
    assert record["param_count"] == sum(p.numel() for p in _model().parameters())
    assert record["model"]["n_positions"] >= PROMPT_LENGTH + MAX_NEW_TOKENS
    assert record["train_cpu_seconds"] <= 900


def test_perplexity_matches_the_record_and_beats_uniform() -> None:
    tok, model = _tokenizer(), _model()
    seqs = encode_texts(tok, references(load_split("test")[:60]))
    ppl = perplexity(model, seqs)
    recorded = _training()["validation_perplexity"]
    assert ppl <= 1.2 * recorded, (ppl, recorded)
    assert ppl < len(tok) / 100


def test_zero_shot_the_shipped_model_writes_review_text_that_ignores_the_concepts() -> None:
    """Trained on references alone, the model reads a concept prompt as the start of a review
    and finishes it (in 1-2 sentences), rarely with the prompt's concepts."""
    tok, model = _tokenizer(), _model()
    vocabulary = {w for t in references(load_split("train")) for w in _WORD.findall(t.lower())}
    sets = load_split("validation")[:32]
    batch = tok([concept_prompt(s.concepts) for s in sets], padding=True, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(
        **batch, do_sample=True, top_k=50, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=0
    )
    generated = out[:, batch["input_ids"].shape[1] :]
    assert (generated == tok.eos_token_id).any(dim=1).all()  # every sample ends itself
    samples = tok.batch_decode(generated, skip_special_tokens=True)
    words = [w for text in samples for w in _WORD.findall(text.lower())]
    assert len(words) >= 32 * 5
    assert np.mean([w in vocabulary for w in words]) >= 0.95
    # samples with seeds 0-2 cover 6-10% of their concepts, the references 100%
    coverage = np.mean(
        [concept_coverage(t, s.concepts) for t, s in zip(samples, sets, strict=True)]
    )
    assert coverage < 0.3, coverage


# ------------------------------------------------------------------------------ build


def test_build_rebuilds_the_same_tokenizer_and_a_loadable_model(tmp_path) -> None:
    tiny = "--steps 2 --warmup 1 --n-embd 16 --n-layer 1 --n-head 2 --threads 1".split()
    record = main(["--out", str(tmp_path), *tiny])
    assert (tmp_path / "tokenizer.json").read_bytes() == (ASSET_DIR / "tokenizer.json").read_bytes()
    assert record["split_sha256"] == _training()["split_sha256"]
    assert record["token_lengths"] == _training()["token_lengths"]
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert model.config.n_embd == 16


@pytest.mark.parametrize(
    "argv",
    [["--n-embd", "130", "--n-head", "4"], ["--steps", "0"], ["--n-positions", "64"]],
)
def test_build_refuses_bad_settings(argv, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), *argv])
    assert "must be" in capsys.readouterr().err


# ------------------------------------------------------------------------------ env


def test_every_prompt_and_reference_fits_the_env() -> None:
    for split in SPLIT_SIZES:
        task = gym.make(ENV_ID, split=split, reward=_coverage_reward).unwrapped.task
        assert (task.prompt_length, task.max_new_tokens) == (PROMPT_LENGTH, MAX_NEW_TOKENS)
        for index, sample in enumerate(task.samples):
            assert task.decode_prompt(task.prompt_ids(index)) == sample.prompt  # untruncated
            assert len(task.reference_ids(index)) + 1 <= task.max_new_tokens


def test_the_reference_oracle_writes_a_reference_that_covers_its_concepts() -> None:
    env = gym.make(ENV_ID, split="validation", reward=_coverage_reward)
    expert = envs.make_expert(env)
    task = env.unwrapped.task
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        sample = task.samples[info["sample_index"]]
        for _ in range(task.max_new_tokens):
            action, _ = expert.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        assert terminated and info["stop_reason"] == "eos"
        assert info["prompt"] == concept_prompt(sample.concepts)
        assert info["completion"] == " " + sample.references[0]
        assert reward == 1.0


def test_the_default_reward_scores_references_high_and_concept_lists_low() -> None:
    env = gym.make(ENV_ID, split="validation")
    task = env.unwrapped.task
    assert task.columns == ("concepts",)
    assert task.policy_model == "lfi-gym/tinyconcepts-lm"
    samples = task.samples[:50]
    rows = {
        "prompts": [s.prompt for s in samples],
        "completion_ids": [[] for _ in samples],
        "references": [list(s.references) for s in samples],
        "concepts": [list(s.concepts) for s in samples],
    }

    def mean_reward(completions: list[str]) -> float:
        return float(task.score(completions=[" " + c for c in completions], **rows).mean())

    rng = random.Random(0)
    shuffled = []
    for s in samples:
        tokens = s.references[1].split()
        rng.shuffle(tokens)
        shuffled.append(" ".join(tokens))
    # A reference of the set passes the grammar check and uses every concept. Measured on
    # the 500 validation sets (benchmarks/tinyconcepts_task.py): references 1.00; concepts
    # listed 0.00, listed as the prompt lists them 0.02, listed and then followed by a
    # fluent review 0.00; word-shuffled references 0.00; another set's reference 0.03.
    assert mean_reward([s.references[1] for s in samples]) > 0.95
    assert mean_reward([" ".join(s.concepts) for s in samples]) < 0.1
    assert mean_reward([", ".join(s.concepts) + "." for s in samples]) < 0.1
    listed_then_fluent = [
        " ".join(s.concepts) + ". " + samples[i - 1].references[0] for i, s in enumerate(samples)
    ]
    assert mean_reward(listed_then_fluent) < 0.1
    assert mean_reward(shuffled) < 0.1
    assert mean_reward([samples[i - 1].references[0] for i in range(50)]) < 0.2


def test_the_vector_env_passes_each_rows_concepts_to_the_reward() -> None:
    seen = []

    def reward(completions, concepts, **kwargs):
        seen.extend(concepts)
        return [0.0] * len(completions)

    vec = gym.make_vec(ENV_ID, num_envs=3, split="test", reward=reward)
    _, info = vec.reset(seed=0)
    eos = vec.unwrapped.task.eos_token_id
    _, _, terminated, _, _ = vec.step(np.full(3, eos))
    assert terminated.all()
    samples = vec.unwrapped.task.samples
    assert sorted(map(tuple, seen)) == sorted(samples[i].concepts for i in info["sample_index"])


def test_unknown_split_is_refused_by_the_env() -> None:
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        gym.make(ENV_ID, split="dev")


def test_the_samples_example_prints_a_table_of_concept_prompts() -> None:
    """README's sample tables come from examples/text_samples.py (any text env id)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "examples/text_samples.py", "--env", ENV_ID, "--n", "2"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": repo},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| write a review")]
    assert len(rows) == 2
    assert all(0.0 <= float(row.rsplit("|", 2)[1]) <= 1.0 for row in rows)
    assert "Loading weights" not in done.stdout + done.stderr
