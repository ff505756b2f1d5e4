"""Gymnasium wrappers for lfi-gym envs."""

from wrappers.restart import RestartForwarding

__all__ = ["RestartForwarding"]
