"""The app shell against the real node, driven as a user would with Pilot."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from amqp_lab.broker.connection import Backoff, ConnectionState
from amqp_lab.config import Settings, build
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.connection import ConnectionScreen
from amqp_lab.ui.screens.help import HelpScreen
from amqp_lab.ui.widgets.queue_table import QueueTable
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from tests.conftest import settings_for, wait_for

SIZE = (140, 40)


@pytest.fixture
async def queues(rabbit) -> AsyncIterator[tuple[str, aio_pika.abc.AbstractChannel]]:  # type: ignore[no-untyped-def]
    """Three queues <prefix>-a/b/c holding 3, 1 and 2 messages."""
    prefix = f"ui-{uuid.uuid4().hex[:6]}"
    connection = await aio_pika.connect(rabbit.amqp_url)
    async with connection:
        channel = await connection.channel()
        for suffix, count in (("a", 3), ("b", 1), ("c", 2)):
            await channel.declare_queue(f"{prefix}-{suffix}", durable=True)
            for _ in range(count):
                await channel.default_exchange.publish(aio_pika.Message(b"m"), routing_key=f"{prefix}-{suffix}")
        yield prefix, channel
        for suffix in "abc":
            await channel.queue_delete(f"{prefix}-{suffix}")


def shown_queues(app: AmqpLabApp) -> dict[str, int]:
    """Queue name -> ready count, as the table shows them, in row order."""
    table = app.screen.query_one(QueueTable)
    ready = table.get_column_index("ready")
    rows = [table.get_row_at(i) for i in range(table.row_count)]
    return {str(row[0]): int(str(row[ready]).replace(",", "")) for row in rows}


def lab(settings: Settings) -> AmqpLabApp:
    return make_app(settings, backoff=Backoff(0.2, 1.0))


async def test_overview_shows_queues_with_live_depths(settings: Settings, queues) -> None:  # type: ignore[no-untyped-def]
    prefix, channel = queues
    app = lab(settings)
    async with app.run_test(size=SIZE) as pilot:
        expected = {f"{prefix}-a": 3, f"{prefix}-b": 1, f"{prefix}-c": 2}
        await wait_for(
            lambda: {k: v for k, v in shown_queues(app).items() if k.startswith(prefix)} == expected,
            what="the seeded queues with their depths",
        )
        assert app.amqp_status is not None and app.amqp_status.state is ConnectionState.CONNECTED
        bar = str(app.screen.query_one("#amqp-badge", Static).render())
        assert "connected" in bar
        assert "RabbitMQ" in str(app.screen.query_one("#broker", Static).render())

        await channel.default_exchange.publish(aio_pika.Message(b"m"), routing_key=f"{prefix}-b")
        await wait_for(lambda: shown_queues(app).get(f"{prefix}-b") == 2, what="the new depth of -b")
        await pilot.pause()


async def test_filter_sort_and_order(settings: Settings, queues) -> None:  # type: ignore[no-untyped-def]
    prefix, _ = queues
    app = lab(settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: f"{prefix}-c" in shown_queues(app), what="the seeded queues")
        await pilot.press("slash", *prefix)
        await wait_for(
            lambda: list(shown_queues(app)) == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"],
            what="only the filtered queues",
        )
        await pilot.press("enter")
        # name -> vhost -> type -> ready: the fourth column, numeric, so largest first
        await pilot.press("s", "s", "s")
        await wait_for(lambda: list(shown_queues(app).values()) == [3, 2, 1], what="sorted by ready, descending")
        assert "sorted by ready" in str(app.screen.query_one("#notice", Static).render())
        await pilot.press("o")
        await wait_for(lambda: list(shown_queues(app).values()) == [1, 2, 3], what="ascending after o")
        await pilot.press("slash", "escape")
        box = app.screen.query_one("#filter", Input)
        assert (box.value, box.display) == ("", False)
        assert app.poller is not None and app.poller.wanted.name_filter == ""


async def test_connection_screen_switches_brokers_without_restarting(rabbit) -> None:  # type: ignore[no-untyped-def]
    app = lab(settings_for(rabbit, amqp_url="amqp://guest:guest@127.0.0.1:1/"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            lambda: app.amqp_status is not None and app.amqp_status.state is ConnectionState.FAILED,
            what="FAILED on a closed port",
        )
        notice = str(app.screen.query_one("#notice", Static).render())
        assert "nothing listens at 127.0.0.1:1" in notice and "press r to retry, c to edit" in notice

        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionScreen), what="the connection screen")
        url_box = app.screen.query_one("#amqp-url", Input)
        assert url_box.value == "amqp://guest:****@127.0.0.1:1/"  # masked on screen

        url_box.value = "ftp://nowhere/"
        await pilot.press("ctrl+s")
        error = app.screen.query_one("#form-error", Static)
        assert "unknown scheme 'ftp'" in str(error.render())

        url_box.value = f"amqp://guest:****@127.0.0.1:{rabbit.amqp_port}/"
        await pilot.press("ctrl+s")
        await wait_for(
            lambda: app.amqp_status is not None and app.amqp_status.state is ConnectionState.CONNECTED,
            what="CONNECTED after switching",
        )
        assert app.settings.primary.port == rabbit.amqp_port
        assert app.settings.primary.password == "guest"  # the masked password was kept


async def test_management_api_missing_is_said_and_amqp_keeps_working(rabbit) -> None:  # type: ignore[no-untyped-def]
    app = lab(settings_for(rabbit, management_url="http://127.0.0.1:1/"))
    async with app.run_test(size=SIZE):
        await wait_for(lambda: app.snapshot is not None and not app.snapshot.ok, what="management failure")
        await wait_for(
            lambda: app.amqp_status is not None and app.amqp_status.state is ConnectionState.CONNECTED,
            what="AMQP connected",
        )
        notice = str(app.screen.query_one("#notice", Static).render())
        assert "Management API: nothing answers at http://127.0.0.1:1/" in notice
        assert "AMQP still works" in notice
        assert "unreachable" in str(app.screen.query_one("#management-badge", Static).render())


async def test_help_and_read_only_badge(rabbit) -> None:  # type: ignore[no-untyped-def]
    app = lab(settings_for(rabbit, read_only=True))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#read-only-badge").display
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        first = app.screen
        text = first.query_one("#help", VerticalScroll)
        await pilot.press("end")
        await wait_for(lambda: text.scroll_y > 0, what="help scrolled down")
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, HelpScreen), what="help closed")

        await pilot.press("question_mark")  # the same screen again, not built again, and at the top
        await wait_for(lambda: isinstance(app.screen, HelpScreen), what="the help screen again")
        assert app.screen is first
        await wait_for(lambda: text.scroll_y == 0, what="help at its top again")


async def test_a_broker_outage_shows_reconnecting_then_connected(rabbit) -> None:  # type: ignore[no-untyped-def]
    app = lab(settings_for(rabbit))
    async with app.run_test(size=SIZE):
        badge = app.screen.query_one("#amqp-badge", Static)
        await wait_for(lambda: "connected" in str(badge.render()), what="connected badge")
        try:
            await asyncio.to_thread(rabbit.stop_app)
            await wait_for(lambda: "reconnecting" in str(badge.render()), what="reconnecting badge")
            notice = app.screen.query_one("#notice", Static)
            await wait_for(
                lambda: f"nothing listens at 127.0.0.1:{rabbit.amqp_port}" in str(notice.render()),
                what="the failed reconnect named in the notice",
            )
            assert "reconnecting" in str(notice.render())
        finally:
            await asyncio.to_thread(rabbit.start_app)
        await wait_for(lambda: "● connected" in str(badge.render()), what="connected badge again")


async def test_connect_with_nothing_changed_keeps_every_setting_the_form_does_not_show() -> None:
    """The form rebuilt the settings from its fields alone, and pressing Connect reset the heartbeat and agents."""
    before = build(
        {"amqp_url": "amqp://guest:guest@127.0.0.1:1/", "management_url": "http://127.0.0.1:1/", "refresh": 3600,
         "heartbeat": 7, "agents": 2, "timeout": 3.5}
    )  # fmt: skip
    app = lab(before)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionScreen), what="the connection screen")
        await pilot.press("ctrl+s")
        await wait_for(lambda: not isinstance(app.screen, ConnectionScreen), what="the form to close")
        assert app.settings == before
