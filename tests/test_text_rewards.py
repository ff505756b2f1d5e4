"""Reward functions and text metrics of the TextGen-* envs, on tiny models made on the fly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lfi_gym.envs.text import rewards
from lfi_gym.envs.text.cider import DocumentFrequency, cider_d, coco_tokenize
from lfi_gym.envs.text.metrics import distinct_n, output_perplexity, perplexity
from lfi_gym.envs.text.rewards import (
    BLEUReward,
    CIDErDReward,
    LexiconSentimentReward,
    RewardError,
    SequenceClassifierReward,
    SpiceUnavailableError,
    SpiderReward,
    check_rewards,
    make_reward,
    register_reward,
    reward_name,
)

CORPUS = [
    "this movie was great and the actors were wonderful",
    "a terrible film with a boring plot and bad acting",
    "i loved the music but the ending was weak",
    "the story is long and slow yet the cast is good",
    "two dogs play with a red ball in the park",
]


def _tokenizer():
    """A word-level tokenizer trained on CORPUS, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"])
    backend.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        model_input_names=["input_ids", "attention_mask"],
    )


@pytest.fixture(scope="module")
def classifier_dir(text_assets) -> Path:
    """The shared tiny DistilBERT classifier (NEGATIVE / POSITIVE, random weights) and its
    tokenizer on disk (tests/text_assets.py)."""
    return text_assets.sentiment_classifier


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 with a 16-token context (random weights) and its tokenizer on disk."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=16,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.unk_token_id,
        eos_token_id=tokenizer.unk_token_id,
    )
    path = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# -- SequenceClassifierReward ---------------------------------------------------------------


PROMPTS = ["this movie was", "a terrible", "the story", "i loved", "two dogs play"]
COMPLETIONS = [
    " great and wonderful",
    " film with bad acting and a boring slow plot",
    " is good",
    " the music",
    " with a red ball in the park and the cast",
]


def _manual_probabilities(path: Path, texts: list[str], label: int) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    out = []
    with torch.no_grad():
        for text in texts:  # one at a time: no padding involved
            ids = tokenizer(text, return_tensors="pt")
            logits = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
            out.append(torch.softmax(logits, dim=-1)[0, label].item())
    return np.array(out)


