"""Text-generation metrics that are not rewards: diversity (distinct-n) and perplexity.

On IMDB the suite reports, besides the mean reward, *fluency perplexity* (the policy LM's
perplexity on the reference reviews), *output perplexity* (a fixed LM's perplexity on the
generated texts) and distinct-n diversity of the generations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lfi_gym.envs.validation import check_int_at_least

__all__ = ["distinct_n", "output_perplexity", "perplexity"]


def distinct_n(
    texts: Sequence[str], n: int, tokenize: Callable[[str], list[str]] = str.split
) -> float:
    """Unique n-grams / all n-grams over ``texts`` (0.0 when there are none).

    N-grams do not cross text boundaries; uniqueness is counted over the whole set, so a
    policy that writes the same sentence for every prompt scores low even if each
    sentence is varied within itself.
    """
    n = check_int_at_least(n, 1, "n")
    if isinstance(texts, str):
        raise TypeError("texts must be a list of str, not one str; wrap it: distinct_n([text], n)")
    unique: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must hold str, got {type(text).__name__}")
        tokens = tokenize(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        unique.update(grams)
        total += len(grams)
    return len(unique) / total if total else 0.0


def _context_length(model: Any, tokenizer: Any) -> int:
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 1:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 1 < value < 1_000_000:
        return value
    raise ValueError(
        "cannot tell the model's context length from its config or tokenizer; pass max_length"
    )


def _windows(ids: list[int], max_length: int, stride: int) -> list[tuple[list[int], int]]:
    """Sliding windows of at most ``max_length`` tokens starting every ``stride`` tokens.

    Each window comes with how many of its last tokens are scored: the tokens not scored
    by an earlier window, so every token after the first is predicted exactly once, with
    up to ``max_length - stride`` tokens of context carried over.
    """
    windows = []
    previous_end = 0
    for begin in range(0, len(ids), stride):
        end = min(begin + max_length, len(ids))
        scored = min(end - previous_end, end - begin - 1)  # the window's first token: no target
        if scored > 0:
            windows.append((ids[begin:end], scored))
        previous_end = end
        if end == len(ids):
            break
    return windows


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    stride: int = 512,
    max_length: int | None = None,
    batch_size: int = 8,
    device: Any = None,
    prompts: Sequence[str] | None = None,
) -> float:
    """Token-weighted perplexity of a causal LM on ``texts``: exp(total NLL / tokens).

    With ``prompts``, ``texts[i]`` is scored as the continuation of ``prompts[i]``: the
    prompt's tokens (special tokens added as the tokenizer does) are context, and every
    token of the text (encoded without special tokens, so start it with the space that
    separates it from the prompt) is scored, its first one included. Prompt and text
    must fit the context together. This is how a conditional task's references should be
    scored: a policy that learned to follow the prompt is not charged for the prompt.

    A text longer than the context (``max_length``, default the model's) is scored with
    Hugging Face's sliding-window method for fixed-length models: windows of
    ``max_length`` tokens every ``stride`` tokens, each scoring only the tokens that the
    previous window did not, so each token sees up to ``max_length - stride`` tokens of
    earlier context (a ``stride`` above ``max_length`` means abutting windows). Windows
    of all texts are batched ``batch_size`` at a time, right padded, with pads masked out
    of attention and of the loss. The first token of each
    text has no prediction and is not counted; no BOS is added.

    Call it with the policy LM on reference texts for *fluency perplexity*, or with a
    fixed LM on generated texts for *output perplexity* (:func:`output_perplexity`).
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of str, not one str; wrap it: perplexity(m, t, [s])")
    if max_length is None:
        max_length = _context_length(model, tokenizer)
    max_length = check_int_at_least(max_length, 2, "max_length")
    stride = check_int_at_least(stride, 1, "stride")
    stride = min(stride, max_length)  # a longer stride would skip tokens: windows abut instead
    batch_size = check_int_at_least(batch_size, 1, "batch_size")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)

    if prompts is not None and (isinstance(prompts, str) or len(prompts) != len(texts)):
        raise ValueError(
            f"prompts must be a list of one str per text; got {prompts!r:.60} for "
            f"{len(texts)} texts"
        )
    windows: list[tuple[list[int], int]] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts must hold str, got {type(text).__name__}")
        if prompts is None:
            ids = list(tokenizer(text)["input_ids"])
            windows.extend(_windows(ids, max_length, stride))
            continue
        context = list(tokenizer(prompts[i])["input_ids"])
        continuation = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(context) + len(continuation) > max_length:
            raise ValueError(
                f"prompt {i} and its text are {len(context) + len(continuation)} tokens, "
                f"more than the context of {max_length}; shorten them or pass max_length"
            )
        if not context:  # nothing to condition the first token on: it is not scored
            windows.extend(_windows(continuation, max_length, stride))
        elif continuation:
            windows.append((context + continuation, len(continuation)))
    if not windows:
        raise ValueError("no text has two or more tokens, so there is nothing to predict")
    # Similar lengths together: less padding per batch. The sum does not depend on order.
    windows.sort(key=lambda window: len(window[0]))

    total_nll = 0.0
    total_tokens = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(windows), batch_size):
                batch = windows[start : start + batch_size]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.zeros((len(batch), width), dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                scored = torch.zeros((len(batch), width), dtype=torch.bool)
                for row, (ids, count) in enumerate(batch):
                    input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                    attention[row, : len(ids)] = 1
                    scored[row, len(ids) - count : len(ids)] = True
                input_ids, attention = input_ids.to(device), attention.to(device)
                logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
                # Position t predicts token t + 1: targets are shifted by one.
                log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
                targets = input_ids[:, 1:]
                nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                mask = scored[:, 1:].to(device)
                total_nll += float(nll[mask].double().sum())
                total_tokens += int(mask.sum())
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens)


#: Perplexity of a fixed LM (e.g. the initial policy) on *generated* texts: the same
#: computation as :func:`perplexity`, named for the metric it gives.
output_perplexity = perplexity
