"""Gymnasium wrappers for lfi-gym envs."""

from wrappers.restart import RestartForwarding
from wrappers.reward import DisagreementRewardVecEnv, DisagreementRewardVector

__all__ = ["DisagreementRewardVecEnv", "DisagreementRewardVector", "RestartForwarding"]
