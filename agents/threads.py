"""How many CPU threads torch gives the agents' networks.

torch starts with one thread per core. The learners lfi-gym builds (SB3's 64-64 MLP, the
MinAtar CNN, the Plackett-Luce scorer, the shipped TinyReviews LM) are small: splitting one
of their matrix products across threads costs more in hand-over than it saves, and when
the cores are busy with other processes a thread that is not scheduled stalls every call.
``benchmarks/threads.py`` measures it; on a shared 2-core machine, one thread against
torch's two: BC training of the CartPole MLP and the ranker 9-30x faster whether the other
core was busy or not; the TinyReviews LM's single-observation ``predict`` 8-38x faster and
its BC training 4-14x faster while the machine was busy, within 20% either way when idle.
"""

from __future__ import annotations

import torch

from lfi_gym.envs.validation import check_positive_int


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's CPU threads for this process to ``n`` (default: 1, the fastest for the
    agents' small networks); returns the previous count, to restore it with
    ``set_torch_threads(previous)``. Give more threads to a large model (a full-size LM) on
    a machine whose cores are otherwise idle. Only this process: a worker process calls it
    itself."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1 if n is None else check_positive_int(n, "n"))
    return previous
