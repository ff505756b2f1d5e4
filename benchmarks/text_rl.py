"""PPO++ iteration throughput against TRL's GRPOTrainer, and the paper-scale IMDB timing.

Part 1 (side by side, one run): samples/s and tokens/s of ONE PPO++ iteration
(``lfi_gym.agents.PPOPlusPlus``, the same LM as guide, beta 0.2) against ONE step of TRL's
``GRPOTrainer``, on the shipped TinyReviews LM (1.0M parameters), the same number of
sequences per step, the same generation length (min = max new tokens, so EOS never ends
an episode early), prompts from the TinyReviews train split, the same reward callable
(VADER lexicon sentiment on prompt + completion) and the same sampling rule (top-k 50).
One optimisation pass on each side: PPO++ ``n_epochs=1`` with one minibatch holding the
whole batch, GRPO ``num_iterations=1`` with one gradient step per generation batch. Both
keep a frozen reference model for the KL term (``kl_coef`` = GRPO's ``beta``). Each side
is warmed up once, then timed ``--repeats`` times; the median is reported. A third row,
PPO (PPO++ with ``beta=0``: no guided episode), shows what the guide's roll-in costs.

What still differs (printed too): GRPO samples ``--generations`` completions per prompt and
has no value head. With one epoch of one minibatch both take the old log-probabilities
from the training forward pass itself; PPO++ also gets its values there, runs the reference
forward, GAE, a value loss, and rolls in with the guide (20% of episodes) then restarts the
env (``get_state`` / ``reset_to``) for the learner's roll-out. Our env pads prompts to 32
tokens (columns that are padding in every row are skipped when scoring); TRL pads to the
longest prompt of its batch (at most 26 tokens here).

Part 2: seconds per iteration of the RLGF paper's IMDB configuration (Chang et al. 2023: 1,280
tokens per update, minibatch 64 tokens, 5 epochs, 64-token prompts, exactly 48 new
tokens, lr 1e-6, KL 0.1, PPO++ beta 0.2) with a GPT-2-size policy (``GPT2Config()``
defaults: 124M parameters, 50,257 logits) and a DistilBERT-size reward classifier
(``DistilBertConfig()`` defaults, 67M), both with random weights (no hub here), on
``TextGen-IMDB-v0`` built from local fixtures: an IMDB-shaped DatasetDict of TinyReviews
reviews (``save_to_disk``), the shipped TinyReviews byte-level BPE tokenizer as the policy
tokenizer, and the classifier saved with ``save_pretrained``. The policy samples among the
tokenizer's 1,606 tokens but computes all 50,257 logits, as GPT-2 does. The guide is a
second copy of the same random GPT-2. The projection of the 128,000-token run is 100 x
the seconds of one iteration (scaled linearly when ``--paper-tokens`` / ``--paper-epochs``
time a fraction).

    python benchmarks/text_rl.py --threads 1                   # both parts (~7 min, 1 core)
    python benchmarks/text_rl.py --skip-paper                  # part 1 only
    python benchmarks/text_rl.py --skip-part1 --paper-epochs 1 # part 2, 1 of 5 epochs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lfi_gym import envs  # noqa: F401  (registers the env ids)
from lfi_gym.agents.guided import PPOPlusPlus
from lfi_gym.agents.lm_policy import LMPolicy
from lfi_gym.envs.text.rewards import LexiconSentimentReward
from lfi_gym.envs.text.tinyreviews import ASSET_DIR

ENV_ID = "TextGen-TinyReviews-v0"
IMDB_ID = "TextGen-IMDB-v0"
PAPER_TOKENS_PER_UPDATE = 1_280
PAPER_TOTAL_TOKENS = 128_000
PAPER_EPOCHS = 5
PAPER_NEW_TOKENS = 48
PAPER_PROMPT = 64


# -- part 1: one PPO++ iteration vs one TRL GRPO step ----------------------------------------


class CountingLexiconReward(LexiconSentimentReward):
    """The lexicon reward both sides call as is (our env and TRL both pass keywords, and TRL
    logs it as ``lexicon-sentiment``), counting the texts it scores so that the script can
    check that both sides scored the same number of sequences per step."""

    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def _score(
        self, prompts: list[str], completions: list[str], references: list[list[str]] | None
    ) -> np.ndarray:
        self.texts += len(completions)
        return super()._score(prompts, completions, references)


def time_ppo_plus_plus(
    batch: int, new_tokens: int, repeats: int, kl_coef: float, seed: int, beta: float = 0.2
) -> tuple[list[float], dict[str, float]]:
    """Seconds of each timed PPO++ iteration (after one warm-up) and the last one's stats.
    ``beta = 0`` is plain PPO (no guided episode), which isolates the roll-in's cost."""
    reward = CountingLexiconReward()
    env = gym.make(ENV_ID, reward=reward, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    guide = LMPolicy.from_pretrained(ASSET_DIR, env=env, device="cpu")
    n_steps = batch * new_tokens
    agent = PPOPlusPlus(
        env,
        "LMPolicy",
        guide=guide,
        beta=beta,
        n_envs=batch,
        n_steps=n_steps,
        batch_size=n_steps,  # one minibatch: the whole batch, one optimizer step
        n_epochs=1,
        learning_rate=1e-5,
        kl_coef=kl_coef,
        seed=seed,
        device="cpu",
    )
    seconds, rollouts = [], []
    for repeat in range(repeats + 1):
        before = reward.texts
        clock = _IterationClock()
        start = time.perf_counter()
        agent.learn(n_steps, callback=clock)
        elapsed = time.perf_counter() - start
        if reward.texts - before != batch:
            raise RuntimeError(f"PPO++ scored {reward.texts - before} texts, expected {batch}")
        if repeat:  # repeat 0 is the warm-up
            seconds.append(elapsed)
            rollouts.append(clock.rollout_end[0] - clock.rollout_start[0])
    if agent.iteration != repeats + 1:
        raise RuntimeError(f"expected one iteration per learn call, got {agent.iteration}")
    return seconds, {
        "updates_per_iteration": agent._n_updates / agent.iteration,
        "rollout_s": statistics.median(rollouts),
    }


class _StepClock:
    """A TRL TrainerCallback (built lazily: transformers is imported late) timing the
    interval between consecutive ``on_step_end`` calls: everything one step costs
    (generation, reward, reference forward, loss, backward, optimizer, logging)."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class StepClock(TrainerCallback):
            def __init__(self) -> None:
                self.stamps: list[float] = []

            def on_train_begin(self, args, state, control, **kwargs):
                self.stamps.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kwargs):
                self.stamps.append(time.perf_counter())

        return StepClock()


def time_trl_grpo(
    batch: int,
    new_tokens: int,
    repeats: int,
    generations: int,
    beta: float,
    seed: int,
    out_dir: str,
) -> list[float]:
    """Seconds of each timed GRPOTrainer step (after one warm-up step)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    if batch % generations:
        raise ValueError(
            f"--batch ({batch}) must be a multiple of --generations ({generations}): GRPO "
            "groups the batch into prompts x completions"
        )
    reward = CountingLexiconReward()
    task = gym.make(ENV_ID).unwrapped.task  # the same train prompts as our env
    prompts = [sample.prompt for sample in task.samples]
    dataset = Dataset.from_dict({"prompt": prompts})
    tokenizer = AutoTokenizer.from_pretrained(ASSET_DIR)
    model = AutoModelForCausalLM.from_pretrained(ASSET_DIR)
    config = GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_generations=generations,
        num_iterations=1,
        max_completion_length=new_tokens,
        generation_kwargs={"min_new_tokens": new_tokens},
        top_k=50,
        temperature=1.0,
        beta=beta,
        learning_rate=1e-5,
        max_steps=repeats + 1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=10_000,
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
        dataloader_num_workers=0,
    )
    clock = _StepClock()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[clock],
    )
    trainer.train()
    if reward.texts != batch * (repeats + 1):
        raise RuntimeError(f"GRPO scored {reward.texts} texts in {repeats + 1} steps of {batch}")
    steps = np.diff(clock.stamps).tolist()
    return steps[1:]  # step 0 is the warm-up


