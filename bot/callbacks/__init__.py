"""Callbacks: a caller who would rather not wait is called back, agent first, when it is their turn.

- :mod:`bot.callbacks.requests`: the request contract (stream ``attendant:callbacks``), :func:`submit`, the
  settings (``ATTENDANT_CALLBACK_*``) and the calling hours;
- :mod:`bot.callbacks.store`: the request's state hash and its guarded transitions;
- :mod:`bot.callbacks.dispatcher`: the consumer in every gateway that dials — exactly once.
"""

from bot.callbacks.dispatcher import Dispatcher
from bot.callbacks.requests import (
    AlwaysOpen,
    CallbackError,
    CallbackRequest,
    CallbackSettings,
    Opening,
    QuietHours,
    state_key,
    submit,
)

__all__ = [
    "AlwaysOpen",
    "CallbackError",
    "CallbackRequest",
    "CallbackSettings",
    "Dispatcher",
    "Opening",
    "QuietHours",
    "state_key",
    "submit",
]
