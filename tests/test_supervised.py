"""agents.supervised.SupervisedTrainer: the update against hand-computed values, batching,
state, and DRIL training through it (a resumed DRIL steps like an uninterrupted one)."""

from __future__ import annotations

import io
import math
import zipfile
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from lfi_gym import agents, envs
from lfi_gym.agents.serialization import AgentFileReader
from lfi_gym.agents.supervised import SupervisedTrainer

LN3 = math.log(3.0)


class Logits(torch.nn.Module):
    """pi(a) = softmax(theta)[a] whatever the observation: a two-action learner whose
    gradients have closed forms. Remembers the observations it scored (their indices)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, theta: list[float]) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
        self.seen: list[list[int]] = []
        self.training_mode = False

    def evaluate_actions(self, observations: torch.Tensor, actions: torch.Tensor):
        self.seen.append(observations.reshape(-1).long().tolist())
        log_probs = torch.log_softmax(self.theta, dim=0).expand(len(actions), 2)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return None, log_probs.gather(1, actions.reshape(-1, 1)).squeeze(1), entropy

    def set_training_mode(self, mode: bool) -> None:
        self.training_mode = mode

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.argmax(self.theta.detach().numpy()), state

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {"theta": self.theta.tolist()}


def demos_of(actions: list[int]) -> agents.Demonstrations:
    """One episode; observation i is i, so a batch's observations name its samples."""
    n = len(actions)
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    return agents.Demonstrations(
        np.arange(n, dtype=np.float32).reshape(n, 1),
        np.array(actions, dtype=np.int64),
        np.zeros(n),
        starts,
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=bool),
        observation_space=Logits.observation_space,
        action_space=Logits.action_space,
    )


def reference_gradient(theta: np.ndarray, actions: list[int], ent_coef: float) -> np.ndarray:
    """d/dtheta of -mean log p(a) - ent_coef H(p), p = softmax(theta): the mean of
    (p - onehot(a)) minus ent_coef * dH/dtheta with dH/dtheta_i = -p_i (log p_i + H)."""
    p = np.exp(theta - theta.max())
    p /= p.sum()
    entropy = -(p * np.log(p)).sum()
    nll = p - np.eye(2)[actions].mean(axis=0)
    return nll - ent_coef * (-p * (np.log(p) + entropy))