def test_classifier_reward_matches_manual_softmax(classifier_dir: Path) -> None:
    reward = SequenceClassifierReward(model=str(classifier_dir), batch_size=2, device="cpu")
    got = np.array(reward(PROMPTS, COMPLETIONS, [[]] * 5))
    texts = [p + c for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    np.testing.assert_allclose(got, _manual_probabilities(classifier_dir, texts, 1), atol=1e-5)
    assert reward_name(reward) == "sequence-classifier"
    # Scoring the completion alone is a different text, so (random model) other values.
    only = SequenceClassifierReward(model=classifier_dir, score_on="completion", device="cpu")
    np.testing.assert_allclose(
        only(PROMPTS, COMPLETIONS, [[]] * 5),
        _manual_probabilities(classifier_dir, COMPLETIONS, 1),
        atol=1e-5,
    )


def test_classifier_reward_label_by_name_and_bad_label(classifier_dir: Path) -> None:
    by_index = SequenceClassifierReward(model=classifier_dir, label=0, device="cpu")
    by_name = SequenceClassifierReward(model=classifier_dir, label="NEGATIVE", device="cpu")
    folded = SequenceClassifierReward(model=classifier_dir, label="negative", device="cpu")
    positive = SequenceClassifierReward(model=classifier_dir, label="POSITIVE", device="cpu")
    a = np.array(by_index(PROMPTS, COMPLETIONS, None))
    np.testing.assert_allclose(a, by_name(PROMPTS, COMPLETIONS, None))
    np.testing.assert_allclose(a, folded(PROMPTS, COMPLETIONS, None))
    np.testing.assert_allclose(a + np.array(positive(PROMPTS, COMPLETIONS, None)), 1.0, atol=1e-6)
    with pytest.raises(RewardError, match=r"'MIXED' is not one of .*NEGATIVE.*POSITIVE"):
        SequenceClassifierReward(model=classifier_dir, label="MIXED")
    with pytest.raises(RewardError, match=r"label index 2 is out of range .* 2 labels"):
        SequenceClassifierReward(model=classifier_dir, label=2)


def test_classifier_reward_loaded_model_needs_tokenizer(classifier_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir)
    with pytest.raises(RewardError, match="pass its tokenizer"):
        SequenceClassifierReward(model=model)
    tokenizer = AutoTokenizer.from_pretrained(classifier_dir)
    reward = SequenceClassifierReward(model=model, tokenizer=tokenizer, device="cpu")
    from_path = SequenceClassifierReward(model=classifier_dir, device="cpu")
    np.testing.assert_allclose(
        reward(PROMPTS, COMPLETIONS, None), from_path(PROMPTS, COMPLETIONS, None), atol=1e-6
    )


# -- lexicon sentiment and BLEU -------------------------------------------------------------


def test_lexicon_sentiment_mapping_and_polarity() -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    reward = make_reward("lexicon-sentiment")
    prompts = ["The film was", "The film was", "I think"]
    completions = [" wonderful, I loved it!", " awful and boring, I hated it.", " it is a film"]
    got = reward(prompts, completions, [[], [], []])
    analyzer = SentimentIntensityAnalyzer()
    expected = [
        (analyzer.polarity_scores(p + c)["compound"] + 1) / 2
        for p, c in zip(prompts, completions, strict=True)
    ]
    assert got == pytest.approx(expected)
    assert got[0] > 0.8 > 0.5 > 0.2 > got[1]
    assert got[2] == pytest.approx(0.5)  # no sentiment words: compound 0
    # score_on="completion" ignores a negative prompt
    mixed = LexiconSentimentReward(score_on="completion")
    whole = LexiconSentimentReward()
    prompt, completion = ["This terrible, awful movie"], [" was a great joy"]
    assert mixed(prompt, completion, [[]])[0] > whole(prompt, completion, [[]])[0]
    with pytest.raises(RewardError, match="score_on must be one of"):
        LexiconSentimentReward(score_on="prompt")


def test_bleu_equals_sacrebleu_sentence_bleu() -> None:
    import sacrebleu

    completions = ["the cat sat on the mat", "a dog runs", "nothing in common here", ""]
    references = [
        ["the cat sat on a mat", "a cat is on the mat"],
        ["a dog runs in the park"],
        ["the cat sat"],
        ["something"],
    ]
    got = BLEUReward()(["p"] * 4, completions, references)
    expected = [
        sacrebleu.sentence_bleu(c, r).score / 100
        for c, r in zip(completions, references, strict=True)
    ]
    assert got == pytest.approx(expected, abs=1e-12)
    assert got[0] > got[1] > 0.0 and 0.0 <= got[2] < got[1]
    with pytest.raises(RewardError, match="bleu needs references"):
        BLEUReward()(["p"], ["x"], None)
    with pytest.raises(RewardError, match="references row 0 is empty"):
        BLEUReward()(["p"], ["x"], [[]])


# -- CIDEr-D --------------------------------------------------------------------------------


def test_cider_identical_candidate_hand_value() -> None:
    # Two reference sets, n-grams of "a b" occur in one of them: idf = log 2 > 0 for each.
    # Unigram and bigram cosines are 1, there are no 3- and 4-grams: 10 * (1 + 1 + 0 + 0) / 4.
    scores = cider_d(["a b", "c d"], [["a b"], ["c d"]])
    np.testing.assert_allclose(scores, [5.0, 5.0])
    unigram = cider_d(["a b"], [["a b"]], n=1, document_frequency=_df([["a b"], ["c d"]], 1))
    np.testing.assert_allclose(unigram, [10.0])


def _df(sets: list[list[str]], n: int = 4) -> DocumentFrequency:
    return DocumentFrequency.from_reference_sets(sets, n=n)


def test_cider_clipping_and_length_penalty_hand_value() -> None:
    # "a a" vs "a" (n = 1): tf-idf (2w) vs (w); clipped overlap min(2w, w) * w = w^2,
    # cosine w^2 / (2w * w) = 1/2, length difference 1: exp(-1 / (2 * 6^2)).
    scores = cider_d(["a a", "z"], [["a"], ["z"]], n=1)
    assert scores[0] == pytest.approx(10 * 0.5 * math.exp(-1 / 72))
    # Same cosine, longer gap: the Gaussian penalty with sigma 6 in words.
    far = cider_d(["a a a a a a a"], [["a"]], n=1, document_frequency=_df([["a"], ["z"]], 1))
    assert far[0] == pytest.approx(10 * (1 / 7) * math.exp(-36 / 72))
    # A larger sigma forgives length more.
    wide = cider_d(
        ["a a a a a a a"], [["a"]], n=1, sigma=60.0, document_frequency=_df([["a"], ["z"]], 1)
    )
    assert wide[0] > far[0]


def test_cider_document_frequency_effect() -> None:
    # n = 1, candidate "a b", reference "a c". Corpus: "a" in 2 of 3 sets, "c" in 1, "b" in 0.
    corpus = [["a c"], ["a x"], ["y"]]
    common, rare = math.log(3 / 2), math.log(3)
    expected = 10 * common**2 / (common**2 + rare**2)
    got = cider_d(["a b"], [["a c"]], n=1, document_frequency=_df(corpus, 1))
    assert got[0] == pytest.approx(expected)
    # When "a" is in every reference set it carries no information: idf 0, score 0.
    everywhere = cider_d(["a b"], [["a c"]], n=1, document_frequency=_df([["a c"], ["a"]], 1))
    assert everywhere[0] == 0.0
    # With the corpus in the reward, a row scores the same alone as in any batch.
    reward = CIDErDReward(corpus_references=[*corpus, ["a b c"]])
    alone = reward(["p"], ["a b"], [["a c"]])
    batched = reward(["p", "p"], ["x y", "a b"], [["x"], ["a c"]])
    assert alone[0] == pytest.approx(batched[1])


def test_cider_averages_over_references_and_identical_scores_highest() -> None:
    corpus = [
        ["a man rides a horse on the beach", "a person riding a horse"],
        ["two dogs play with a ball", "dogs playing in the grass"],
        ["a woman cuts a cake", "a cake being cut by a lady"],
    ]
    frequency = _df(corpus)
    candidate = "a man riding a horse"
    both = cider_d([candidate], [corpus[0]], document_frequency=frequency)[0]
    singles = [cider_d([candidate], [[r]], document_frequency=frequency)[0] for r in corpus[0]]
    assert both == pytest.approx(np.mean(singles))

    reference = corpus[1][0]
    variants = [reference, "two dogs play with a red ball", "two dogs play", "a cake is cut"]
    scores = cider_d(variants, [[reference]] * 4, document_frequency=frequency)
    assert scores[0] == scores.max() and scores[0] > scores[1] > 0 and scores[3] == 0
    # Case and punctuation do not matter (COCO normalisation); repetition does not help.
    assert cider_d(["Two dogs play with a ball!"], [[reference]], document_frequency=frequency)[
        0
    ] == pytest.approx(scores[0])
    repeated = cider_d(["dogs dogs dogs dogs"], [[reference]], document_frequency=frequency)
    once = cider_d(["dogs"], [[reference]], document_frequency=frequency)
    assert repeated[0] <= once[0] + 1e-12


def test_coco_tokenize() -> None:
    assert coco_tokenize("A dog's ball, isn't it?") == ["a", "dog", "'s", "ball", "is", "n't", "it"]
    assert coco_tokenize("Pay $3.50 (cheap)!") == ["pay", "$", "3.50", "-lrb-", "cheap", "-rrb-"]


def test_cider_reward_validation() -> None:
    reward = make_reward("cider-d")
    with pytest.raises(RewardError, match="cider-d needs references"):
        reward(["p"], ["c"], None)
    with pytest.raises(RewardError, match="got 1 reference lists for 2 completions"):
        reward(["p", "p"], ["c", "d"], [["r"]])
    with pytest.raises(RewardError, match="n must be an int >= 1"):
        CIDErDReward(n=0)
    with pytest.warns(UserWarning, match="every CIDEr-D score is 0"):
        CIDErDReward(corpus_references=[["only one set"]])


def test_cider_matches_pycocoevalcap() -> None:
    cider_module = pytest.importorskip("pycocoevalcap.cider.cider")
    rng = np.random.default_rng(0)
    vocab = "a the dog cat runs park ball man eats sits red on in with".split()

    def sentence() -> str:
        return " ".join(rng.choice(vocab, size=int(rng.integers(0, 10))))

    candidates = [sentence() for _ in range(40)]
    references = [[sentence() or "x" for _ in range(int(rng.integers(1, 5)))] for _ in range(40)]
    _, expected = cider_module.Cider().compute_score(
        dict(enumerate(references)), {i: [c] for i, c in enumerate(candidates)}
    )
    got = CIDErDReward()(["p"] * 40, candidates, references)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_spider_without_spice_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards, "_spice_dir", lambda: None)
    assert not rewards.spice_available()
    with pytest.raises(SpiceUnavailableError, match=r"pycocoevalcap is not installed.*'cider-d'"):
        SpiderReward()
    with pytest.raises(SpiceUnavailableError):
        make_reward("spider")


