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
    """

    privileged = True

    def act(self, observations: Any) -> np.ndarray:
        env = self.env.unwrapped
        rows, task = env._rows, env.task
        n = len(observations["input_ids"])
        if n != 1:
            raise ValueError(
                "ReferenceOracle labels the bound env's current state: pass its single "
                f"observation, not a batch of {n}"
            )
        index = int(rows.sample_index[0])
        if index >= 0:
            reference = task.reference_ids(index)
        else:  # a prompt given to make_state: its own references
            texts = rows.references[0]
            reference = task.continuation_ids(texts[0] if texts else "")
        step = int(rows.generated[0])
        token = reference[step] if step < len(reference) else task.eos_token_id
        return np.array([token], dtype=np.int64)
