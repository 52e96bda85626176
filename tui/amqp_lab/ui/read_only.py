"""Read-only mode at the keyboard: a key that would change the broker is dimmed in the footer and, pressed, says
why nothing happens instead of doing nothing in silence."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from textual import events
from textual.binding import Binding, BindingType
from textual.widget import Widget

from amqp_lab.ui.lab import lab_of


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


def refuse_in_read_only(
    node: Widget, bindings: Iterable[BindingType], changes: Collection[str], key: events.Key
) -> None:
    """In read-only mode, a key bound to one of the `changes` is taken here and says why it does nothing."""
    why = refused_key(bindings, changes, key.key) if lab_of(node).settings.read_only else None
    if why is not None:
        key.stop()
        node.notify(why, title="Read-only", severity="warning")