def test_spider_plumbing_with_a_stand_in_spice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SPICE itself cannot run here (no CoreNLP jars); a stand-in `java` checks the rest:
    the jar's command line, the batch file it reads, and how its scores are combined."""
    import sys

    spice_dir = tmp_path / "spice"
    (spice_dir / "lib").mkdir(parents=True)
    (spice_dir / "spice-1.0.jar").write_text("")
    monkeypatch.setattr(rewards, "_spice_dir", lambda: spice_dir)
    monkeypatch.setattr(rewards.shutil, "which", lambda name: None)
    assert "no `java` binary" in rewards.spice_unavailable_reason()
    java = tmp_path / "java"
    java.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:3] == ['-jar', '-Xmx8G', 'spice-1.0.jar'], args\n"
        "rows = json.load(open(args[3]))\n"
        "out = [{'image_id': r['image_id'], 'scores': {'All': {'f': len(r['test']) / 100}}}\n"
        "       for r in reversed(rows)]\n"
        "json.dump(out, open(args[args.index('-out') + 1], 'w'))\n"
    )
    java.chmod(0o755)
    monkeypatch.setattr(rewards.shutil, "which", lambda name: str(java))
    assert "CoreNLP jars" in rewards.spice_unavailable_reason()
    for jar in rewards._CORENLP_JARS:
        (spice_dir / "lib" / jar).write_text("")
    assert rewards.spice_available()
    corpus = [["a dog runs"], ["two cats sleep"], ["a red car"]]
    reward = SpiderReward(corpus_references=corpus, cache_dir=tmp_path / "cache")
    completions = ["a dog runs", "cats"]
    got = reward(["p", "p"], completions, corpus[:2])
    cider = CIDErDReward(corpus_references=corpus)(["p", "p"], completions, corpus[:2])
    expected = [0.5 * c + 0.5 * len(text) / 100 for c, text in zip(cider, completions, strict=True)]
    assert got == pytest.approx(expected)


