"""TinyReviews: the offline corpus, the shipped tokenizer and the shipped tiny GPT-2."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from lfi_gym.envs.text.tinyreviews import (
    ASSET_DIR,
    MAX_WORDS,
    MIN_WORDS,
    SPLIT_SIZES,
    Review,
    generate_reviews,
    load_split,
)
from lfi_gym.envs.text.tinyreviews.build import (
    corpus_digest,
    encode_reviews,
    main,
    perplexity,
    prompt_and_continuation,
)

transformers = pytest.importorskip("transformers")
vader = pytest.importorskip("vaderSentiment.vaderSentiment")

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


def _mapped_vader(texts: list[str]) -> np.ndarray:
    """VADER compound mapped to [0, 1] as the env's lexicon reward does: (c + 1) / 2."""
    analyzer = vader.SentimentIntensityAnalyzer()
    return np.array([(analyzer.polarity_scores(t)["compound"] + 1) / 2 for t in texts])


# ------------------------------------------------------------------------------ corpus


def test_generation_is_deterministic_within_and_across_processes() -> None:
    first = generate_reviews(300, seed=11)
    assert first == generate_reviews(300, seed=11)
    assert first != generate_reviews(300, seed=12)
    assert all(isinstance(r, Review) for r in first)
    code = (
        "from lfi_gym.envs.text.tinyreviews import generate_reviews\n"
        "from lfi_gym.envs.text.tinyreviews.build import corpus_digest\n"
        "print(corpus_digest(generate_reviews(300, seed=11)))"
    )
    # another interpreter with another hash seed: nothing may depend on hash()
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
            f"the {split!r} split changed: rebuild the assets with "
            "`python -m lfi_gym.envs.text.tinyreviews.build --out envs/text/assets/tinyreviews`"
        )


@pytest.mark.parametrize("split", sorted(SPLIT_SIZES))
def test_split_sizes_balance_and_length_bounds(split: str) -> None:
    reviews = load_split(split)
    assert len(reviews) == SPLIT_SIZES[split]
    assert sum(r.label for r in reviews) == len(reviews) // 2
    assert {r.label for r in reviews} == {0, 1}
    words = [len(r.text.split()) for r in reviews]
    assert min(words) >= MIN_WORDS and max(words) <= MAX_WORDS
    sentences = [len(re.findall(r"[.!?](?:\s|$)", r.text)) for r in reviews]
    assert min(sentences) >= 1 and max(sentences) <= 4
    assert all(r.text[0].isupper() and r.text[-1] in ".!?" for r in reviews)


def test_load_split_is_cached_but_returns_a_fresh_list() -> None:
    a = load_split("test")
    a.clear()
    assert len(load_split("test")) == SPLIT_SIZES["test"]
    assert load_split("test")[0] is load_split("test")[0]  # the reviews themselves are cached


def test_unknown_split_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'dev'.*\['test', 'train', 'validation'\]"):
        load_split("dev")


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (2.5, 0), (True, 0), (3, "0"), (3, None)])
def test_bad_generate_arguments(n, seed) -> None:
    with pytest.raises(ValueError, match="must be"):
        generate_reviews(n, seed)


def test_splits_rarely_share_a_text() -> None:
    train = {r.text for r in load_split("train")}
    for split in ("validation", "test"):
        shared = np.mean([r.text in train for r in load_split(split)])
        assert shared <= 0.01, f"{shared:.3%} of {split} also in train"


def test_vader_separates_labels_but_first_halves_leave_room_to_steer() -> None:
    test = load_split("test")
    labels = np.array([r.label for r in test])
    full = _mapped_vader([r.text for r in test])
    gap = full[labels == 1].mean() - full[labels == 0].mean()
    assert gap >= 0.3, gap
    # the prompt (first half) must not always give the label away: neutral or contrary
    # openings are what lets an RL agent steer the continuation
    halves = _mapped_vader([prompt_and_continuation(r.text)[0] for r in test])
    undecided = np.mean((halves == 0.5) | ((halves > 0.5) != (labels == 1)))
    assert undecided >= 0.2, undecided


# ------------------------------------------------------------------------------ tokenizer


