"""Gymnasium wrappers for lfi-gym envs."""

from lfi_gym.wrappers.restart import RestartForwarding
from lfi_gym.wrappers.reward import DisagreementRewardVecEnv, DisagreementRewardVector

__all__ = ["DisagreementRewardVecEnv", "DisagreementRewardVector", "RestartForwarding"]