# -- check_rewards and the registry ---------------------------------------------------------


def test_check_rewards_errors_name_the_function() -> None:
    np.testing.assert_array_equal(check_rewards([1, 2.5], 2, "f"), [1.0, 2.5])
    assert check_rewards(torch.tensor([0.5]), 1, "f").dtype == np.float64
    with pytest.raises(RewardError, match=r"'my_reward' returned 1 value\(s\) .* for 2 rows"):
        check_rewards([1.0], 2, "my_reward")
    with pytest.raises(RewardError, match=r"'my_reward' returned NaN at rows \[1\]"):
        check_rewards([0.0, float("nan"), 1.0], 3, "my_reward")
    with pytest.raises(RewardError, match=r"'my_reward' returned NaN / inf at rows \[0, 2\]"):
        check_rewards([float("inf"), 0.0, float("nan")], 3, "my_reward")
    with pytest.raises(RewardError, match=r"'my_reward' returned values of type <U"):
        check_rewards(["0.5", "1"], 2, "my_reward")
    with pytest.raises(RewardError, match=r"'my_reward' returned None at rows \[1\]"):
        check_rewards([0.5, None], 2, "my_reward")
    with pytest.raises(RewardError, match="'my_reward' returned values of type object"):
        check_rewards([0.5, {}], 2, "my_reward")
    with pytest.raises(RewardError, match="exactly one float per row"):
        check_rewards([[1.0], [2.0]], 2, "my_reward")


