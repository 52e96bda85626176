"""The footer composes its keys again only when they change: Textual's composes them on every change of focus or
screen, several times for one Esc, restyling every key each time (most of what leaving a screen cost). Keys that
do change, and a new width, still show at once."""

from __future__ import annotations

from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from tests.conftest import wait_for


class Other(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield FittingFooter()


class FooterApp(App[None]):
    BINDINGS = [
        Binding("o", "other", "Other screen"),
        Binding("f", "fire", "Fire"),
        Binding("question_mark", "help", "Help"),
    ]
    armed = False

    def compose(self) -> ComposeResult:
        yield Static("a screen")
        yield FittingFooter()

    def action_other(self) -> None:
        self.push_screen(Other())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.armed if action == "fire" else True


def shown(app: App[None]) -> list[str]:
    return [key.description for key in keys(app)]


def keys(app: App[None]) -> list[FooterKey]:
    return list(app.screen.query_one(FittingFooter).query_children(FooterKey))


async def test_keys_are_not_composed_again_when_nothing_changed_but_follow_a_change() -> None:
    app = FooterApp()
    async with app.run_test(size=(100, 10)) as pilot:

        async def showing(*descriptions: str) -> None:
            await wait_for(lambda: shown(app) == list(descriptions), 10, f"the keys {descriptions}", lambda: shown(app))

        await showing("Other screen", "Help")
        before = keys(app)
        await pilot.press("o")
        await wait_for(lambda: shown(app)[:1] == ["Back"], 10, "the other screen's keys", lambda: shown(app))
        await pilot.press("escape")
        await showing("Other screen", "Help")
        assert keys(app) == before  # the very same keys: not composed again
        app.armed = True
        app.refresh_bindings()
        await showing("Other screen", "Fire", "Help")
        await pilot.resize_terminal(30, 10)
        await wait_for(
            lambda: sum(key.region.width for key in keys(app)) <= 30 and "Help" in shown(app),
            10,
            "the keys fitted to 30 columns",
            lambda: str([(key.description, key.region.width) for key in keys(app)]),
        )
