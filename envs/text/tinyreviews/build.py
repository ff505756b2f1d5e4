"""Builds the shipped TinyReviews assets: a byte-level BPE tokenizer and a tiny GPT-2.

    nice -n 5 python -m lfi_gym.envs.text.tinyreviews.build --out envs/text/assets/tinyreviews

The defaults are the settings of the shipped assets, so re-running the command rebuilds
them from the same data (the corpus and the tokenizer are exactly reproducible; the
weights are reproducible on the same torch build and thread count). The tokenizer and the
training loop are those of :mod:`lfi_gym.envs.text.lmbuild` (GPT-2's conventions: one
special token "<|endoftext|>" as bos, eos, unk and pad, left padding); the model sees each
review followed by eos, so it learns to end a review.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lfi_gym.envs.text.lmbuild import (
    EOS_TOKEN,
    add_training_arguments,
    check_training_arguments,
    encode_texts,
    perplexity,
    platform_fields,
    save_assets,
    train_causal_lm,
    train_tokenizer,
    training_fields,
    write_training_record,
)
from lfi_gym.envs.text.task import split_words
from lfi_gym.envs.text.tinyreviews import ASSET_DIR, SPLIT_SEEDS, SPLIT_SIZES, Review, load_split

__all__ = [
    "EOS_TOKEN",
    "corpus_digest",
    "encode_reviews",
    "main",
    "perplexity",
    "prompt_and_continuation",
    "train_tokenizer",
]


def prompt_and_continuation(text: str) -> tuple[str, str]:
    """Splits a review as the text env does: the first 50% of its whitespace words (rounded
    down) are the prompt, the rest (with its leading space) the continuation."""
    prompt, rest = split_words(text)
    return prompt, " " + rest


def corpus_digest(reviews: Sequence[Review]) -> str:
    """SHA-256 of a list of reviews: recorded in training.json so that a test notices when the
    grammar changes and the shipped model no longer matches the corpus it was trained on."""
    digest = hashlib.sha256()
    for review in reviews:
        digest.update(f"{review.label}\t{review.text}\n".encode())
    return digest.hexdigest()


def encode_reviews(tokenizer: Any, reviews: Sequence[Review]) -> list[list[int]]:
    """Token ids of each review followed by eos (what the model is trained and scored on)."""
    return encode_texts(tokenizer, [r.text for r in reviews])


def _length_stats(tokenizer: Any, reviews: Sequence[Review]) -> dict[str, float]:
    """Token counts of the prompt / continuation halves (the env's horizon depends on them)."""
    prompts, conts = zip(*(prompt_and_continuation(r.text) for r in reviews), strict=True)
    p = [len(x) for x in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    c = [len(x) for x in tokenizer(list(conts), add_special_tokens=False)["input_ids"]]
    full = [len(x) for x in tokenizer([r.text for r in reviews], add_special_tokens=False)[
        "input_ids"
    ]]  # fmt: skip
    words = [len(r.text.split()) for r in reviews]
    return {
        "reviews": len(reviews),
        "words_min": min(words),
        "words_max": max(words),
        "words_mean": round(float(np.mean(words)), 2),
        "review_tokens_max": max(full),
        "review_tokens_mean": round(float(np.mean(full)), 2),
        "prompt_tokens_max": max(p),
        "prompt_tokens_mean": round(float(np.mean(p)), 2),
        "continuation_tokens_max": max(c),
        "continuation_tokens_mean": round(float(np.mean(c)), 2),
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lfi_gym.envs.text.tinyreviews.build",
        description="Train the TinyReviews tokenizer and tiny GPT-2 (defaults = shipped).",
    )
    parser.add_argument("--out", type=pathlib.Path, default=ASSET_DIR)
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    check_training_arguments(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Builds tokenizer + model into ``--out`` and returns what it wrote to training.json."""
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    train, valid, test = load_split("train"), load_split("validation"), load_split("test")
    tokenizer = train_tokenizer([r.text for r in train], args.vocab_size)
    train_ids, valid_ids = encode_reviews(tokenizer, train), encode_reviews(tokenizer, valid)
    too_long = max(len(s) for s in train_ids + valid_ids)
    if too_long > args.n_positions:
        raise ValueError(f"a review has {too_long} tokens > --n-positions {args.n_positions}")

    model, timing = train_causal_lm(tokenizer, train_ids, args)
    valid_ppl = perplexity(model, valid_ids)
    print(f"validation perplexity {valid_ppl:.3f}", flush=True)
    save_assets(args.out, tokenizer, model)

    record = {
        "command": "nice -n 5 python -m lfi_gym.envs.text.tinyreviews.build "
        + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "seed": args.seed,
        "split_seeds": SPLIT_SEEDS,
        "split_sizes": SPLIT_SIZES,
        "split_sha256": {
            name: corpus_digest(split)
            for name, split in (("train", train), ("validation", valid), ("test", test))
        },
        **training_fields(args, tokenizer, model, train_ids, timing),
        "total_wall_seconds": round(time.perf_counter() - started, 1),
        "validation_perplexity": round(valid_ppl, 4),
        "validation_reviews": len(valid_ids),
        "perplexity_definition": "exp(mean NLL per predicted token), review tokens + eos",
        "token_lengths": {
            "definition": "prompt = first 50% (rounded down) of whitespace words; "
            "continuation = the rest with its leading space; no special tokens",
            "all_splits": _length_stats(tokenizer, train + valid + test),
            "test": _length_stats(tokenizer, test),
        },
        **platform_fields(),
    }
    write_training_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
