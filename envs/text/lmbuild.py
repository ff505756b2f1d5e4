"""Training the small offline language models the text envs ship (TinyReviews, TinyConcepts).

Each task's ``build.py`` generates its corpus and calls these steps: train a GPT-2-style
byte-level BPE tokenizer (:func:`train_tokenizer`), encode texts followed by eos
(:func:`encode_texts`), train a small GPT-2 on them (:func:`train_causal_lm`), score it
(:func:`perplexity`) and write the assets (:func:`save_assets`, :func:`write_training_record`).
The tokenizer follows GPT-2's conventions, so that code written for ``gpt2`` works
unchanged: one special token "<|endoftext|>" serving as bos, eos, unk and pad, no special
tokens added on encoding, left padding for generation. The model sees each text followed
by eos, so it learns to end one; it is small enough to train on one CPU core in about ten
minutes and to ship in the wheel (a few MB of safetensors).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

EOS_TOKEN = "<|endoftext|>"


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


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text followed by eos (what the model is trained and scored on)."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [[*x, eos] for x in ids]


def token_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """The number of tokens of each text (no special tokens)."""
    return [len(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def batch(seqs: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
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
    the first of each sequence, eos included), so long and short texts count per token."""
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(seqs), batch_size):
        ids, mask, labels = batch(seqs[start : start + batch_size], pad_id=0)
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


# -- command line ---------------------------------------------------------------------------


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The tokenizer, model and optimisation options every build script takes (defaults =
    the shipped TinyReviews and TinyConcepts models)."""
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


def check_training_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits through ``parser.error`` on settings that cannot train."""
    for name in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.n_embd % args.n_head:
        parser.error("--n-embd must be a multiple of --n-head")
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")


# -- training -------------------------------------------------------------------------------


def train_causal_lm(
    tokenizer: Any, train_ids: Sequence[list[int]], args: argparse.Namespace
) -> tuple[Any, dict[str, float]]:
    """Builds a GPT-2 of ``args``' size and trains it on ``train_ids`` (each a text + eos).

    AdamW (betas 0.9 / 0.98, weight decay on matrices only), linear warm-up then cosine
    decay to 10% of ``args.lr``, gradient norm clipped at 1, batches drawn epoch by epoch
    from reshuffles seeded by ``args.seed``. The weights' initialisation comes from torch's
    global generator: the caller seeds it. Returns the model and the training time (wall
    and CPU seconds).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = tokenizer.eos_token_id
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
        ids, mask, labels = batch([train_ids[i] for i in chosen], pad_id=eos)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        lr_sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - train_started
            print(f"step {step:5d}  loss {loss.item():.3f}  {elapsed:6.1f}s", flush=True)
    timing = {
        "train_wall_seconds": time.perf_counter() - train_started,
        "train_cpu_seconds": time.process_time() - train_cpu_started,
    }
    return model, timing


def save_assets(out: pathlib.Path, tokenizer: Any, model: Any) -> None:
    """Writes the tokenizer and the model (safetensors) into ``out``, loadable with
    ``AutoTokenizer`` / ``AutoModelForCausalLM``; generation pads and stops with eos."""
    eos = tokenizer.eos_token_id
    model.generation_config.pad_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = eos
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    _make_tokenizer_config_portable(out)
    model.save_pretrained(out, safe_serialization=True)


def _make_tokenizer_config_portable(out: pathlib.Path) -> None:
    """Names the tokenizer class "PreTrainedTokenizerFast", which transformers 4.x and 5.x
    both resolve (5.x alone knows its new name "TokenizersBackend")."""
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def training_fields(
    args: argparse.Namespace,
    tokenizer: Any,
    model: Any,
    train_ids: Sequence[list[int]],
    timing: dict[str, float],
) -> dict[str, Any]:
    """The part of training.json every build records: tokenizer, model, optimisation, time."""
    return {
        # BPE stops early once every word of the small corpus is a single token
        "vocab_size_requested": args.vocab_size,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
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
        "train_wall_seconds": round(timing["train_wall_seconds"], 1),
        # wall time depends on who else uses the machine; CPU time and load tell them apart
        "train_cpu_seconds": round(timing["train_cpu_seconds"], 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


def platform_fields() -> dict[str, str]:
    """The torch version and CPU count the assets were built with (for training.json)."""
    return {"torch": torch.__version__, "platform": f"{os.cpu_count()} cpu"}


def write_training_record(out: pathlib.Path, record: dict[str, Any]) -> None:
    """Writes ``record`` as ``out``/training.json and makes every asset world-readable."""
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    for path in out.iterdir():  # safetensors writes 0600; the assets are for everyone
        if path.is_file():
            path.chmod(0o644)
