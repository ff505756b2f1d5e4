"""Tokens/s of LMPolicy driving the text vector env, against ``model.generate``.

Both paths use the same model, prompts (the env's left-padded batch), batch size,
generation length (min = max new tokens, so EOS never stops either), and sampling rule
(top-k 50). The env path also pays for the env's bookkeeping and for scoring every
finished text with the reward; ``generate`` does neither. Runs are interleaved and
the best of ``--repeats`` is kept for each path.

It then times a restart: 64 rows restored from 40-token prefixes and one predict (one
prefill over prompt + prefix), against generating those 40 tokens step by step.

    python benchmarks/text_rollout.py                 # tiny LM and a GPT-2-size model
    python benchmarks/text_rollout.py --skip-gpt2     # only the shipped tiny LM
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch

from lfi_gym import envs  # noqa: F401  (registers the env ids)
from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.envs.text.tinyreviews import ASSET_DIR

ENV_ID = "TextGen-TinyReviews-v0"


def env_tokens_per_second(policy: LMPolicy, vec, seed: int) -> float:
    obs, _ = vec.reset(seed=seed)
    state = None
    start = time.perf_counter()
    for _ in range(vec.task.max_new_tokens):
        actions, state = policy.predict(obs, state)
        obs, _, terminated, _, _ = vec.step(actions)
    elapsed = time.perf_counter() - start
    assert terminated.all()
    return vec.num_envs * vec.task.max_new_tokens / elapsed


def generate_tokens_per_second(policy: LMPolicy, vec, seed: int) -> float:
    obs, _ = vec.reset(seed=seed)
    p, n = vec.prompt_length, vec.task.max_new_tokens
    ids = torch.as_tensor(obs["input_ids"][:, :p])
    mask = torch.as_tensor(obs["attention_mask"][:, :p])
    start = time.perf_counter()
    with torch.inference_mode():
        out = policy.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=True,
            top_k=50,
            pad_token_id=vec.task.pad_token_id,
        )
    elapsed = time.perf_counter() - start
    assert out.shape[1] == p + n
    return vec.num_envs * n / elapsed


def compare(label: str, policy: LMPolicy, vec, repeats: int) -> float:
    ours, theirs = [], []
    for seed in range(repeats):
        theirs.append(generate_tokens_per_second(policy, vec, seed))
        ours.append(env_tokens_per_second(policy, vec, seed))
    best_ours, best_theirs = max(ours), max(theirs)
    ratio = best_ours / best_theirs
    print(
        f"{label:<34} batch {vec.num_envs:>3}  new tokens {vec.task.max_new_tokens:>3}  "
        f"env+LMPolicy {best_ours:>9.0f} tok/s  generate {best_theirs:>9.0f} tok/s  "
        f"ratio {ratio:.2f}x"
    )
    return ratio


def restart_cost(model, rows: int, prefix: int) -> None:
    """Restore ``rows`` rows at ``prefix`` generated tokens and predict once, versus
    generating those tokens one decode step at a time from the prompts."""
    vec = gym.make_vec(ENV_ID, num_envs=rows, max_new_tokens=prefix + 8, min_new_tokens=prefix + 8)
    policy = LMPolicy(
        model,
        vec.single_observation_space,
        vec.single_action_space,
        prompt_length=vec.prompt_length,
    )
    obs, _ = vec.reset(seed=0)
    state = None
    start = time.perf_counter()
    for _ in range(prefix):  # the decode path: one token per step
        actions, state = policy.predict(obs, state)
        obs, *_ = vec.step(actions)
    decode = time.perf_counter() - start
    snapshot = vec.get_state()  # every row now has a 40-token prefix
    calls = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        obs, _ = vec.reset_to(list(snapshot.states))
        policy.predict(obs, None)  # one prefill over prompt + prefix
        timings.append(time.perf_counter() - start)
    hook.remove()
    restart = min(timings)
    start = time.perf_counter()
    fresh, _ = vec.reset(seed=1)
    policy.predict(fresh, None)
    prompt_prefill = time.perf_counter() - start
    print(
        f"restart {rows} rows from {prefix}-token prefixes: {len(calls) // 3} forward pass "
        f"(decoding them took {prefix}); reset_to + predict "
        f"{restart * 1e3:.1f} ms; prompt-only prefill {prompt_prefill * 1e3:.1f} ms; "
        f"{prefix} decode steps {decode * 1e3:.1f} ms "
        f"(restart = {restart / decode:.2f}x of decoding, "
        f"{restart / prompt_prefill:.2f}x of a prompt prefill)"
    )


def gpt2_size_policy(vec) -> LMPolicy:
    """GPT-2 small's shape (12 layers, 768 wide, 50,257-token vocabulary), random weights.
    Both paths compute all 50,257 logits; the policy samples among the env's tokens (the
    shipped tokenizer's), ``generate`` among all of them: the same cost."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = vec.tokenizer
    config = GPT2Config(
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config).eval()
    return LMPolicy(
        model,
        vec.single_observation_space,
        vec.single_action_space,
        prompt_length=vec.prompt_length,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--gpt2-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-gpt2", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, device cpu")

    tiny_kwargs = {"max_new_tokens": 24, "min_new_tokens": 24}
    vec = gym.make_vec(ENV_ID, num_envs=args.batch, **tiny_kwargs)
    tiny = LMPolicy.from_pretrained(ASSET_DIR, env=vec, device="cpu")
    compare("tiny LM (shipped, 1.0M params)", tiny, vec, args.repeats)
    restart_cost(tiny.model, rows=64, prefix=40)

    if not args.skip_gpt2:
        # GRUE IMDB's shape: 64-token prompts, 48 new tokens.
        big_kwargs = {"prompt_length": 64, "max_new_tokens": 48, "min_new_tokens": 48}
        big_vec = gym.make_vec(ENV_ID, num_envs=args.gpt2_batch, **big_kwargs)
        big = gpt2_size_policy(big_vec)
        compare("GPT-2-size (124M params, random)", big, big_vec, max(1, args.repeats - 1))


if __name__ == "__main__":
    main()
