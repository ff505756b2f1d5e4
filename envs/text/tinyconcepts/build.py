"""Builds the shipped TinyConcepts assets: a byte-level BPE tokenizer and a tiny GPT-2.

    nice -n 5 python -m lfi_gym.envs.text.tinyconcepts.build --out envs/text/assets/tinyconcepts

Both are trained on the references of the train split alone, each followed by eos, never on
the concept prompts: zero-shot, the model writes fluent reviews that ignore the concepts,
and learning to use them (supervised fine-tuning on prompt -> reference, RL on a coverage
reward) is the agents' job. The tokenizer and the training loop are TinyReviews' (shared in
:mod:`lfi_gym.envs.text.lmbuild`), with the same defaults and model size; the corpus, the
tokenizer and training.json's digests are exactly reproducible, the weights on the same
torch build and thread count.
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
    add_training_arguments,
    check_training_arguments,
    encode_texts,
    perplexity,
    platform_fields,
    save_assets,
    token_counts,
    train_causal_lm,
    train_tokenizer,
    training_fields,
    write_training_record,
)
from lfi_gym.envs.text.tinyconcepts import (
    ASSET_DIR,
    MAX_NEW_TOKENS,
    PROMPT_LENGTH,
    SPLIT_SEEDS,
    SPLIT_SIZES,
    ConceptSet,
    concept_prompt,
    load_split,
)

__all__ = ["corpus_digest", "length_stats", "main", "references"]


def references(sets: Sequence[ConceptSet]) -> list[str]:
    """Every reference of ``sets``, set by set: the texts the model is trained on."""
    return [text for concept_set in sets for text in concept_set.references]


def corpus_digest(sets: Sequence[ConceptSet]) -> str:
    """SHA-256 of a list of concept sets: recorded in training.json so that a test notices when
    the grammar changes and the shipped model no longer matches the corpus it was trained on."""
    digest = hashlib.sha256()
    for concept_set in sets:
        digest.update(("\t".join(concept_set.concepts) + "\n").encode())
        for text in concept_set.references:
            digest.update(f"\t{text}\n".encode())
    return digest.hexdigest()


def length_stats(tokenizer: Any, sets: Sequence[ConceptSet]) -> dict[str, float]:
    """Word and token counts of the references and prompts (the env's limits depend on them)."""
    texts = references(sets)
    words = [len(t.split()) for t in texts]
    full = token_counts(tokenizer, texts)
    # the env encodes a reference as a continuation of the prompt: with a leading space
    continuation = token_counts(tokenizer, [" " + t for t in texts])
    prompts = token_counts(tokenizer, [concept_prompt(s.concepts) for s in sets])
    return {
        "concept_sets": len(sets),
        "references": len(texts),
        "words_min": min(words),
        "words_max": max(words),
        "words_mean": round(float(np.mean(words)), 2),
        "reference_tokens_max": max(full),
        "reference_tokens_mean": round(float(np.mean(full)), 2),
        "continuation_tokens_max": max(continuation),
        "continuation_tokens_mean": round(float(np.mean(continuation)), 2),
        "prompt_tokens_min": min(prompts),
        "prompt_tokens_max": max(prompts),
        "prompt_tokens_mean": round(float(np.mean(prompts)), 2),
    }


def _check_env_limits(stats: dict[str, float]) -> None:
    """The env's default limits must fit every prompt and every reference plus eos."""
    if stats["prompt_tokens_max"] > PROMPT_LENGTH:
        raise ValueError(
            f"a prompt has {stats['prompt_tokens_max']} tokens > PROMPT_LENGTH {PROMPT_LENGTH}; "
            "raise PROMPT_LENGTH in lfi_gym/envs/text/tinyconcepts/__init__.py"
        )
    if stats["continuation_tokens_max"] + 1 > MAX_NEW_TOKENS:
        raise ValueError(
            f"a reference has {stats['continuation_tokens_max']} tokens (+1 for eos) > "
            f"MAX_NEW_TOKENS {MAX_NEW_TOKENS}; raise MAX_NEW_TOKENS in "
            "lfi_gym/envs/text/tinyconcepts/__init__.py"
        )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lfi_gym.envs.text.tinyconcepts.build",
        description="Train the TinyConcepts tokenizer and tiny GPT-2 (defaults = shipped).",
    )
    parser.add_argument("--out", type=pathlib.Path, default=ASSET_DIR)
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    check_training_arguments(parser, args)
    if args.n_positions < PROMPT_LENGTH + MAX_NEW_TOKENS:
        parser.error(
            f"--n-positions must be at least PROMPT_LENGTH + MAX_NEW_TOKENS = "
            f"{PROMPT_LENGTH + MAX_NEW_TOKENS} (an episode's prompt and completion)"
        )
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Builds tokenizer + model into ``--out`` and returns what it wrote to training.json."""
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    train, valid, test = load_split("train"), load_split("validation"), load_split("test")
    tokenizer = train_tokenizer(references(train), args.vocab_size)
    train_ids = encode_texts(tokenizer, references(train))
    valid_ids = encode_texts(tokenizer, references(valid))
    all_splits = length_stats(tokenizer, train + valid + test)
    _check_env_limits(all_splits)

    model, timing = train_causal_lm(tokenizer, train_ids, args)
    valid_ppl = perplexity(model, valid_ids)
    print(f"validation perplexity {valid_ppl:.3f}", flush=True)
    save_assets(args.out, tokenizer, model)

    record = {
        "command": "nice -n 5 python -m lfi_gym.envs.text.tinyconcepts.build "
        + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "seed": args.seed,
        "split_seeds": SPLIT_SEEDS,
        "split_sizes": SPLIT_SIZES,
        "split_sha256": {
            name: corpus_digest(split)
            for name, split in (("train", train), ("validation", valid), ("test", test))
        },
        "trained_on": "the train split's references, each followed by eos (no prompts)",
        **training_fields(args, tokenizer, model, train_ids, timing),
        "total_wall_seconds": round(time.perf_counter() - started, 1),
        "validation_perplexity": round(valid_ppl, 4),
        "validation_references": len(valid_ids),
        "perplexity_definition": "exp(mean NLL per predicted token), reference tokens + eos",
        "token_lengths": {
            "definition": "reference = as trained (no leading space); continuation = ' ' + "
            "reference, as the env encodes it after the prompt; prompt = 'write a review "
            "with: ' + concepts; no special tokens",
            "all_splits": all_splits,
            "test": length_stats(tokenizer, test),
        },
        "env_limits": {
            "prompt_length": PROMPT_LENGTH,
            "max_new_tokens": MAX_NEW_TOKENS,
            "rule": "prompt_length >= longest prompt; max_new_tokens >= longest continuation "
            "+ 1 (eos)",
        },
        **platform_fields(),
    }
    write_training_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
