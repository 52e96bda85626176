"""A theme change (projector mode, `t`) restyles the screen shown at once, and a screen under it when it is shown
again: never a screen left in the old theme, and no second of restyling screens nobody sees."""

from __future__ import annotations

from amqp_lab.ui.offline import OfflineLab
from amqp_lab.ui.themes import LAB_DARK, LAB_LIGHT, LAB_PROJECTOR, StyleKeepingScreen
from textual import events
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tests.conftest import wait_for


class Panel(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Static("panel")


class TwoScreens(OfflineLab):
    CSS = "Static { background: $primary; }"


def primary(screen: Screen[None]) -> Color:
    return screen.query_one(Static).styles.background


def themes_primary(lab: OfflineLab) -> Color:
    return Color.parse(lab.get_css_variables()["primary"])  # the theme's, as Textual derives it


async def test_a_theme_change_restyles_the_screen_shown_now_and_the_one_under_it_when_shown() -> None:
    lab = TwoScreens(theme=LAB_DARK.name)
    async with lab.run_test() as pilot:
        under, shown = Panel(), Panel()
        await lab.push_screen(under)
        await lab.push_screen(shown)
        dark = themes_primary(lab)
        assert primary(under) == primary(shown) == dark

        lab.theme = LAB_LIGHT.name
        light = themes_primary(lab)
        assert light != dark
        await wait_for(lambda: primary(shown) == light, what="the shown screen restyled")
        await pilot.pause()
        assert primary(under) == dark  # not restyled while nobody sees it

        await lab.pop_screen()
        # Restyled as it is shown, before it is drawn: no frame in the old theme.
        assert primary(under) == light


class KeptPanel(StyleKeepingScreen[None]):
    def compose(self) -> ComposeResult:
        yield Static("kept panel")


class FocusAware(OfflineLab):
    CSS = "Static { background: $primary; } App:blur Static { background: $error; }"


async def test_a_screen_shown_again_keeps_its_styles_unless_the_terminal_lost_its_focus_meanwhile() -> None:
    lab = FocusAware(theme=LAB_DARK.name)
    async with lab.run_test() as pilot:
        kept = KeptPanel()
        lab.install_screen(kept, name="kept")
        await lab.push_screen("kept")
        focused = primary(kept)
        assert focused == themes_primary(lab)
        await lab.pop_screen()

        lab.post_message(events.AppBlur())  # the terminal reports it lost the focus (another window took it)
        await wait_for(lambda: not lab.app_focus, what="the app told it lost the focus")
        await lab.push_screen("kept")
        await pilot.pause()
        assert primary(kept) == Color.parse(lab.get_css_variables()["error"])  # `App:blur`, though hidden then

        lab.post_message(events.AppFocus())
        await wait_for(lambda: primary(kept) == focused, what="the focused style back on the screen shown")


class Badge(Static):
    DEFAULT_CSS = "Badge { color: $error; }"  # default CSS that arrives with the first badge mounted


async def test_switching_back_and_forth_styles_from_the_theme_of_the_moment_widgets_mounted_between_included() -> None:
    lab = TwoScreens(theme=LAB_DARK.name)
    async with lab.run_test() as pilot:
        shown = Panel()
        await lab.push_screen(shown)
        dark = themes_primary(lab)
        lab.theme = LAB_LIGHT.name
        await wait_for(lambda: primary(shown) == themes_primary(lab) != dark, what="light")

        badge = Badge("new")
        await shown.mount(badge)
        lab.theme = LAB_DARK.name
        await wait_for(lambda: primary(shown) == dark, what="dark again")
        await pilot.pause()
        assert badge.styles.color == Color.parse(lab.get_css_variables()["error"])  # dark's error, by its own CSS


class Scrolling(Screen[None]):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("\n".join(f"line {n}" for n in range(100)))


def scrollbar_colours(screen: Screen[None]) -> list[tuple[Color, ...]]:
    return [
        (
            w.styles.scrollbar_color,
            w.styles.scrollbar_color_hover,
            w.styles.scrollbar_color_active,
            w.styles.scrollbar_background,
            w.styles.scrollbar_background_hover,
            w.styles.scrollbar_background_active,
            w.styles.scrollbar_corner_color,
        )
        for w in screen.walk_children(with_self=True)
    ]


async def test_projector_mode_keeps_the_scrollbars_of_the_dark_theme_and_changes_the_rest() -> None:
    """Projector mode (`P`) from the dark theme: every colour the projector has its own of changes, but no scrollbar
    colour, each of which would repaint all of a widget's descendants once more."""
    lab = TwoScreens(theme=LAB_DARK.name)
    async with lab.run_test() as pilot:
        shown = Scrolling()
        await lab.push_screen(shown)
        await pilot.pause()
        dark, dark_primary = scrollbar_colours(shown), primary(shown)
        lab.theme = LAB_PROJECTOR.name
        await wait_for(lambda: primary(shown) == themes_primary(lab) != dark_primary, what="the projector's colours")
        assert scrollbar_colours(shown) == dark