def test_tokenizer_round_trips_test_texts_and_follows_gpt2_conventions() -> None:
    tok, model = _tokenizer(), _model()
    texts = [r.text for r in load_split("test")]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    assert tok.batch_decode(ids) == texts
    eos = model.config.eos_token_id
    assert tok.eos_token == "<|endoftext|>"
    assert tok.eos_token_id == tok.pad_token_id == tok.bos_token_id == eos
    assert model.config.pad_token_id == model.generation_config.pad_token_id == eos
    assert model.generation_config.eos_token_id == eos
    assert tok.padding_side == "left"
    assert len(tok) == model.config.vocab_size == _training()["vocab_size"]
    assert tok("I watched it")["input_ids"][-1] != eos  # no special tokens added, as GPT-2
    batch = tok(["Great.", texts[0]], padding=True, return_tensors="pt")
    assert batch["input_ids"][0, 0] == eos and batch["attention_mask"][0, 0] == 0


# ------------------------------------------------------------------------------ model


def test_shipped_assets_are_small_and_documented() -> None:
    size = sum(p.stat().st_size for p in ASSET_DIR.iterdir())
    assert size < 8 * 2**20, size
    assert (ASSET_DIR / "model.safetensors").exists()
    assert not list(ASSET_DIR.glob("*.bin"))
    record = _training()
    assert isinstance(_model(), transformers.GPT2LMHeadModel)
    assert record["param_count"] == sum(p.numel() for p in _model().parameters())
    # CPU time, not wall time: the wall clock also counts the other users of a shared machine
    assert record["train_cpu_seconds"] <= 600
    lengths = record["token_lengths"]["all_splits"]
    assert lengths["prompt_tokens_max"] + lengths["continuation_tokens_max"] <= 128


def test_perplexity_matches_the_record_and_beats_uniform() -> None:
    tok, model = _tokenizer(), _model()
    seqs = encode_reviews(tok, load_split("test")[:200])
    ppl = perplexity(model, seqs)
    recorded = _training()["validation_perplexity"]
    assert ppl <= 1.2 * recorded, (ppl, recorded)
    assert ppl < len(tok) / 100  # uniform over the vocabulary would be len(tok) (~1,600)


def test_samples_from_test_prompts_are_review_like() -> None:
    tok, model = _tokenizer(), _model()
    vocabulary = {w for r in load_split("train") for w in _WORD.findall(r.text.lower())}
    prompts = [prompt_and_continuation(r.text)[0] for r in load_split("test")[:32]]
    batch = tok(prompts, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(
        **batch, do_sample=True, top_k=50, max_new_tokens=48, pad_token_id=tok.pad_token_id
    )
    samples = tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    words = [w for s in samples for w in _WORD.findall(s.lower())]
    assert len(words) >= 32 * 5  # the model continues rather than stopping at once
    known = np.mean([w in vocabulary for w in words])
    assert known >= 0.95, known
    bigrams = [tuple(s.split()[i : i + 2]) for s in samples for i in range(len(s.split()) - 1)]
    distinct2 = len(set(bigrams)) / len(bigrams)
    # the reference continuations of these prompts score 0.72 and the shipped model's samples
    # 0.71-0.73 (seeds 0-2); a model that loops on one phrase or copies one review scores
    # far lower
    assert distinct2 >= 0.5, distinct2


# ------------------------------------------------------------------------------ build


def test_build_rebuilds_the_same_tokenizer_and_a_loadable_model(tmp_path) -> None:
    tiny = "--steps 2 --warmup 1 --n-embd 16 --n-layer 1 --n-head 2 --threads 1".split()
    record = main(["--out", str(tmp_path), *tiny])
    assert (tmp_path / "tokenizer.json").read_bytes() == (ASSET_DIR / "tokenizer.json").read_bytes()
    assert record["split_sha256"] == _training()["split_sha256"]
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert model.config.n_embd == 16
    assert json.loads((tmp_path / "training.json").read_text())["steps"] == 2


@pytest.mark.parametrize(
    "argv",
    [["--n-embd", "130", "--n-head", "4"], ["--steps", "0"], ["--steps", "5", "--warmup", "5"]],
)
def test_build_refuses_bad_settings(argv, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), *argv])
    assert "must be" in capsys.readouterr().err
