"""Job functions for tests/test_executors.py: top level in an importable module, as
lfi_gym.executors.run_jobs needs (spawned and Ray workers import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch


def train_tiny_mlp(payload: dict) -> dict:
    """A few SGD steps of a 3-16-1 tanh MLP on random regression data, all drawn from a
    generator seeded by the payload; returns the parameters' sums, bit for bit (hex)."""
    generator = torch.Generator().manual_seed(payload["seed"])
    inputs = torch.randn(64, 3, generator=generator)
    targets = torch.randn(64, 1, generator=generator)
    layers = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    with torch.no_grad():
        for parameter in layers.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    optimizer = torch.optim.SGD(layers.parameters(), lr=0.05)
    for _ in range(payload["steps"]):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(layers(inputs), targets)
        loss.backward()
        optimizer.step()
    sums = [float(parameter.detach().double().sum()) for parameter in layers.parameters()]
    return {
        "seed": payload["seed"],
        "loss": float(loss.detach()),
        "sums_hex": [value.hex() for value in sums],
        "torch_threads": torch.get_num_threads(),
        "pid": os.getpid(),
        "module_file": __file__,
    }


def fail_on_seed(payload: dict) -> dict:
    """Raises for payload["fail"] == True, otherwise echoes the seed."""
    if payload.get("fail"):
        raise ValueError(f"seed {payload['seed']} is cursed")
    return {"seed": payload["seed"]}


def mark_and_sleep(payload: dict) -> dict:
    """Writes a marker file named after the job (holding this process's id), then sleeps
    payload["sleep"] seconds."""
    Path(payload["folder"], f"started-{payload['index']}").write_text(str(os.getpid()))
    time.sleep(payload["sleep"])
    return {"index": payload["index"]}
