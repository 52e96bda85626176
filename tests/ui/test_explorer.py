"""The explorer against a real broker holding thousands of queues and a busy shop, driven as a new user would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import quote

import aio_pika
import httpx
import pytest
import seed_broker
from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.tap import TAP_PREFIX
from amqp_lab.config import Settings
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.confirm import ConfirmScreen
from amqp_lab.ui.screens.overview import OverviewScreen
from amqp_lab.ui.screens.peek import PeekScreen
from amqp_lab.ui.screens.publish import PublishScreen
from amqp_lab.ui.screens.queue import QueueScreen
from amqp_lab.ui.screens.tap import TapScreen
from amqp_lab.ui.screens.whatif import WhatIfScreen
from amqp_lab.ui.widgets.exchange_tree import ExchangeTree
from amqp_lab.ui.widgets.keyed_table import KeyedTable
from amqp_lab.ui.widgets.queue_table import QueueTable
from amqp_lab.ui.widgets.trends import Trend
from textual.app import App
from textual.widgets import Input, OptionList

from tests.conftest import shown_text, wait_for
from tests.ui.frozen_broker import frozen_broker_lab

SIZE = (140, 40)
IDLE_QUEUES = 5000
EVERYTHING = f"{seed_broker.SHOP}.all"  # bound with #, its consumer takes 5 messages and never acks


@pytest.fixture
async def busy_broker(rabbit) -> AsyncIterator[asyncio.Task[None]]:  # type: ignore[no-untyped-def]
    """Thousands of idle queues and the seeded shop publishing (the task), for the length of a test."""
    await seed_broker.declare_idle(rabbit.amqp_url, IDLE_QUEUES)
    stop = asyncio.Event()
    shop = asyncio.create_task(seed_broker.shop(rabbit.amqp_url, 50, stop))
    try:
        yield shop
    finally:
        stop.set()
        await shop
        await seed_broker.delete_idle(rabbit.amqp_url, IDLE_QUEUES)


async def ready_in(settings: Settings, queue: str) -> int:
    connection = await connect_first(settings)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


def queue_rows(app: AmqpLabApp) -> list[str]:
    table = app.screen.query_one(QueueTable)
    return [str(table.get_row_at(n)[0].plain) for n in range(table.row_count)]


async def tap_objects(settings: Settings) -> list[str]:
    async with ManagementClient(settings) as client:
        exchanges = await client.exchanges("/")
        queues, _ = await client.queues("/", name="^amqp-lab\\.tap\\.")
    return [e.name for e in exchanges if e.name.startswith(TAP_PREFIX)] + [q.name for q in queues]


def focus_exchange(app: AmqpLabApp, name: str) -> None:
    tree = app.screen.query_one(ExchangeTree)
    node = next(n for n in tree.root.children if n.data is not None and n.data.exchange.name == name)
    tree.focus()
    tree.move_cursor(node)


async def test_find_a_queue_among_thousands_see_why_it_is_slow_peek_tap_route_and_purge(
    settings: Settings, busy_broker: asyncio.Task[None]
) -> None:
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        # First render: one page of the broker's queues, and the notice says how many there are in all.
        await wait_for(lambda: app.screen.query_one(QueueTable).row_count >= 500, what="the first page of queues")
        await wait_for(lambda: "of 5,00" in shown_text(app.screen.query_one("#notice")), what="the total in the notice")

        # Find the queue by name.
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "orders.all"
        await wait_for(lambda: queue_rows(app) == [EVERYTHING], what="the filter to find the queue")
        await pilot.press("enter", "enter")  # keep the filter, then open the queue
        await wait_for(lambda: isinstance(app.screen, QueueScreen), what="the queue's detail")

        # Why is it slow: its one consumer holds its prefetch of 5 and never acks.
        consumers = app.screen.query_one(KeyedTable)
        await wait_for(lambda: "stuck" in shown_text(consumers), timeout=60, what="the consumer flagged stuck")
        assert "max length: 10000" in shown_text(app.screen.query_one("#queue-settings"))
        await wait_for(lambda: "seed.orders → key #" in shown_text(app.screen.query_one("#queue-bindings")))

        # Peek: messages listed, and the screen says what peeking does to them.
        await pilot.press("g")
        await wait_for(lambda: isinstance(app.screen, PeekScreen), what="the peek screen")
        await wait_for(lambda: any(o.option_count > 0 for o in app.screen.query(OptionList)), what="peeked messages")
        assert "ack_requeue_true" in shown_text(app.screen.query_one("#peek-warning"))
        # The detail is laid out on the next frame: its first line alone can show before the body does.
        await wait_for(lambda: '"region"' in shown_text(app.screen.query_one("#peek-detail")), what="the body shown")
        await pilot.press("escape")

        # Purge, after a confirmation that names the queue.
        async def filled() -> bool:
            return await ready_in(settings, EVERYTHING) >= 200

        await wait_for(filled, timeout=60, what="200 messages in the queue")
        await pilot.press("P")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert EVERYTHING in shown_text(app.screen.query_one(".title"))
        await pilot.press("y")

        async def purged() -> bool:
            return await ready_in(settings, EVERYTHING) < 100  # the shop keeps publishing 50 a second

        await wait_for(purged, what="the purge to empty the queue")
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, OverviewScreen), what="the overview")

        # The consumers tab: the stuck consumer holds its prefetch of 5, as its channel counts it.
        await pilot.press("5")
        consumers_tab = app.screen.query_one("#consumer-table", KeyedTable)

        def stuck_row() -> list[str]:
            rows = [[cell.plain for cell in consumers_tab.get_row_at(n)] for n in range(consumers_tab.row_count)]
            return next((row for row in rows if row[0] == EVERYTHING), [])

        await wait_for(lambda: stuck_row()[3:5] == ["5", "5"], what="the stuck consumer's prefetch and unacked")

        # Which queues does a routing key reach?
        await pilot.press("2")
        await wait_for(lambda: bool(app.screen.query_one(ExchangeTree).root.children), what="the exchanges")
        focus_exchange(app, seed_broker.SHOP)
        await pilot.press("k")
        await wait_for(lambda: isinstance(app.screen, WhatIfScreen), what="the what-if")
        app.screen.query_one("#whatif-key", Input).value = "orders.eu.refund"
        answer = app.screen.query_one("#whatif-answer")
        await wait_for(
            lambda: "2 queues get a copy" in shown_text(answer),
            what="the what-if answer",
            explain=lambda: f"it shows: {shown_text(answer)!r}",
        )
        assert f"{seed_broker.SHOP}.eu" in shown_text(answer)
        app.screen.query_one("#whatif-key", Input).value = "refund"
        await wait_for(lambda: "1 queue gets a copy" in shown_text(answer), what="the answer for another key")
        await pilot.press("escape")

        # Publish a test message: mandatory, so the broker says whether a queue took it.
        for exchange, key, reply in (
            ("amq.direct", "nowhere", "312 NO_ROUTE"),
            (seed_broker.SHOP, "orders.eu.x", "routed"),
        ):
            focus_exchange(app, exchange)
            await pilot.press("p")
            await wait_for(lambda: isinstance(app.screen, PublishScreen), what="the publish screen")
            app.screen.query_one("#publish-key", Input).value = key
            await pilot.press("ctrl+s")
            result = app.screen.query_one("#publish-result")
            await wait_for(lambda r=result, w=reply: w in shown_text(r), what=f"{reply} for {key!r}")  # type: ignore[misc]
            await pilot.press("escape")

        # Tap the exchange feeding it: messages pass by, and stopping removes what the tap declared.
        focus_exchange(app, seed_broker.SHOP)
        await pilot.press("t")
        await wait_for(lambda: isinstance(app.screen, TapScreen), what="the tap")
        tap_screen = app.screen
        assert isinstance(tap_screen, TapScreen)
        assert not busy_broker.done(), "the seeded shop stopped publishing"
        # The shop publishes 50 a second; a loaded CI machine has taken over 30 s to show five.
        await wait_for(lambda: tap_screen.drawn >= 5, timeout=60, what="tapped messages on screen")
        assert "orders." in shown_text(tap_screen.query_one("#tap-messages"))
        assert await tap_objects(settings) != []
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, OverviewScreen), what="the overview again")

        async def tap_gone() -> bool:
            return await tap_objects(settings) == []

        await wait_for(tap_gone, what="the tap's exchange and queue to be deleted")


def said(app: App[None], text: str) -> bool:
    """Whether the newest notification on screen says `text`; it is dismissed so the next one is told apart."""
    notifications = list(app._notifications)
    app.clear_notifications()
    return bool(notifications) and text in notifications[-1].message


async def test_read_only_mode_refuses_every_change_and_says_so(settings: Settings) -> None:
    connection = await connect_first(settings)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("explore-read-only", auto_delete=False)
        await channel.default_exchange.publish(aio_pika.Message(b"keep me"), queue.name)
        app = make_app(replace(settings, read_only=True))
        try:
            async with app.run_test(size=SIZE) as pilot:
                notice = app.screen.query_one("#notice")
                await wait_for(lambda: "READ-ONLY" in shown_text(notice), what="the overview to say read-only")
                await wait_for(lambda: "explore-read-only" in queue_rows(app), what="the queue listed")
                await app.push_screen(QueueScreen("/", queue.name))
                await wait_for(lambda: isinstance(app.screen, QueueScreen), what="the queue's detail")
                await wait_for(lambda: "READ-ONLY" in shown_text(app.screen.query_one("#queue-notice")))
                for key, refused in (("P", "Purge"), ("D", "Delete"), ("g", "Peek"), ("p", "Publish")):
                    await pilot.press(key)
                    await pilot.pause()
                    assert isinstance(app.screen, QueueScreen), f"{key} opened {app.screen}"
                    assert said(app, f"{refused} is off in read-only mode")
                await pilot.press("escape", "2")
                await wait_for(lambda: bool(app.screen.query_one(ExchangeTree).root.children), what="the exchanges")
                focus_exchange(app, "amq.topic")
                for key, refused in (("t", "Tap"), ("p", "Publish"), ("D", "Delete")):
                    await pilot.press(key)
                    await pilot.pause()
                    assert isinstance(app.screen, OverviewScreen), f"{key} opened {app.screen}"
                    assert said(app, f"{refused} is off in read-only mode")
                await pilot.press("k")  # asking a question changes nothing: allowed
                await wait_for(lambda: isinstance(app.screen, WhatIfScreen), what="the what-if")
            assert await ready_in(settings, queue.name) == 1
            assert await tap_objects(settings) == []
        finally:
            await queue.delete(if_unused=False, if_empty=False)


HOSTILE = "evil [bold red]q[/] \x1b[2J\x07 [link=http://x]y"


async def test_hostile_names_headers_and_payloads_are_shown_inert(settings: Settings, rabbit) -> None:  # type: ignore[no-untyped-def]
    """Names and messages a broker may hold: markup and terminal escapes are shown as text, never obeyed."""
    path = f"api/queues/%2F/{quote(HOSTILE, safe='')}"
    async with httpx.AsyncClient(base_url=rabbit.management_url, auth=("guest", "guest")) as admin:
        (await admin.put(path, json={"durable": False, "auto_delete": False})).raise_for_status()
        message = {
            "properties": {"headers": {HOSTILE: HOSTILE}, "content_type": "[i]text[/i]"},
            "routing_key": HOSTILE,
            "payload": HOSTILE + "\n" + "\x1b]0;title\x07",
            "payload_encoding": "string",
        }
        (await admin.post("api/exchanges/%2F/amq.default/publish", json=message)).raise_for_status()
        try:
            app = make_app(settings)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("slash")
                app.screen.query_one("#filter", Input).value = "evil"
                await wait_for(lambda: len(queue_rows(app)) == 1, what="the hostile queue listed")
                shown = shown_text(app.screen.query_one(QueueTable))
                assert "evil [bold red]q[/]" in shown and "\x1b" not in shown  # as text, cut to its column
                await pilot.press("enter", "enter")
                await wait_for(lambda: isinstance(app.screen, QueueScreen), what="the queue's detail")
                detail_title = shown_text(app.screen.query_one("#queue-title"))  # the whole name, once selected
                assert "evil [bold red]q[/] \\x1b[2J\\x07 [link=http://x]y" in detail_title
                await pilot.press("g")
                await wait_for(lambda: isinstance(app.screen, PeekScreen), what="the peek")
                await wait_for(
                    lambda: [o.option_count for o in app.screen.query(OptionList)] == [1], what="the message"
                )
                detail = shown_text(app.screen.query_one("#peek-detail"))
                assert "[i]text[/i]" in detail  # a property, literally
                assert detail.count("evil [bold red]q[/] \\x1b[2J\\x07") >= 3  # key, header name and value, payload
                assert "\\x1b]0;title\\x07" in detail
                assert "\x1b" not in detail
        finally:
            await admin.delete(path)


async def test_a_second_queue_shows_nothing_of_the_first(settings: Settings, rabbit) -> None:  # type: ignore[no-untyped-def]
    """The queue screen is kept between visits: the one left stops being polled, and the next starts blank. The
    second queue is deleted after it was listed, so no answer about it ever comes to cover what the first left."""
    first, second = "lab-detail-first", "lab-detail-second"
    async with httpx.AsyncClient(base_url=rabbit.management_url, auth=("guest", "guest")) as admin:
        for name, limit in ((first, 111), (second, 222)):
            body = {"durable": False, "auto_delete": False, "arguments": {"x-max-length": limit}}
            (await admin.put(f"api/queues/%2F/{name}", json=body)).raise_for_status()
        message = {"properties": {}, "routing_key": first, "payload": "x", "payload_encoding": "string"}
        for _ in range(3):
            (await admin.post("api/exchanges/%2F/amq.default/publish", json=message)).raise_for_status()

        async def counted() -> bool:  # the app asks once a minute here: its one answer must carry the count
            return (await admin.get(f"api/queues/%2F/{first}")).json().get("messages_ready") == 3

        await wait_for(counted, what="the broker's statistics to count the 3 messages")
        try:
            app = make_app(replace(settings, refresh=60))  # the listing keeps the deleted queue until asked again
            async with app.run_test(size=SIZE) as pilot:

                async def list_alone(name: str) -> None:
                    await wait_for(lambda: isinstance(app.screen, OverviewScreen), what="the explorer")
                    await pilot.press("slash")
                    app.screen.query_one("#filter", Input).value = name
                    await wait_for(lambda: queue_rows(app) == [name], what=f"{name} listed alone")

                async def open_listed() -> QueueScreen:
                    await pilot.press("enter", "enter")  # keep the filter, then open the queue
                    await wait_for(lambda: isinstance(app.screen, QueueScreen), what="the queue's detail")
                    assert isinstance(app.screen, QueueScreen)
                    return app.screen

                def polling() -> bool:
                    return any(w.group == "queue-detail" and w.is_running for w in app.workers)

                await list_alone(first)
                screen = await open_listed()
                await wait_for(lambda: "3 ready" in shown_text(screen.query_one("#queue-title")), what="its 3 ready")
                assert "max length: 111" in shown_text(screen.query_one("#queue-settings"))
                assert any(trend.points for trend in screen.query(Trend))
                # a look a minute: the trends' 120 points reach two hours back, and the screen says so
                assert "trends over the last 2 h (120 looks)" in shown_text(screen.query_one("#queue-notice"))
                await pilot.press("escape")
                await wait_for(lambda: not polling(), what="the queue left to stop being polled")

                await list_alone(second)
                (await admin.delete(f"api/queues/%2F/{second}")).raise_for_status()
                screen = await open_listed()
                notice = lambda: shown_text(screen.query_one("#queue-notice"))  # noqa: E731
                await wait_for(lambda: "Esc goes back" in notice(), what="the second queue said gone")
                assert second in notice()
                title = shown_text(screen.query_one("#queue-title"))
                assert second in title and first not in title and "ready" not in title
                assert "111" not in shown_text(screen.query_one("#queue-settings"))
                assert "→ key" not in shown_text(screen.query_one("#queue-bindings"))
                assert not any(trend.points for trend in screen.query(Trend))
                assert screen.query_one(KeyedTable).row_count == 0
        finally:
            for name in (first, second):
                await admin.delete(f"api/queues/%2F/{name}")


async def test_enter_brings_a_queue_up_whole_in_its_first_frame(settings: Settings, rabbit) -> None:  # type: ignore[no-untyped-def]
    """A broker that answers at once: the first frame laid out after Enter already holds what applies to the
    queue's messages, never a screen saying it is asking that is redrawn a moment later."""
    name = "lab-detail-whole"
    async with httpx.AsyncClient(base_url=rabbit.management_url, auth=("guest", "guest")) as admin:
        body = {"durable": False, "auto_delete": False, "arguments": {"x-max-length": 333}}
        (await admin.put(f"api/queues/%2F/{name}", json=body)).raise_for_status()
        try:
            app = make_app(settings)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("slash")
                app.screen.query_one("#filter", Input).value = name
                await wait_for(lambda: queue_rows(app) == [name], what="the queue listed alone")
                await pilot.press("enter", "enter")  # the first visit builds the screen, kept from then on
                await wait_for(lambda: isinstance(app.screen, QueueScreen), what="the queue's detail")
                screen = app.screen
                assert isinstance(screen, QueueScreen)
                settings_shown = lambda: shown_text(screen.query_one("#queue-settings"))  # noqa: E731
                await wait_for(lambda: "max length: 333" in settings_shown(), what="its length limit")
                await pilot.press("escape")
                await wait_for(lambda: isinstance(app.screen, OverviewScreen), what="the explorer again")

                frames: list[str] = []
                screen.screen_layout_refresh_signal.subscribe(
                    app, lambda _: frames.append(settings_shown()) if screen.is_current else None, immediate=True
                )
                await pilot.press("enter")
                await wait_for(lambda: bool(frames), what="the queue's screen laid out again")
                assert "What applies to its messages" in frames[0] and "max length: 333" in frames[0], frames[0]
        finally:
            await admin.delete(f"api/queues/%2F/{name}")