def test_registry() -> None:
    assert {"lexicon-sentiment", "sequence-classifier", "cider-d", "bleu", "spider"} <= set(
        rewards.REWARDS
    )
    assert isinstance(make_reward("cider-d", n=2), CIDErDReward)
    assert make_reward("cider-d", n=2).n == 2

    def length_reward(prompts, completions, references):
        return [float(len(c)) for c in completions]

    assert make_reward(length_reward) is length_reward
    assert reward_name(length_reward) == "length_reward"
    assert reward_name(BLEUReward()) == "bleu"
    with pytest.raises(RewardError, match=r"unknown reward 'rouge'.*'bleu'.*'cider-d'"):
        make_reward("rouge")
    with pytest.raises(RewardError, match="registered name"):
        make_reward(3)
    with pytest.raises(RewardError, match="only apply to a registered reward name"):
        make_reward(length_reward, n=2)
    with pytest.raises(RewardError, match="already registered"):
        register_reward("bleu", BLEUReward)


def test_bad_rows_are_refused() -> None:
    reward = LexiconSentimentReward()
    with pytest.raises(RewardError, match="got 2 prompts but 1 completions"):
        reward(["a", "b"], ["c"], None)
    with pytest.raises(RewardError, match=r"completions rows \[1\] are not str"):
        reward(["a", "b"], ["c", 3], None)
    with pytest.raises(RewardError, match="prompts must be a list of str"):
        reward("ab", ["c", "d"], None)
    assert reward([], [], []) == []


# -- metrics --------------------------------------------------------------------------------


def test_distinct_n_hand_cases() -> None:
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)
    assert distinct_n(["a b", "b a"], 2) == 1.0  # n-grams do not cross texts
    assert distinct_n(["a", ""], 2) == 0.0
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["A,b a,B"], 1, tokenize=lambda t: t.lower().split(",")) == pytest.approx(
        3 / 3
    )
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        distinct_n(["a"], 0)
    with pytest.raises(TypeError, match="not one str"):
        distinct_n("a b", 1)


