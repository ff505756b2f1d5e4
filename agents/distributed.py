"""How the PPO family (``agents/ppo.py``) trains on several processes with ``accelerate``.

``torchrun --nproc_per_node N`` or ``accelerate launch --multi_gpu --num_processes N`` (which
runs on CPUs too; ``accelerate launch --cpu`` starts one process) starts N copies of the
training script; each builds the agent, whose ``accelerate.Accelerator`` joins the
process group and wraps the learner in DistributedDataParallel (DDP), which averages the
gradients of every backward pass over the processes. DDP needs every process to run the
same sequence of forward and backward passes, so everything that decides how many there
are is agreed between the processes:

* Sharded rollouts: process ``r`` draws its episode seeds (hence its prompts) and its
  guided plans from ``SeedSequence([seed, r])``, and token sampling from torch's generator
  seeded with :func:`process_seed` (process 0 keeps ``seed``, so one process is exactly the
  single-process run). The processes' episodes differ; their models stay equal. LOLS's
  per-iteration choice (PPO++ or AggreVaTeD) is the main process's draw.
* Counting over all processes: after each wave the processes sum their env steps, so
  ``num_timesteps`` (what ``learn(total_timesteps)`` counts and the logs show), ``n_steps``
  (tokens per update) and the decision to run another wave or another iteration are the
  same in every process. A callback that stops training in one process stops it in all.
* Equal optimizer steps: each process splits its own tokens into minibatches (whole
  sequences of about ``batch_size`` tokens, so the count depends on its episode lengths);
  the processes take the largest count of each epoch, and a process with fewer minibatches
  adds zero-weight ones (:func:`padded_plan`: a real minibatch whose loss is multiplied by
  0, so that DDP gets its backward pass and the same parameters are used). Such a step
  averages one process's gradient with zeros: it is half as large, which Adam's
  normalisation mostly absorbs. If a process has no learner token at all (every episode
  ended in the guide's roll-in), every process skips that update. DDP is built with
  ``find_unused_parameters=True``, so a parameter that a pass does not use does not stall
  the gradient reduction.
* Metrics: token counts are summed and means (rewards, losses, KL, ...) are averaged over
  the processes, each weighted by its count (:func:`merge_stats`); the adaptive KL
  coefficient follows the mean KL over all tokens, so it stays equal everywhere.
  Advantages are normalised within each process.
* One writer: only the main process logs (TensorBoard / SB3 logger, progress bar) and
  writes agent files; ``save`` in another process writes nothing and returns the path (call
  ``agent.accelerator.wait_for_everyone()`` before reading the file from another process).
  Loading a checkpoint in N processes gives process ``r > 0`` fresh streams derived from the
  saved ones and ``r``, so the resumed shards differ again (a multi-process resume does not
  repeat the uninterrupted run exactly; a single-process one does).

Only language-model learners (LMPolicy, scored through DDP's ``forward``) train on several
processes; other learners are refused there. Tested: CPU processes over gloo (2 processes,
``tests/test_distributed.py``). NCCL (GPUs), FSDP and DeepSpeed are untested until a GPU run
records them in benchmarks/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

#: Statistics summed over processes; every other one is a weighted mean.
SUMMED_STATS = frozenset({"tokens_trained"})


class Processes:
    """The processes of one run, as an ``accelerate.Accelerator`` sees them.

    With one process nothing is communicated: every method returns its input's values, so
    a single-process run computes exactly what it computed before multi-process support.
    """

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator

    @property
    def count(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def index(self) -> int:
        return int(self.accelerator.process_index)

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def gather(self, values: Sequence[float]) -> np.ndarray:
        """Every process's ``values`` (same length everywhere), one row per process."""
        row = np.asarray(values, dtype=np.float64).reshape(1, -1)
        if self.count == 1:
            return row
        tensor = torch.as_tensor(row, device=self.accelerator.device)
        return self.accelerator.gather(tensor).cpu().numpy().reshape(self.count, -1)

    def sum(self, values: Sequence[float]) -> np.ndarray:
        return self.gather(values).sum(axis=0)

    def max(self, values: Sequence[int]) -> list[int]:
        if self.count == 1:
            return [int(v) for v in values]
        return [int(v) for v in self.gather(values).max(axis=0)]

    def any(self, flag: bool) -> bool:
        """True in every process if ``flag`` is True in one."""
        return bool(flag) if self.count == 1 else bool(self.gather([float(flag)]).max() > 0)

    def main_value(self, value: float) -> float:
        """The main process's ``value``, in every process."""
        return value if self.count == 1 else float(self.gather([value])[0, 0])

    def merge_stats(self, stats: Mapping[str, tuple[float, float]]) -> dict[str, float]:
        """:func:`merge_stats` of every process's ``stats`` (same names everywhere)."""
        names = sorted(stats)
        flat = [x for name in names for x in stats[name]]
        rows = self.gather(flat)
        per_process = [
            {name: (row[2 * i], row[2 * i + 1]) for i, name in enumerate(names)} for row in rows
        ]
        return merge_stats(per_process)


def merge_stats(
    per_process: Sequence[Mapping[str, tuple[float, float]]],
) -> dict[str, float]:
    """One value per statistic from each process's ``name -> (value, weight)``.

    :data:`SUMMED_STATS` are summed; the others are the mean of the processes' values
    weighted by their weights (e.g. the number of minibatches or tokens they are means
    over), leaving out non-finite values and zero weights (NaN if nothing is left).
    """
    merged: dict[str, float] = {}
    for name in per_process[0]:
        values = np.array([float(p[name][0]) for p in per_process])
        weights = np.array([float(p[name][1]) for p in per_process])
        if name in SUMMED_STATS:
            merged[name] = float(values.sum())
            continue
        keep = np.isfinite(values) & (weights > 0)
        total = weights[keep].sum()
        merged[name] = float((values[keep] * weights[keep]).sum() / total) if total else np.nan
    return merged


def padded_plan(
    plan: Sequence[Sequence[np.ndarray]], lengths: Sequence[int]
) -> list[list[tuple[np.ndarray, float]]]:
    """Each epoch's minibatches with weight 1, then zero-weight repeats of its first
    minibatch up to ``lengths[epoch]`` minibatches (the most any process has)."""
    if len(plan) != len(lengths):
        raise ValueError(f"{len(plan)} epochs but {len(lengths)} lengths")
    padded = []
    for epoch, length in zip(plan, lengths, strict=True):
        if not epoch or length < len(epoch):
            raise ValueError(f"an epoch of {len(epoch)} minibatches cannot be padded to {length}")
        padded.append([(index, 1.0) for index in epoch] + [(epoch[0], 0.0)] * (length - len(epoch)))
    return padded


def process_seed(seed: int | None, index: int) -> int | None:
    """Process ``index``'s seed for torch's generator (token sampling): ``seed`` for
    process 0, so that one process is the single-process run; a value drawn from
    ``SeedSequence([seed, index])`` for the others (fresh entropy when ``seed`` is None)."""
    if index == 0:
        return seed
    entropy = None if seed is None else [int(seed), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)
