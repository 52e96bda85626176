"""The lab's look: its stylesheet, and its themes (two with strong contrast for a screen, and the projector's, for
a washed-out beamer)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TypeVar

from textual import events, on
from textual.app import ScreenError
from textual.css.stylesheet import Stylesheet
from textual.screen import Screen
from textual.theme import Theme

from amqp_lab.ui.terminal import PromptEscapeApp

STYLES = Path(__file__).parent / "styles" / "app.tcss"  # absolute: the apps that use it live elsewhere

LAB_DARK = Theme(
    name="lab-dark",
    primary="#4FC3F7",
    secondary="#FFB74D",
    accent="#FFD54F",
    foreground="#F5F5F5",
    background="#101418",
    surface="#1A2027",
    panel="#24303A",
    success="#66BB6A",
    warning="#FFA726",
    error="#EF5350",
    dark=True,
)

LAB_LIGHT = Theme(
    name="lab-light",
    primary="#0D47A1",
    secondary="#8D4B00",
    accent="#6A1B9A",
    foreground="#0A0A0A",
    background="#FFFFFF",
    surface="#F1F3F5",
    panel="#DDE3EA",
    success="#1B5E20",
    warning="#8A4B00",
    error="#B71C1C",
    dark=False,
)


def scrollbars_of(theme: Theme) -> dict[str, str]:
    """A theme's scrollbar colours, as Textual derives them from its colours."""
    return {name: value for name, value in theme.to_color_system().generate().items() if name.startswith("scrollbar")}


# Projector mode: pure black and white, saturated colours only, nothing mid-grey that a beamer washes out.
LAB_PROJECTOR = Theme(
    name="lab-projector",
    primary="#FFEB3B",
    secondary="#00E5FF",
    accent="#FFFFFF",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#202020",
    success="#00FF66",
    warning="#FF9100",
    error="#FF3D3D",
    dark=True,
    # lab-dark's scrollbars: on a theme change each scrollbar colour that changes repaints all of a widget's
    # descendants, seven colours on every widget, half of `P`.
    variables=scrollbars_of(LAB_DARK),
)

THEMES = (LAB_DARK, LAB_LIGHT, LAB_PROJECTOR)


class ThemedApp(PromptEscapeApp):
    """An app with the lab's themes, whose theme changes restyle the screen shown and no other.

    Textual restyles every screen of the stack on a theme change. Under a live run that is the explorer and the
    builder too: about a second on a 2-core machine for each switch of projector mode, every key waiting on it. A
    screen under the shown one is restyled instead when it is shown again.
    """

    def __init__(self, theme: str) -> None:
        super().__init__()
        self._parsed: dict[tuple[tuple[str, str], ...], Stylesheet] = {}
        for lab_theme in THEMES:
            self.register_theme(lab_theme)
        self.theme = theme

    @on(events.Mount)
    def _restyle_screens_when_shown(self) -> None:
        # immediate: before the screen shown is drawn in the old theme
        self.screen_change_signal.subscribe(self, self._restyle_if_stale, immediate=True)

    def refresh_css(self, animate: bool = True) -> None:
        self.stylesheet = self._stylesheet_for(self.get_css_variables())
        self.stylesheet.update(self, animate=animate)  # the app and the screen shown
        try:
            screen = self.screen
        except ScreenError:
            return  # none yet
        if screen.is_mounted:
            screen._refresh_layout(self.size)
            screen._css_update_count = self._css_update_count

    def _stylesheet_for(self, variables: dict[str, str]) -> Stylesheet:
        """The stylesheet parsed with a theme's variables, kept: parsing it again took 55 ms of each `P` here.
        Parsed again when its sources changed (a widget of a new kind brought its default CSS)."""
        key = tuple(sorted(variables.items()))
        parsed = self._parsed.get(key)
        if parsed is None or parsed.source != self.stylesheet.source:
            parsed = self.stylesheet.copy()
            parsed.set_variables(variables)
            parsed.reparse()
            self._parsed[key] = parsed
        return parsed

    def watch_app_focus(self) -> None:
        # The terminal's focus is a pseudo-class (`:blur`): Textual restyles the screen shown, the others are stale.
        self._css_update_count += 1
        with contextlib.suppress(ScreenError):  # none yet
            self.screen._css_update_count = self._css_update_count

    def _restyle_if_stale(self, screen: Screen[object]) -> None:
        if screen._css_update_count != self._css_update_count:
            self.stylesheet.update(screen, animate=False)
            screen._css_update_count = self._css_update_count


Result = TypeVar("Result")


class StyleKeepingScreen(Screen[Result]):
    """A screen shown as it was styled, unless its styles are stale (`ThemedApp` restyles those as they are shown).

    Textual restyles each screen it pushes, in case something changed while it was hidden. Nothing did, most times:
    that took the builder's hundreds of widgets 0.2 to 0.4 s on each `b`, and a queue's detail, styled as it
    mounted a moment before, 50 to 160 ms. A modal lists `ModalScreen` first: Textual reads CSS along first bases.
    """

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # Runs before Textual's own handler (Screen's), which restyles when told to.
        if self._css_update_count == self.app._css_update_count:
            event.refresh_styles = False