def _load_gpt2(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_perplexity_equals_exp_loss(gpt2_dir: Path) -> None:
    model, tokenizer = _load_gpt2(gpt2_dir)
    text = "the story is long and slow yet the cast is good"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = math.exp(model(ids, labels=ids).loss.item())
    assert perplexity(model, tokenizer, [text]) == pytest.approx(expected, rel=1e-5)
    # The text fits in the 16-token context: any stride gives the same windows.
    assert perplexity(model, tokenizer, [text], stride=3) == pytest.approx(expected, rel=1e-5)
    assert output_perplexity is perplexity
    assert model.training is False


def test_perplexity_is_token_weighted_over_padded_batches(gpt2_dir: Path) -> None:
    model, tokenizer = _load_gpt2(gpt2_dir)
    texts = ["a terrible film with a boring plot and bad acting", "i loved the music", "great"]
    total, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        if ids.shape[1] < 2:
            continue  # "great" is one token: nothing to predict
        with torch.no_grad():
            total += model(ids, labels=ids).loss.item() * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    expected = math.exp(total / count)
    assert perplexity(model, tokenizer, texts, batch_size=3) == pytest.approx(expected, rel=1e-5)
    assert perplexity(model, tokenizer, texts, batch_size=1) == pytest.approx(expected, rel=1e-5)


def test_perplexity_sliding_window_on_long_text(gpt2_dir: Path) -> None:
    model, tokenizer = _load_gpt2(gpt2_dir)
    text = " ".join(CORPUS[:3])  # 28 tokens, longer than the 16-token context
    ids = tokenizer(text)["input_ids"]
    assert len(ids) > 16

    def window_nll(begin: int, end: int, scored: int) -> float:
        window = torch.tensor([ids[begin:end]])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(window).logits[0, :-1], dim=-1)
        nll = -log_probs.gather(-1, window[0, 1:, None])[:, 0]
        return nll[-scored:].sum().item()

    # Non-overlapping windows (stride = context): [0, 16) scores 15 tokens, [16, n) n - 17.
    n = len(ids)
    abutting = math.exp((window_nll(0, 16, 15) + window_nll(16, n, n - 17)) / (n - 2))
    got = perplexity(model, tokenizer, [text], stride=16, max_length=16)
    assert got == pytest.approx(abutting, rel=1e-5)
    # Overlapping windows (stride 8): [0, 16) scores 15, [8, 24) scores 8, [16, n) scores n - 24.
    overlap = window_nll(0, 16, 15) + window_nll(8, 24, 8) + window_nll(16, n, n - 24)
    got = perplexity(model, tokenizer, [text], stride=8, max_length=16)
    assert got == pytest.approx(math.exp(overlap / (n - 1)), rel=1e-5)
    # A stride beyond the context means abutting windows, never skipped tokens.
    assert perplexity(model, tokenizer, [text], stride=512) == pytest.approx(abutting, rel=1e-5)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        perplexity(model, tokenizer, [text], stride=0)
    with pytest.raises(ValueError, match="nothing to predict"):
        perplexity(model, tokenizer, ["great"])


def test_perplexity_of_continuations_scores_only_the_text_after_its_prompt(gpt2_dir: Path) -> None:
    model, tokenizer = _load_gpt2(gpt2_dir)
    prompts, texts = ["the story is", "i loved"], [" long and slow", " the music"]
    total, count = 0.0, 0
    for prompt, text in zip(prompts, texts, strict=True):
        context = tokenizer(prompt)["input_ids"]
        continuation = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context + continuation])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
        nll = -log_probs.gather(-1, ids[0, 1:, None])[:, 0]
        total += nll[-len(continuation) :].sum().item()  # every text token, the first included
        count += len(continuation)
    expected = math.exp(total / count)
    got = perplexity(model, tokenizer, texts, prompts=prompts, batch_size=2)
    assert got == pytest.approx(expected, rel=1e-5)
    assert perplexity(model, tokenizer, texts, prompts=prompts, batch_size=1) == pytest.approx(
        expected, rel=1e-5
    )
    with pytest.raises(ValueError, match="one str per text"):
        perplexity(model, tokenizer, texts, prompts=prompts[:1])
    with pytest.raises(ValueError, match="more than the context of 16"):
        perplexity(model, tokenizer, [" ".join(CORPUS[:3])], prompts=["the story is"])