def reference_adam(theta, grads, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
    """Adam (Kingma and Ba 2015) with L2 added to the gradient, as torch.optim.Adam."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, grad_of in enumerate(grads, start=1):
        g = grad_of(theta) + weight_decay * theta
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def test_one_update_matches_the_hand_computed_loss_gradient_and_step():
    # p = (1/4, 3/4); batch actions (0, 1): -mean log p = ln 4 - ln 3 / 2,
    # H = ln 4 - 3/4 ln 3, and the gradient is (-1/4, 1/4) - c * 3/16 ln 3 * (1, -1).
    learner = Logits([0.0, LN3])
    trainer = SupervisedTrainer(learner, learning_rate=0.1, batch_size=2, ent_coef=0.5)
    batch = next(demos_of([0, 1]).iter_batches(2, shuffle=False))
    stats = trainer.update(batch)
    neglogp, entropy = math.log(4) - LN3 / 2, math.log(4) - 0.75 * LN3
    assert stats["neglogp"] == pytest.approx(neglogp, abs=1e-12)
    assert stats["entropy"] == pytest.approx(entropy, abs=1e-12)
    assert stats["loss"] == pytest.approx(neglogp - 0.5 * entropy, abs=1e-12)
    grad = np.array([-0.25 - 0.5 * 3 / 16 * LN3, 0.25 + 0.5 * 3 / 16 * LN3])
    np.testing.assert_allclose(learner.theta.grad.numpy(), grad, atol=1e-12)
    # Adam's first step moves each coordinate by lr * g / (|g| + eps).
    expected = np.array([0.0, LN3]) - 0.1 * grad / (np.abs(grad) + 1e-8)
    np.testing.assert_allclose(learner.theta.detach().numpy(), expected, atol=1e-12)
    assert trainer.n_updates == 1


def test_without_an_entropy_coefficient_the_loss_is_the_negative_log_likelihood():
    learner = Logits([0.0, LN3])
    trainer = SupervisedTrainer(learner, learning_rate=0.1, batch_size=2)
    stats = trainer.update(next(demos_of([0, 1]).iter_batches(2, shuffle=False)))
    assert stats["loss"] == stats["neglogp"] == pytest.approx(math.log(4) - LN3 / 2, abs=1e-12)
    np.testing.assert_allclose(learner.theta.grad.numpy(), [-0.25, 0.25], atol=1e-12)


@pytest.mark.parametrize(("ent_coef", "l2_coef"), [(0.0, 0.0), (0.3, 0.0), (0.0, 0.2), (0.3, 0.2)])
def test_updates_follow_adam_on_the_analytic_gradient(ent_coef, l2_coef):
    actions = [0, 1, 1, 1]  # one batch: every update sees the same data
    learner = Logits([0.5, -0.25])
    trainer = SupervisedTrainer(
        learner, learning_rate=0.05, batch_size=4, ent_coef=ent_coef, l2_coef=l2_coef, seed=0
    )
    trainer.train_samples(demos_of(actions), 5 * 4)
    assert trainer.n_updates == 5
    grads = [lambda th: reference_gradient(th, actions, ent_coef)] * 5
    expected = reference_adam(np.array([0.5, -0.25]), grads, 0.05, weight_decay=l2_coef)
    np.testing.assert_allclose(learner.theta.detach().numpy(), expected, rtol=1e-9)


def test_gradients_are_clipped_to_max_grad_norm():
    learner = Logits([0.0, LN3])
    trainer = SupervisedTrainer(learner, learning_rate=0.1, batch_size=2, max_grad_norm=0.1)
    trainer.update(next(demos_of([0, 0]).iter_batches(2, shuffle=False)))
    # Unclipped: p - onehot(0) = (-3/4, 3/4), norm 3/4 sqrt 2.
    clipped = np.array([-0.75, 0.75]) * 0.1 / (0.75 * math.sqrt(2) + 1e-6)
    np.testing.assert_allclose(learner.theta.grad.numpy(), clipped, rtol=1e-9)


def test_minibatches_cover_every_sample_once_per_pass_the_last_one_smaller():
    learner = Logits([0.0, 0.0])
    trainer = SupervisedTrainer(learner, learning_rate=0.1, batch_size=2, seed=0)
    sizes = []
    trainer.train_samples(demos_of([0, 1, 0, 1, 0]), 7, lambda stats, n: sizes.append(n))
    assert sizes == [2, 2, 1, 2]  # a whole pass of 5, then the first batch of the next
    first_pass = [i for batch in learner.seen[:3] for i in batch]
    assert sorted(first_pass) == [0, 1, 2, 3, 4]
    assert first_pass != [0, 1, 2, 3, 4]  # shuffled
    assert not learner.training_mode  # training mode only while training


def test_on_update_returning_false_stops_training():
    trainer = SupervisedTrainer(Logits([0.0, 0.0]), learning_rate=0.1, batch_size=1)
    assert trainer.train_samples(demos_of([0, 1, 0]), 100, lambda s, n: False) is False
    assert trainer.n_updates == 1


def test_loss_is_the_mean_negative_log_likelihood():
    trainer = SupervisedTrainer(Logits([0.0, LN3]), learning_rate=0.1, batch_size=2)
    expected = (math.log(4) + 2 * (math.log(4) - LN3)) / 3
    assert trainer.loss(demos_of([0, 1, 1])) == pytest.approx(expected, abs=1e-12)


def _zip_reader(members: dict[str, bytes]) -> AgentFileReader:
    """The members as an agent file's zip holds them, read back as agents read them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return AgentFileReader(zipfile.ZipFile(buffer), "<memory>", set(members))


@pytest.mark.parametrize("via", ["state_dict", "file_members"])
def test_restored_state_continues_like_the_uninterrupted_trainer(via):
    demos = demos_of([0, 1, 1, 0, 1, 1, 1])

    def trainer() -> SupervisedTrainer:
        return SupervisedTrainer(Logits([0.2, 0.1]), learning_rate=0.05, batch_size=3, seed=4)

    straight, first = trainer(), trainer()
    straight.train_samples(demos, 21)  # three passes; the run below stops after one
    first.train_samples(demos, 7)
    resumed = trainer()
    if via == "state_dict":
        resumed.load_state_dict(first.state_dict())
    else:
        resumed.restore_file_members(_zip_reader(first.file_members()))
    resumed.policy.load_state_dict(first.policy.state_dict())
    resumed.train_samples(demos, 14)
    assert resumed.n_updates == straight.n_updates
    assert resumed.policy.seen == straight.policy.seen[3:]  # the same minibatches, in order
    assert torch.equal(resumed.policy.theta, straight.policy.theta)


def test_bad_settings_are_refused():
    for name, value in [("learning_rate", 0), ("batch_size", 0), ("ent_coef", -1.0)]:
        settings = {"learning_rate": 0.1, "batch_size": 2, name: value}
        with pytest.raises(ValueError, match=name):
            SupervisedTrainer(Logits([0.0, 0.0]), **settings)


def test_a_loaded_dril_takes_the_same_bc_steps(tmp_path):
    """DRIL's BC steps go through its trainer; its file holds the trainer's optimizer and
    RNG, so a saved and loaded DRIL steps exactly like the one that kept going."""
    env = gym.make("Control-CartPole-v0")
    demos = agents.Demonstrations.collect(env, envs.make_expert(env), n_steps=200, seed=0)
    kwargs = {"ensemble_size": 2, "ensemble_epochs": 2, "bc_epochs": 1, "n_envs": 1}
    dril = agents.DRIL(env, demos, seed=0, device="cpu", **kwargs).pretrain()
    dril.bc_step(2)
    path = dril.save(tmp_path / "dril")
    loaded = agents.DRIL.load(path, env=gym.make("Control-CartPole-v0"), device="cpu")
    losses = [dril.bc_step(), dril.bc_step(3)]
    assert [loaded.bc_step(), loaded.bc_step(3)] == losses
    for a, b in zip(dril.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(a, b)
