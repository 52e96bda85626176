"""The scenario builder, driven with Pilot: checked as typed, previewed, saved, opened. No broker needed."""

from __future__ import annotations

from pathlib import Path

from amqp_lab.broker.connection import Backoff
from amqp_lab.config import build
from amqp_lab.scenario.files import PRESETS, load, preset
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.builder import BuilderScreen, Field, PathPrompt
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher, Input, Switch, Tabs, TextArea

from tests.conftest import shown_text, wait_for

SIZE = (140, 40)


def builder_lab(source: str = "rpc", read_only: bool = False) -> AmqpLabApp:
    settings = build(
        {
            "amqp_url": "amqp://guest:guest@127.0.0.1:1/",
            "management_url": "http://127.0.0.1:1/",
            "refresh": 3600,
            "read_only": read_only,
        }
    )
    return make_app(settings, backoff=Backoff(0.2, 1.0), builder=source)


def field(app: AmqpLabApp, key: str) -> Field:
    """The field of the pattern on screen: the others' forms are built too, hidden."""
    switcher = app.screen.query_one(ContentSwitcher)
    return next(f for f in switcher.query_one(f"#{switcher.current}").query(Field) if f.key == key)


def error_line(found: Field) -> str:
    return shown_text(found.query_one(".field-error"))


def preview(app: AmqpLabApp) -> str:
    """The preview's text, its lines joined: a long message wraps."""
    parts = (shown_text(app.screen.query_one(f"#preview-{part}")) for part in ("title", "flow", "notes"))
    return " ".join(" ".join(parts).split())


async def type_into(pilot: Pilot[None], box: Input, text: str) -> None:
    box.focus()
    box.value = ""
    await pilot.press(*text)


async def test_fields_are_checked_as_typed_and_the_preview_follows(tmp_path: Path) -> None:
    app = builder_lab()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, BuilderScreen) and "handler ×2" in preview(app), what="rpc")
        handlers = field(app, "rpc.handlers")
        await type_into(pilot, handlers.query_one(Input), "-1")
        await wait_for(lambda: handlers.error is not None, what="an error on rpc.handlers")
        await wait_for(lambda: "greater than or equal to 0" in error_line(handlers), what="the error under the field")
        assert "Not runnable yet" in preview(app)

        await type_into(pilot, handlers.query_one(Input), "4")
        await wait_for(lambda: "handler ×4" in preview(app), what="four handlers in the preview")
        assert handlers.error is None

        timeout = field(app, "rpc.timeout")
        await type_into(pilot, timeout.query_one(Input), "soon")
        await wait_for(lambda: timeout.error is not None, what="an error on rpc.timeout")
        await wait_for(lambda: "write it as 500ms, 30s, 2m or 1h" in error_line(timeout), what="the duration error")
        await type_into(pilot, timeout.query_one(Input), "750ms")
        await wait_for(lambda: timeout.error is None, what="750ms accepted")

        dead_letter = field(app, "rpc.ttl0_dead_letter")
        await pilot.click(dead_letter.query_one(Switch))
        await wait_for(lambda: "rpc.unhandled" in preview(app), what="the dead-letter path in the preview")
        assert shown_text(dead_letter.query_one(".switch-state")) == "on"

        # Another pattern, and back: what was typed is kept.
        app.screen.query_one(Tabs).active = "tab-workers"
        await wait_for(lambda: "worker ×3" in preview(app), what="the workers preview")
        app.screen.query_one(Tabs).active = "tab-rpc"
        await wait_for(lambda: "handler ×4" in preview(app), what="rpc as it was left")

        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, PathPrompt), what="the save prompt")
        target = tmp_path / "mine.toml"
        await type_into(pilot, app.screen.query_one(Input), str(target))
        await pilot.press("enter")
        await wait_for(target.is_file, what="the saved file")
        saved = load(str(target))
        assert (saved.rpc.handlers, saved.rpc.timeout, saved.rpc.ttl0_dead_letter) == (4, 0.75, True)

        # Saving again over it asks first.
        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, PathPrompt), what="the save prompt again")
        await type_into(pilot, app.screen.query_one(Input), str(target))
        await pilot.press("enter")
        assert "Enter again replaces it" in shown_text(app.screen.query_one("#path-hint"))
        await pilot.press("escape")