def part_one(args: argparse.Namespace) -> None:
    batch, new_tokens = args.batch, args.new_tokens
    print(
        f"\n== Part 1: one PPO++ iteration vs one TRL GRPOTrainer step ==\n"
        f"tiny LM {ASSET_DIR.name} (1.0M params), {batch} sequences per step, exactly "
        f"{new_tokens} new tokens, top-k 50, TinyReviews train prompts, lexicon-sentiment "
        f"reward, KL coef {args.kl_coef} on both sides, 1 warm-up + median of {args.repeats}"
    )
    torch.manual_seed(args.seed)
    ours, stats = time_ppo_plus_plus(batch, new_tokens, args.repeats, args.kl_coef, args.seed)
    rows = [("PPO++ (ours, beta 0.2), 1 iteration", ours)]
    if not args.skip_ppo:
        torch.manual_seed(args.seed)
        plain, _ = time_ppo_plus_plus(
            batch, new_tokens, args.repeats, args.kl_coef, args.seed, beta=0.0
        )
        rows.append(("PPO (ours, beta 0: no guide), 1 iter.", plain))
    if not args.skip_trl:
        torch.manual_seed(args.seed)
        with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = time_trl_grpo(
                batch, new_tokens, args.repeats, args.generations, args.kl_coef, args.seed, out
            )
        rows.append((f"TRL GRPOTrainer, 1 step (G={args.generations})", theirs))
    print(
        f"{'side':<38} {'median s':>9} {'min s':>7} {'max s':>7} {'samples/s':>10} {'tokens/s':>9}"
    )
    medians = []
    for label, seconds in rows:
        median = statistics.median(seconds)
        medians.append(median)
        print(
            f"{label:<38} {median:>9.3f} {min(seconds):>7.3f} {max(seconds):>7.3f} "
            f"{batch / median:>10.1f} {batch * new_tokens / median:>9.0f}"
        )
    if not args.skip_trl:
        print(f"ratio PPO++ / TRL GRPO (samples/s): {medians[-1] / medians[0]:.2f}x")
        if not args.skip_ppo:
            print(f"ratio PPO (beta 0) / TRL GRPO (samples/s): {medians[-1] / medians[1]:.2f}x")
    print(
        f"PPO++ split (median): rollout {stats['rollout_s']:.3f} s (guide roll-in, restart, "
        f"learner roll-out, reward), update {medians[0] - stats['rollout_s']:.3f} s"
    )
    print(
        f"optimizer steps per iteration: PPO++ {stats['updates_per_iteration']:.0f} "
        "(n_epochs=1, one minibatch = whole batch); GRPO 1 (num_iterations=1, "
        "gradient_accumulation_steps=1)"
    )
    print(
        "what differs: GRPO has no value head and samples "
        f"{args.generations} completions per prompt ({batch // args.generations} prompts), "
        "both take old log-probs from the training forward pass (one epoch, one minibatch); "
        "PPO++ also computes values there, runs the KL reference forward, GAE and a "
        "value loss, and rolls in with the guide on 20% of episodes (get_state / reset_to "
        "restart, then the learner's roll-out). Our prompts are left-padded to 32 tokens, "
        "TRL's to the batch's longest (<= 26)."
    )


