"""A footer that is always whole: the keys that fit the width, in the screen's order, and `?` (the help screen,
which lists every key) kept last, instead of keys cut off mid-word at the right edge."""

from __future__ import annotations

from textual import events
from textual.geometry import Size
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

HELP_ACTIONS = ("help", "app.help")
PALETTE_FROM = 110  # columns from which the command palette's key has room beside the screen's own


class FittingFooter(Footer):
    _shown: tuple[object, ...] | None = None  # what the keys were composed from: the same again is not redone

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.recompose)

    def on_mount(self) -> None:
        super().on_mount()
        self.call_after_refresh(self._fit)

    async def recompose(self) -> None:
        """As Textual's footer, which composes its keys again on every change of focus or screen (several times
        for one Esc, each restyling every key), but only when the keys or the width changed."""
        shown = self._keys_shown()
        if shown is not None and shown == self._shown:
            return
        self._shown = shown
        await super().recompose()
        self.call_after_refresh(self._fit)

    def _keys_shown(self) -> tuple[object, ...] | None:
        if not self._bindings_ready or not self.is_attached:
            return None
        keys = tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show
        )
        return (keys, self.size.width, self.compact, self.show_command_palette)

    def _fit(self) -> None:
        """Drop the keys that would run past the right edge (keeping `?`, moved last). Widths are measured from
        what each key renders, not from a layout that may not have happened yet."""
        keys = [key for key in self.query_children(FooterKey) if not key.has_class("-command-palette")]
        palette = [key for key in self.query_children(FooterKey) if key.has_class("-command-palette")]
        if not keys:
            return
        width = self.size.width
        if width < PALETTE_FROM:
            for key in palette:
                key.remove()
            palette = []
        room = width - sum(taken(key) for key in palette) - 1
        if sum(taken(key) for key in keys) <= room:
            return
        helps = [key for key in keys if key.action in HELP_ACTIONS]
        room -= sum(taken(key) for key in helps)
        kept = []
        for key in keys:
            if key in helps:
                continue
            if taken(key) > room:
                break  # in order: a screen lists its main keys first
            kept.append(key)
            room -= taken(key)
        for key in keys:
            if key not in kept and key not in helps:
                key.remove()
        if helps and kept:
            self.move_child(helps[0], after=kept[-1])


def taken(key: FooterKey) -> int:
    """Columns a key takes: what it renders, and its margins."""
    return key.get_content_width(Size(0, 0), Size(0, 0)) + key.styles.margin.width