async def test_the_connections_tab_names_each_client_and_what_it_negotiated(rabbit, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    named = "inventory-service worker 3"
    connection = await aio_pika.connect(rabbit.amqp_url + "?heartbeat=7", client_properties={"connection_name": named})
    async with connection:
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            table = app.screen.query_one("#connection-table", KeyedTable)
            row = lambda: next((line for line in shown_text(table).splitlines() if named in line), "")  # noqa: E731
            await wait_for(lambda: "7 s" in row(), what="the connection's row, with its client's name and heartbeat")
            assert " no " in row()  # not TLS


async def test_a_first_page_in_the_brokers_order_says_so_until_the_sorted_page_comes() -> None:
    app = frozen_broker_lab()
    async with app.run_test(size=(140, 40)):
        page = app.snapshot
        assert page is not None
        notice = app.screen.query_one("#notice")
        app.snapshot = replace(page, matching=20_000, in_broker_order=True)
        count = len(page.queues)
        await wait_for(
            lambda: f"the broker's first {count} of 20,000, unsorted: the name order follows" in shown_text(notice),
            what="the notice on the unsorted first page",
        )
        app.snapshot = replace(page, matching=20_000)
        await wait_for(
            lambda: f"the {count} of 20,000 with the lowest name" in shown_text(notice), what="the sorted page"
        )
