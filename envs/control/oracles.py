"""Computational oracles for the control envs."""

from __future__ import annotations

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from lfi_gym.envs.policies import OraclePolicy


def cartpole_lqr_gain(
    env: CartPoleEnv, state_cost=(1.0, 1.0, 10.0, 1.0), action_cost: float = 1.0
) -> np.ndarray:
    """Discrete-time LQR gain of CartPole linearised about the upright pole.

    Uses the env's own constants and its explicit-Euler step, so the gain matches the
    simulated dynamics rather than the continuous-time textbook model.
    """
    g, m_pole, m_total = env.gravity, env.masspole, env.total_mass
    half_length, dt = env.length, env.tau
    # Linearised accelerations for small theta: theta_acc = a * theta + b * force, and
    # x_acc = c * theta + d * force (from the equations in CartPoleEnv.step).
    denom = half_length * (4.0 / 3.0 - m_pole / m_total)
    a, b = g / denom, -1.0 / (m_total * denom)
    c = -m_pole * half_length * a / m_total
    d = 1.0 / m_total - m_pole * half_length * b / m_total
    a_cont = np.array([[0, 1, 0, 0], [0, 0, c, 0], [0, 0, 0, 1], [0, 0, a, 0]], dtype=float)
    b_cont = np.array([[0.0], [d], [0.0], [b]])
    a_disc, b_disc = np.eye(4) + dt * a_cont, dt * b_cont
    q, r = np.diag(state_cost), np.array([[action_cost]])
    p = q.copy()
    for _ in range(5000):  # Riccati recursion to its fixed point
        gain = np.linalg.solve(r + b_disc.T @ p @ b_disc, b_disc.T @ p @ a_disc)
        p_next = q + a_disc.T @ p @ (a_disc - b_disc @ gain)
        if np.allclose(p_next, p, rtol=1e-12, atol=1e-12):
            break
        p = p_next
    return gain[0]


class CartPoleOracle(OraclePolicy):
    """Bang-bang LQR: push right exactly when the LQR force -K s is positive.

    A pure function of the observation, so it can also label stored observations.
    Balances for the full 500-step horizon from every start Gymnasium draws.
    """

    privileged = False

    def __init__(self, env) -> None:
        super().__init__(env)
        self.gain = cartpole_lqr_gain(env.unwrapped)

    def act(self, observations: np.ndarray) -> np.ndarray:
        force = -(np.asarray(observations, dtype=np.float64) @ self.gain)
        return (force > 0).astype(np.int64)