# -- part 2: the paper's IMDB configuration at GPT-2 size -------------------------------------


class _IterationClock:
    """An SB3 callback stamping rollout start / end, to split an iteration in two."""

    def __new__(cls) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        class IterationClock(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.rollout_start: list[float] = []
                self.rollout_end: list[float] = []

            def _on_step(self) -> bool:
                return True

            def _on_rollout_start(self) -> None:
                self.rollout_start.append(time.perf_counter())

            def _on_rollout_end(self) -> None:
                self.rollout_end.append(time.perf_counter())

        return IterationClock()


def build_imdb_fixtures(root: Path) -> dict[str, Any]:
    """``gym.make(IMDB_ID, **kwargs)`` arguments that need no hub: an IMDB-shaped DatasetDict
    of TinyReviews reviews, the shipped tokenizer, and a random DistilBERT-size classifier."""
    from datasets import Dataset, DatasetDict
    from transformers import (
        AutoTokenizer,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    from lfi_gym.envs.text.tinyreviews import load_split

    def split(name: str) -> Dataset:
        reviews = load_split(name)
        return Dataset.from_dict(
            {"text": [r.text for r in reviews], "label": [int(r.label) for r in reviews]}
        )

    DatasetDict({"train": split("train"), "test": split("test")}).save_to_disk(root / "imdb")
    tokenizer = AutoTokenizer.from_pretrained(ASSET_DIR)
    torch.manual_seed(1)
    config = DistilBertConfig(
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    classifier = DistilBertForSequenceClassification(config)
    classifier.save_pretrained(root / "distilbert")
    tokenizer.save_pretrained(root / "distilbert")
    return {
        "dataset": str(root / "imdb"),
        "policy_tokenizer": str(ASSET_DIR),
        "reward_model": str(root / "distilbert"),
        "prompt_length": PAPER_PROMPT,
        "max_new_tokens": PAPER_NEW_TOKENS,
        "min_new_tokens": PAPER_NEW_TOKENS,
        "device": "cpu",
    }


def gpt2_policy(env: gym.Env, *, value_head: bool, seed: int) -> LMPolicy:
    """GPT-2 small's shape (GPT2Config() defaults), random weights, on the env's spaces."""
    from transformers import GPT2Config, GPT2LMHeadModel

    task = env.unwrapped.task
    torch.manual_seed(seed)
    eos = task.eos_token_id
    model = GPT2LMHeadModel(GPT2Config(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos))
    return LMPolicy(
        model.eval(),
        env.observation_space,
        env.action_space,
        prompt_length=task.prompt_length,
        min_new_tokens=task.min_new_tokens,
        eos_token_id=eos,
        value_head=value_head,
    )


def part_two(args: argparse.Namespace) -> None:
    n_envs = args.paper_envs
    tokens = args.paper_tokens
    epochs = args.paper_epochs
    episodes_per_wave = n_envs * PAPER_NEW_TOKENS
    print(
        f"\n== Part 2: paper IMDB configuration, GPT-2 size (random weights) ==\n"
        f"PPO++ beta 0.2, n_steps {tokens} tokens (paper {PAPER_TOKENS_PER_UPDATE}), minibatch 64 "
        f"tokens, {epochs} epoch(s) (paper {PAPER_EPOCHS}), lr 1e-6, KL 0.1; {PAPER_PROMPT}-token "
        f"prompts, exactly {PAPER_NEW_TOKENS} new tokens; {n_envs} rows per wave "
        f"({episodes_per_wave} tokens per wave)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        build_start = time.perf_counter()
        kwargs = build_imdb_fixtures(Path(tmp))
        env = gym.make(IMDB_ID, **kwargs)
        learner = gpt2_policy(env, value_head=True, seed=args.seed)
        guide = gpt2_policy(env, value_head=False, seed=args.seed)
        reward_model = env.unwrapped.task.reward_fn.model
        agent = PPOPlusPlus(
            env,
            learner,
            guide=guide,
            beta=0.2,
            n_envs=n_envs,
            n_steps=tokens,
            batch_size=64,
            n_epochs=epochs,
            learning_rate=1e-6,
            kl_coef=0.1,
            seed=args.seed,
            device="cpu",
        )
        _ = agent.vector_env  # build the vector env (and its reward model) before timing
        n_policy = sum(p.numel() for p in learner.model.parameters())
        n_reward = sum(p.numel() for p in reward_model.parameters())
        print(
            f"policy {n_policy / 1e6:.1f}M params (vocab {learner.model.config.vocab_size}), "
            f"reward classifier {n_reward / 1e6:.1f}M params; setup "
            f"{time.perf_counter() - build_start:.1f} s (not timed below)"
        )
        clock = _IterationClock()
        scoring = time_scoring(agent)
        start = time.perf_counter()
        agent.learn(tokens, callback=clock)
        total = time.perf_counter() - start
        collected = agent.num_timesteps
        updates = agent._n_updates
    rollout = clock.rollout_end[0] - clock.rollout_start[0]
    score = scoring[0]
    passes = total - rollout - score
    # Rollout and scoring grow with the tokens collected; the minibatch passes with the
    # tokens and the number of epochs.
    scale = _paper_tokens(n_envs) / collected
    full_iteration = (rollout + score) * scale + passes * scale * PAPER_EPOCHS / epochs
    iterations = PAPER_TOTAL_TOKENS / PAPER_TOKENS_PER_UPDATE
    print(f"{'timed (one iteration, no warm-up)':<52} {'seconds':>9}")
    rows = [
        (f"rollout: {collected} tokens, guide roll-in + learner", rollout),
        ("scoring: old log-probs + values, KL reference", score),
        (f"minibatch passes: {updates} optimizer steps, {epochs} epoch(s)", passes),
        ("one iteration as timed", total),
    ]
    for label, seconds in rows:
        print(f"{label:<52} {seconds:>9.1f}")
    how = "as timed"
    if scale != 1 or epochs != PAPER_EPOCHS:
        how = (
            f"(rollout + scoring) x {_paper_tokens(n_envs)}/{collected} tokens + passes x "
            f"{_paper_tokens(n_envs)}/{collected} x {PAPER_EPOCHS}/{epochs} epochs"
        )
    label = f"full paper iteration ({_paper_tokens(n_envs):,} tokens, 5 epochs)"
    print(f"{label:<52} {full_iteration:>9.1f}  {how}")
    print(
        f"{'projected 128,000-token run = 100 x iteration':<52} "
        f"{full_iteration * iterations:>9.0f}  = {full_iteration * iterations / 3600:.2f} h "
        f"on {args.threads} thread(s)"
    )


def time_scoring(agent: PPOPlusPlus) -> list[float]:
    """Accumulate the seconds of the agent's no-grad scoring passes (old log-probabilities
    and values, KL reference) into the returned one-element list, by wrapping ``_score``
    on this instance only (timing, not behaviour)."""
    spent = [0.0]
    score = agent._score

    def timed(model: Any, batch: Any, index: Any, *, grad: bool = False, **kwargs: Any) -> Any:
        if grad:
            return score(model, batch, index, grad=grad, **kwargs)
        start = time.perf_counter()
        try:
            return score(model, batch, index, grad=grad, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    agent._score = timed
    return spent


def _paper_tokens(n_envs: int) -> int:
    """Tokens one paper iteration collects: whole waves of ``n_envs`` 48-token episodes
    until at least 1,280 tokens (27 rows: one wave of 1,296)."""
    wave = n_envs * PAPER_NEW_TOKENS
    return -(-PAPER_TOKENS_PER_UPDATE // wave) * wave


def _quiet_progress_bars() -> None:
    """Keep the printed table readable: no loading / saving bars from the HF libraries."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="sequences per step (both sides)")
    parser.add_argument("--new-tokens", type=int, default=32, help="exact generation length")
    parser.add_argument("--generations", type=int, default=8, help="GRPO completions per prompt")
    parser.add_argument("--kl-coef", type=float, default=0.1, help="PPO++ kl_coef = GRPO beta")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-trl", action="store_true", help="part 1 without the TRL side")
    parser.add_argument("--skip-ppo", action="store_true", help="part 1 without the beta-0 row")
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--skip-paper", action="store_true", help="skip part 2")
    parser.add_argument(
        "--paper-envs", type=int, default=27, help="rows per wave (27 x 48 = 1,296 tokens)"
    )
    parser.add_argument(
        "--paper-tokens",
        type=int,
        default=PAPER_TOKENS_PER_UPDATE,
        help="n_steps of the timed iteration (less than 1,280 times a fraction)",
    )
    parser.add_argument(
        "--paper-epochs", type=int, default=PAPER_EPOCHS, help="epochs of the timed iteration"
    )
    args = parser.parse_args()
    for name in ("batch", "new_tokens", "generations", "repeats", "threads", "paper_envs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.paper_tokens < 1 or args.paper_epochs < 1:
        parser.error("--paper-tokens and --paper-epochs must be >= 1")
    torch.set_num_threads(args.threads)
    _quiet_progress_bars()
    print(f"torch {torch.__version__}, {args.threads} thread(s), device cpu")
    if not args.skip_part1:
        part_one(args)
    if not args.skip_paper:
        part_two(args)


if __name__ == "__main__":
    main()
