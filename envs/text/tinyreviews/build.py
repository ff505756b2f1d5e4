"""Builds the shipped TinyReviews assets: a byte-level BPE tokenizer and a tiny GPT-2.

    nice -n 5 python -m lfi_gym.envs.text.tinyreviews.build --out envs/text/assets/tinyreviews

The defaults are the settings of the shipped assets, so re-running the command rebuilds
them from the same data (the corpus and the tokenizer are exactly reproducible; the
weights are reproducible on the same torch build and thread count). The tokenizer follows
GPT-2's conventions, so that code written for ``gpt2`` works unchanged: one special token
"<|endoftext|>" serving as bos, eos, unk and pad, no special tokens added on encoding,
left padding for generation. The model sees each review followed by eos, so it learns to
end a review; it is small enough to train on two CPU cores in a few minutes and to ship in
the wheel (a few MB of safetensors).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pathlib
import shlex
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lfi_gym.envs.text.task import split_words
from lfi_gym.envs.text.tinyreviews import ASSET_DIR, SPLIT_SEEDS, SPLIT_SIZES, Review, load_split

EOS_TOKEN = "<|endoftext|>"


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


def _make_tokenizer_config_portable(out: pathlib.Path) -> None:
    """Names the tokenizer class "PreTrainedTokenizerFast", which transformers 4.x and 5.x
    both resolve (5.x alone knows its new name "TokenizersBackend")."""
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """Trains a GPT-2-style byte-level BPE on ``texts`` and wraps it for transformers.

    Byte-level BPE never produces an unknown token, so any text round-trips exactly; the
    full byte alphabet is seeded so that even characters absent from the corpus encode.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        padding_side="left",
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )


def encode_reviews(tokenizer: Any, reviews: Sequence[Review]) -> list[list[int]]:
    """Token ids of each review followed by eos (what the model is trained and scored on)."""
    eos = tokenizer.eos_token_id
    ids = tokenizer([r.text for r in reviews], add_special_tokens=False)["input_ids"]
    return [[*x, eos] for x in ids]


def _batch(seqs: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, attention mask and labels (-100 on padding) for training."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


@torch.no_grad()
def perplexity(model: Any, seqs: Sequence[list[int]], batch_size: int = 64) -> float:
    """Token-weighted perplexity: exp of the mean NLL over every predicted token (all but
    the first of each sequence, eos included), so long and short reviews count per token."""
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(seqs), batch_size):
        ids, mask, labels = _batch(seqs[start : start + batch_size], pad_id=0)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        total_nll += float(nll)
        total_tokens += int((target != -100).sum())
    return math.exp(total_nll / total_tokens)


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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-positions", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for name in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.n_embd % args.n_head:
        parser.error("--n-embd must be a multiple of --n-head")
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Builds tokenizer + model into ``--out`` and returns what it wrote to training.json."""
    from transformers import GPT2Config, GPT2LMHeadModel

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    train, valid, test = load_split("train"), load_split("validation"), load_split("test")
    tokenizer = train_tokenizer([r.text for r in train], args.vocab_size)
    eos = tokenizer.eos_token_id
    train_ids, valid_ids = encode_reviews(tokenizer, train), encode_reviews(tokenizer, valid)
    too_long = max(len(s) for s in train_ids + valid_ids)
    if too_long > args.n_positions:
        raise ValueError(f"a review has {too_long} tokens > --n-positions {args.n_positions}")

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=args.n_positions,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        resid_pdrop=0.0,  # the grammar is an endless source of fresh text: no overfitting
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.98),
    )

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(optim, schedule)
    order_rng = np.random.default_rng(args.seed)
    order: list[int] = []
    train_started, train_cpu_started = time.perf_counter(), time.process_time()
    model.train()
    for step in range(args.steps):
        if len(order) < args.batch_size:  # a fresh epoch, reshuffled
            order.extend(order_rng.permutation(len(train_ids)).tolist())
        chosen, order = order[: args.batch_size], order[args.batch_size :]
        ids, mask, labels = _batch([train_ids[i] for i in chosen], pad_id=eos)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        lr_sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - train_started
            print(f"step {step:5d}  loss {loss.item():.3f}  {elapsed:6.1f}s", flush=True)
    train_seconds = time.perf_counter() - train_started
    train_cpu_seconds = time.process_time() - train_cpu_started
    valid_ppl = perplexity(model, valid_ids)
    print(f"validation perplexity {valid_ppl:.3f}", flush=True)

    model.generation_config.pad_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = eos
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.out)
    _make_tokenizer_config_portable(args.out)
    model.save_pretrained(args.out, safe_serialization=True)

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
        # BPE stops early once every word of the small corpus is a single token
        "vocab_size_requested": args.vocab_size,
        "vocab_size": len(tokenizer),
        "eos_token_id": eos,
        "model": {
            "n_embd": args.n_embd,
            "n_layer": args.n_layer,
            "n_head": args.n_head,
            "n_positions": args.n_positions,
        },
        "param_count": sum(p.numel() for p in model.parameters()),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup": args.warmup,
        "schedule": "linear warm-up then cosine to 10%",
        "train_tokens_seen": round(
            np.mean([len(s) for s in train_ids]) * args.steps * args.batch_size
        ),
        "threads": args.threads,
        "train_wall_seconds": round(train_seconds, 1),
        # wall time depends on who else uses the machine; CPU time and load tell them apart
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
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
        "torch": torch.__version__,
        "platform": f"{os.cpu_count()} cpu",
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    for path in args.out.iterdir():  # safetensors writes 0600; the assets are for everyone
        if path.is_file():
            path.chmod(0o644)
    return record


if __name__ == "__main__":
    main()
