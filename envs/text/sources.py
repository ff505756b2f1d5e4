"""The tasks behind each registered text id: data, tokenizer, reward and limits.

Every asset that comes from a hub (tokenizer, reward model, dataset) is an argument that
takes a hub name, a local directory (``save_pretrained`` / ``save_to_disk``) or an
already loaded object. A missing asset fails at once with a message naming it, how to
point at a local copy, and ``TextGen-TinyReviews-v0``, which runs offline (as does
``TextGen-TinyConcepts-v0``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from lfi_gym.envs.text.task import TextSample, TextTask, check_split, split_words
from lfi_gym.envs.text.tinyconcepts import MAX_NEW_TOKENS as _TINYCONCEPTS_MAX_NEW_TOKENS
from lfi_gym.envs.text.tinyconcepts import PROMPT_LENGTH as _TINYCONCEPTS_PROMPT_LENGTH

TINYREVIEWS_ID = "TextGen-TinyReviews-v0"
TINYCONCEPTS_ID = "TextGen-TinyConcepts-v0"
IMDB_ID = "TextGen-IMDB-v0"
COMMONGEN_ID = "TextGen-CommonGen-v0"

Reward = str | Callable[..., Sequence[float]]


def load_tokenizer(tokenizer: Any, *, env_id: str, argument: str, padding_side: str) -> Any:
    """A tokenizer from a hub name, a local directory, or a loaded tokenizer."""
    from transformers import AutoTokenizer

    from lfi_gym.envs.text.hub import load_pretrained

    if isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
        tokenizer = load_pretrained(
            AutoTokenizer.from_pretrained,
            str(tokenizer),
            asset="tokenizer",
            argument=argument,
            env_id=env_id,
        )
    if tokenizer.pad_token_id is None:  # GPT-2 convention: pad with eos
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def _named(asset: Any) -> str | None:
    """The hub name or folder of an asset given by name (the policy LM of the same name is
    the task's default), None for a loaded object."""
    return str(asset) if isinstance(asset, str) or hasattr(asset, "__fspath__") else None


def _filter_labels(samples: list[TextSample], labels: Sequence[int] | None, env_id: str):
    if labels is None:
        return samples
    kept = [s for s in samples if s.label in set(labels)]
    if not kept:
        raise ValueError(f"{env_id}: no prompt has a label in {list(labels)}")
    return kept


# -- TextGen-TinyReviews-v0 ----------------------------------------------------------------


def tinyreviews_task(
    *,
    split: str = "train",
    tokenizer: Any = None,
    reward: Reward = "lexicon-sentiment",
    prompt_length: int = 32,
    max_new_tokens: int = 32,
    min_new_tokens: int = 0,
    labels: Sequence[int] | None = None,
) -> TextTask:
    """The offline text task: grammar-made movie reviews, the shipped tokenizer and tiny
    GPT-2, and a lexicon sentiment reward in [0, 1] scored on prompt + continuation.

    A prompt is the first half of a review's words (left-truncated to ``prompt_length``
    tokens), its reference the other half. ``labels=(1,)`` keeps only positive reviews
    (the supervised fine-tuning data of GRUE IMDB's BC guide).
    """
    from lfi_gym.envs.text.rewards import make_reward
    from lfi_gym.envs.text.tinyreviews import ASSET_DIR

    check_split(split, TINYREVIEWS_ID)
    samples = list(_tinyreviews_samples(split))
    return TextTask(
        name=TINYREVIEWS_ID,
        tokenizer=load_tokenizer(
            ASSET_DIR if tokenizer is None else tokenizer,
            env_id=TINYREVIEWS_ID,
            argument="tokenizer",
            padding_side="left",
        ),
        samples=_filter_labels(samples, labels, TINYREVIEWS_ID),
        reward_fn=make_reward(reward),
        prompt_length=prompt_length,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        truncation_side="left",
        split=split,
        policy_model="lfi-gym/tinyreviews-lm",
    )


@functools.cache
def _tinyreviews_samples(split: str) -> tuple[TextSample, ...]:
    from lfi_gym.envs.text.tinyreviews import load_split

    samples = []
    for review in load_split(split):
        prompt, rest = split_words(review.text)
        samples.append(TextSample(prompt, (rest,), review.label))
    return tuple(samples)


# -- TextGen-TinyConcepts-v0 ---------------------------------------------------------------


def tinyconcepts_task(
    *,
    split: str = "train",
    tokenizer: Any = None,
    reward: Reward | None = None,
    prompt_length: int = _TINYCONCEPTS_PROMPT_LENGTH,
    max_new_tokens: int = _TINYCONCEPTS_MAX_NEW_TOKENS,
    min_new_tokens: int = 0,
) -> TextTask:
    """The offline concept-to-text task, shaped like CommonGen (Lin et al. 2020): the prompt
    names 2-4 concepts (``"write a review with: Greta Voss, thriller, brilliant."``), a
    completion should be a short review that uses every one; each concept set has 4
    reference reviews. The shipped tokenizer and tiny GPT-2 were trained on the train
    references alone, so zero-shot they write reviews that ignore the concepts.

    Causal LM, prompt padded left as on TinyReviews; by default every prompt fits in
    ``prompt_length`` (32 tokens) and every reference plus eos in ``max_new_tokens`` (40).
    Each row passes its ``concepts`` to the reward. Default reward:
    :class:`~lfi_gym.envs.text.concepts.ConceptCoverageReward`: the fraction of the
    concepts used, times 1 if the completion passes a grammar check against the train
    references (every word-class trigram found there), else 0.
    """
    from lfi_gym.envs.text.rewards import make_reward
    from lfi_gym.envs.text.tinyconcepts import ASSET_DIR

    check_split(split, TINYCONCEPTS_ID)
    reward_fn = _tinyconcepts_default_reward() if reward is None else make_reward(reward)
    return TextTask(
        name=TINYCONCEPTS_ID,
        tokenizer=load_tokenizer(
            ASSET_DIR if tokenizer is None else tokenizer,
            env_id=TINYCONCEPTS_ID,
            argument="tokenizer",
            padding_side="left",
        ),
        samples=_tinyconcepts_samples(split),
        reward_fn=reward_fn,
        prompt_length=prompt_length,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        truncation_side="left",
        split=split,
        policy_model="lfi-gym/tinyconcepts-lm",
    )


@functools.cache
def _tinyconcepts_samples(split: str) -> tuple[TextSample, ...]:
    from lfi_gym.envs.text.concepts import concept_prompt
    from lfi_gym.envs.text.tinyconcepts import load_split

    return tuple(
        TextSample(concept_prompt(s.concepts), s.references, concepts=s.concepts)
        for s in load_split(split)
    )


@functools.cache
def _tinyconcepts_fluency_corpus() -> tuple[str, ...]:
    """Every reference of the train split: the texts the shipped LM was trained on."""
    return tuple(text for sample in _tinyconcepts_samples("train") for text in sample.references)


@functools.cache
def _tinyconcepts_default_reward() -> Any:
    """ConceptCoverageReward over the train references, built once per process: reading the
    corpus' trigrams takes most of a second, and the reward is never modified after.

    Fluency is a grammar check: 1 if every word-class trigram of the completion occurs in
    the train references, else 0. Measured on the validation split, all 500 first references
    pass, as do 77% of the zero-shot LM's completions, and no shuffled reference or list of
    the concepts followed by a fluent review does (``benchmarks/tinyconcepts_task.py``).
    The fraction of plain word trigrams found, tried first, gave a bare list of the
    concepts 0.24-0.47 and a list followed by a fluent review 0.81, against 0.96 for the
    references: a policy could have learnt to copy the prompt."""
    from lfi_gym.envs.text.concepts import ConceptCoverageReward
    from lfi_gym.envs.text.tinyconcepts import WORD_CLASSES

    return ConceptCoverageReward(
        fluency_corpus=_tinyconcepts_fluency_corpus(),
        word_classes=WORD_CLASSES,
        fluency_rule="all",
    )


# -- TextGen-IMDB-v0 -----------------------------------------------------------------------


def imdb_task(
    *,
    split: str = "train",
    dataset: Any = "imdb",
    policy_tokenizer: Any = "gpt2",
    reward_model: Any = "lvwerra/distilbert-imdb",
    reward: Reward | None = None,
    prompt_length: int = 64,
    max_new_tokens: int = 48,
    min_new_tokens: int = 48,
    labels: Sequence[int] | None = None,
    device: str = "auto",
) -> TextTask:
    """GRUE IMDB (Ramamurthy et al. 2023): continue a review's first half with positive sentiment.

    Splits: train = 80% of the shuffled train split (seed 42), validation = the other
    20%, test = 5,000 of the shuffled test split. Reward: P(positive) of ``reward_model``
    on prompt + continuation, unless ``reward`` (a registered name or a callable) is given.
    """
    from lfi_gym.envs.text.hub import load_hf_dataset
    from lfi_gym.envs.text.rewards import SequenceClassifierReward, make_reward

    check_split(split, IMDB_ID)
    tokenizer = load_tokenizer(
        policy_tokenizer, env_id=IMDB_ID, argument="policy_tokenizer", padding_side="left"
    )
    if reward is None:
        reward_fn = SequenceClassifierReward(
            model=reward_model, label=1, device=device, env_id=IMDB_ID
        )
    else:
        reward_fn = make_reward(reward)
    data = load_hf_dataset(dataset, asset="dataset", argument="dataset", env_id=IMDB_ID)
    rows = _imdb_split(data, split)
    samples = []
    for text, label in zip(rows["text"], rows["label"], strict=True):
        prompt, rest = split_words(text)
        samples.append(TextSample(prompt, (rest,), int(label)))
    return TextTask(
        name=IMDB_ID,
        tokenizer=tokenizer,
        samples=_filter_labels(samples, labels, IMDB_ID),
        reward_fn=reward_fn,
        prompt_length=prompt_length,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        truncation_side="left",
        split=split,
        policy_model=_named(policy_tokenizer),
    )


def _imdb_split(data: Any, split: str) -> Any:
    for name in ("train", "test"):
        if name not in data:
            raise ValueError(
                f"{IMDB_ID}: the dataset has no {name!r} split (it has {list(data)}); pass the "
                "IMDB DatasetDict with 'train' and 'test' splits"
            )
        if len(data[name]) == 0:
            raise ValueError(
                f"{IMDB_ID}: the dataset's {name!r} split has no rows; pass an IMDB "
                "DatasetDict whose 'train' and 'test' splits hold reviews"
            )
        missing = {"text", "label"} - set(data[name].column_names)
        if missing:
            raise ValueError(
                f"{IMDB_ID}: the {name!r} split lacks the columns {sorted(missing)}; IMDB rows "
                "have 'text' and 'label'"
            )
    if split == "test":
        test = data["test"].shuffle(seed=42)
        return test.select(range(min(5000, len(test))))
    train = data["train"].shuffle(seed=42)
    cut = int(0.8 * len(train))
    return train.select(range(cut) if split == "train" else range(cut, len(train)))


# -- TextGen-CommonGen-v0 ------------------------------------------------------------------


def commongen_task(
    *,
    split: str = "train",
    dataset: Any = "common_gen",
    policy_tokenizer: Any = "t5-base",
    reward: Reward | None = None,
    prompt_length: int = 15,
    max_new_tokens: int = 20,
    min_new_tokens: int = 0,
) -> TextTask:
    """CommonGen (Lin et al. 2020): write a sentence using a concept set; seq2seq (T5).

    Rows are grouped by concept set and their targets merged into the references. The
    prompt is ``"generate a sentence with: " + " ".join(concepts) + "."``, truncated on
    the right to ``prompt_length`` tokens. Reward: SPIDER (CIDEr-D + SPICE) when SPICE
    can run (Java and pycocoevalcap present), else CIDEr-D with document frequencies over
    the split's reference sets; the reward's name is in every final info's ``scores``.
    """
    from lfi_gym.envs.text.hub import load_hf_dataset
    from lfi_gym.envs.text.rewards import CIDErDReward, SpiderReward, make_reward, spice_available

    check_split(split, COMMONGEN_ID)
    tokenizer = load_tokenizer(
        policy_tokenizer, env_id=COMMONGEN_ID, argument="policy_tokenizer", padding_side="left"
    )
    data = load_hf_dataset(dataset, asset="dataset", argument="dataset", env_id=COMMONGEN_ID)
    if split not in data:
        raise ValueError(
            f"{COMMONGEN_ID}: the dataset has no {split!r} split (it has {list(data)})"
        )
    rows = data[split]
    missing = {"concept_set_idx", "concepts", "target"} - set(rows.column_names)
    if missing:
        raise ValueError(
            f"{COMMONGEN_ID}: the {split!r} split lacks the columns {sorted(missing)}; "
            "CommonGen rows have 'concept_set_idx', 'concepts' and 'target'"
        )
    samples = _group_concept_sets(rows)
    if reward is not None:
        reward_fn = make_reward(reward)
    else:
        corpus = [list(s.references) for s in samples]
        # RLGF's SPIDER is the sum CIDEr-D + SPICE (SPIDEr, Liu et al. 2017, averages).
        if spice_available():
            reward_fn = SpiderReward(corpus, cider_weight=1.0, spice_weight=1.0)
        else:
            reward_fn = CIDErDReward(corpus)
    return TextTask(
        name=COMMONGEN_ID,
        tokenizer=tokenizer,
        samples=samples,
        reward_fn=reward_fn,
        prompt_length=prompt_length,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        truncation_side="right",
        seq2seq=True,
        split=split,
        policy_model=_named(policy_tokenizer),
    )


def _group_concept_sets(rows: Any) -> list[TextSample]:
    """One sample per concept set, in order of first appearance, references merged."""
    prompts: dict[int, str] = {}
    references: dict[int, list[str]] = {}
    for index, concepts, target in zip(
        rows["concept_set_idx"], rows["concepts"], rows["target"], strict=True
    ):
        if index not in prompts:
            prompts[index] = "generate a sentence with: " + " ".join(concepts) + "."
            references[index] = []
        if target:  # the hub's test split has no targets
            references[index].append(target)
    return [TextSample(prompts[i], tuple(references[i])) for i in prompts]