async def test_a_custom_file_opens_as_toml_and_bad_toml_is_said(tmp_path: Path) -> None:
    source = tmp_path / "custom.toml"
    source.write_text(preset("custom").text)
    app = builder_lab(str(source))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: "↪ unroutable" in preview(app), what="the custom topology with its alternate exchange")
        assert app.screen.query_one(Tabs).active == "tab-custom"
        area = app.screen.query_one("#custom-toml", TextArea)
        area.text = area.text.replace('queue = "unrouted"', 'queue = "nowhere"')
        await wait_for(lambda: "Not runnable yet" in preview(app), what="the broken reference")
        assert "consumes queue 'nowhere', which is not declared" in preview(app)
        screen = app.screen
        assert isinstance(screen, BuilderScreen)
        # As in the read-only test: a toast can expire while the other forms are built on a loaded machine.
        await wait_for(lambda: all(screen._form(p) is not None for p in PRESETS), what="every pattern's form built")
        titles: list[str] = []
        app.notify = lambda message, title="", **_: titles.append(title)  # type: ignore[method-assign,assignment]
        await pilot.press("ctrl+r")
        await wait_for(lambda: any("Cannot run" in title for title in titles), what="refusal")
        assert app.screen is screen


async def test_read_only_refuses_to_run() -> None:
    app = builder_lab("workers", read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: "worker ×3" in preview(app), what="the workers preview")
        screen = app.screen
        assert isinstance(screen, BuilderScreen)
        # Once the other forms are built: on a loaded machine building them held the loop past the toast's life.
        await wait_for(lambda: all(screen._form(p) is not None for p in PRESETS), what="every pattern's form built")
        said: list[str] = []
        app.notify = lambda message, **_: said.append(str(message))  # type: ignore[method-assign,assignment]
        await pilot.press("ctrl+r")
        await wait_for(lambda: any("Read-only mode" in text for text in said), what="the read-only refusal")
        assert app.screen is screen


async def test_every_preset_opens_runnable_and_lists_and_tables_can_be_edited() -> None:
    app = builder_lab("pub-sub")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, BuilderScreen) and "events" in preview(app), what="pub-sub")
        for tab in ("rpc", "map-reduce", "workers", "pub-sub"):
            app.screen.query_one(Tabs).active = f"tab-{tab}"
            await wait_for(lambda: "Not runnable yet" not in preview(app) != "", what=f"{tab} runnable")
        subscribers = field(app, "pub-sub.subscribers")
        await type_into(pilot, subscribers.query_one(Input), '{audit = ["#"], "late-eu" = ["eu.*.paid"]}')
        await wait_for(lambda: "late-eu" in preview(app), what="the edited subscribers in the preview")
        assert subscribers.error is None and "Not runnable yet" not in preview(app)


async def test_a_count_past_its_bound_is_refused_as_typed_and_the_screen_answers() -> None:
    """30000 workers typed into the form froze the screen for minutes (the checks were quadratic): now the bound
    says why at once, and a count at the bound previews."""
    app = builder_lab("workers")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, BuilderScreen) and "worker ×3" in preview(app), what="workers")
        workers = field(app, "workers.workers")
        await type_into(pilot, workers.query_one(Input), "30000")
        await wait_for(lambda: workers.error is not None, what="an error on workers.workers")
        await wait_for(lambda: "more than the 500 allowed" in error_line(workers), what="the bound under the field")
        await type_into(pilot, workers.query_one(Input), "500")
        await wait_for(lambda: "worker ×500" in preview(app), what="500 workers in the preview")


async def test_switching_pattern_shows_its_options_at_once() -> None:
    app = builder_lab("rpc")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, BuilderScreen), what="the builder")
        screen = app.screen
        assert isinstance(screen, BuilderScreen)
        await wait_for(lambda: all(screen._form(p) is not None for p in PRESETS), what="every pattern's form built")
        for pattern in PRESETS[1:-1]:  # the patterns with fields (custom is a TOML editor)
            await pilot.press("ctrl+right")
            await pilot.pause()  # one frame: the options are there, not built now
            assert screen.query_one(ContentSwitcher).current == f"form-{pattern}"
            assert field(app, "name").region.height > 0
            assert field(app, "name").query_one(Input).value == load(pattern).name


async def test_leaving_and_coming_back_finds_the_options_as_they_were_left() -> None:
    app = builder_lab()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, BuilderScreen) and "handler ×2" in preview(app), what="rpc")
        builder = app.screen
        await type_into(pilot, field(app, "rpc.handlers").query_one(Input), "4")
        await wait_for(lambda: "handler ×4" in preview(app), what="four handlers in the preview")
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, BuilderScreen), what="the explorer")
        app.action_builder()
        await pilot.pause()
        assert app.screen is builder  # kept, not built again
        assert "handler ×4" in preview(app) and field(app, "rpc.handlers").query_one(Input).value == "4"
        # The other patterns' forms are built while the builder is shown, those left when it was left included.
        await wait_for(lambda: all(builder._form(p) is not None for p in PRESETS), what="every pattern's form built")
