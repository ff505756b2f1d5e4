"""Re-expose the restart contract on top of any wrapper stack."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from lfi_gym.envs.core import RestartableEnv


class RestartForwarding(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds ``get_state()`` / ``reset_to(state)`` to a wrapped lfi-gym env.

    Gymnasium 1.x wrappers do not forward unknown attributes, so after
    ``env = SomeWrapper(gym.make(id))`` the restart methods are hidden. Wrap once more
    with this class to get them back. ``reset_to`` goes through the whole stack as
    ``reset(options={"state": state})``, so every wrapper sees a reset; ``get_state``
    snapshots the base env (wrapper-side state, such as a counter in your own wrapper, is
    not part of it).
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env.unwrapped, RestartableEnv):
            raise TypeError(
                "RestartForwarding needs an lfi-gym env underneath; got "
                f"{type(env.unwrapped).__name__}"
            )
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def get_state(self) -> Any:
        return self.env.unwrapped.get_state()

    def reset_to(self, state: Any) -> tuple[Any, dict[str, Any]]:
        return self.env.reset(options={"state": state})
