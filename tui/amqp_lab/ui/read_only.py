"""Read-only mode at the keyboard: a key that would change the broker is dimmed in the footer and, pressed, says
why nothing happens instead of doing nothing in silence."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from textual.binding import Binding, BindingType


def refused_key(bindings: Iterable[BindingType], changes: Collection[str], key: str) -> str | None:
    """What pressing `key` says in read-only mode, if it is bound to one of the `changes`; None for other keys."""
    for binding in bindings:
        if not isinstance(binding, Binding):
            continue
        action = binding.action.removeprefix("screen.")
        if action in changes and key in binding.key.split(","):
            return (
                f"{binding.description} is off in read-only mode: nothing on the broker changes. "
                "Start without --read-only to change it."
            )
    return None
