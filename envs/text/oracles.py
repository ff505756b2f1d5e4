"""Computational oracles for the text envs."""

from __future__ import annotations

from typing import Any

import numpy as np

from lfi_gym.envs.policies import OraclePolicy


class ReferenceOracle(OraclePolicy):
    """Writes the episode's first reference, token by token, then EOS.

    At step ``t`` it emits the reference's ``t``-th token whatever was generated before,
    so after a deviation it "jumps back" onto the reference: the teacher-forcing expert
    of supervised fine-tuning (BC on references), and a simple DAgger expert. It reads
    the references of the bound env (privileged), so it labels that env's current state.

    Bound to a native text vector env (``gym.make_vec(id, num_envs=n)``), it labels one
    ``row`` of it: :meth:`TextGenVectorEnv.make_row_experts` gives one per row, which is
    how a guided agent uses it as a guide on that env.
    """

    privileged = True

    def __init__(self, env: Any, row: int = 0) -> None:
        super().__init__(env)
        rows = env.unwrapped._rows
        if not 0 <= row < len(rows.sample_index):
            raise ValueError(f"row must be in [0, {len(rows.sample_index)}), got {row}")
        self.row = row
        if hasattr(env, "single_observation_space"):  # a vector env: it labels one row
            self.observation_space = env.single_observation_space
            self.action_space = env.single_action_space

    def act(self, observations: Any) -> np.ndarray:
        env = self.env.unwrapped
        rows, task, row = env._rows, env.task, self.row
        n = len(observations["input_ids"])
        if n != 1:
            raise ValueError(
                "ReferenceOracle labels the bound env's current state: pass its single "
                f"observation, not a batch of {n}"
            )
        index = int(rows.sample_index[row])
        if index >= 0:
            reference = task.reference_ids(index)
        else:  # a prompt given to make_state: its own references
            texts = rows.references[row]
            reference = task.continuation_ids(texts[0] if texts else "")
        step = int(rows.generated[row])
        token = reference[step] if step < len(reference) else task.eos_token_id
        return np.array([token], dtype=np.int64)
