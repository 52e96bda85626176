#!/usr/bin/env python3
"""Regenerate screenshots/*.svg from the real app against a private RabbitMQ node.

    .venv/bin/python scripts/screenshots.py

Starts its own node, declares a small shop's queues, keeps traffic flowing
through them while it takes the pictures of the overview; then the explorer's
screens on the seeded shop of seed_broker.py (exchanges, a queue up close,
peek, tap, route what-if); then the builder, a real run of each pattern on
the live screen and a workshop step; then, at 120x36, the presenter's: a workshop step,
projector mode and the audience's watch; then stops the node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aio_pika
import rabbitmq_node
import seed_broker
from amqp_lab.broker.connection import ConnectionState
from amqp_lab.config import build
from amqp_lab.engine.recording import Recording, read
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.replay_app import ReplayApp
from amqp_lab.ui.screens.queue import QueueScreen
from amqp_lab.ui.screens.replay import ReplayScreen
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.screens.tap import TapScreen
from amqp_lab.ui.widgets.exchange_tree import ExchangeTree
from amqp_lab.ui.widgets.keyed_table import KeyedTable
from amqp_lab.workshop import experiment
from textual.widgets import Input, Static

OUT = Path(__file__).resolve().parents[1] / "screenshots"
SIZE = (140, 40)
PROJECTOR = (120, 36)  # a projector at a readable font: the presenter's screenshots
QUEUES = {  # name: messages waiting before traffic starts
    "orders.created": 1200,
    "orders.paid": 340,
    "emails.outbound": 75,
    "invoices.pdf": 12,
    "audit.log": 5000,
    "search.reindex": 0,
}


async def traffic(url: str, stop: asyncio.Event) -> None:
    """Publish into every queue and consume from two, so rates show."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name, backlog in QUEUES.items():
            await channel.declare_queue(name, durable=True)
            for _ in range(backlog):
                await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=name)
        for name in ("orders.paid", "search.reindex"):
            queue = await channel.get_queue(name)
            await queue.consume(lambda message: message.ack(), no_ack=False)
        while not stop.is_set():
            for name in ("orders.created", "orders.paid", "search.reindex"):
                await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)


async def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not show live data in time")
        await asyncio.sleep(0.1)


def live(app: AmqpLabApp) -> bool:
    """Connected, with every queue listed and rates flowing."""
    snapshot = app.snapshot
    return (
        app.amqp_status is not None
        and app.amqp_status.state is ConnectionState.CONNECTED
        and snapshot is not None
        and snapshot.overview is not None
        and snapshot.overview.rates.publish > 0
        and len(snapshot.queues) == len(QUEUES)
        and any(q.rates.publish > 0 for q in snapshot.queues)
    )


async def shoot_theme(app: AmqpLabApp, suffix: str, every_screen: bool) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: live(app))
        await pilot.press("s", "s", "s")  # sort by ready, largest first
        app.clear_notifications()
        await pilot.pause()
        await until(lambda: live(app))
        app.save_screenshot(str(OUT / f"overview{suffix}.svg"))
        if not every_screen:
            return
        await pilot.press("slash", *"orders")
        await until(lambda: app.snapshot is not None and app.snapshot.name_filter == "orders")
        await pilot.pause(0.5)
        app.save_screenshot(str(OUT / "filter.svg"))
        await pilot.press("escape", "question_mark")
        await pilot.pause(0.5)
        app.save_screenshot(str(OUT / "help.svg"))
        await pilot.press("escape", "c")
        await pilot.pause(0.5)
        app.save_screenshot(str(OUT / "connection.svg"))


async def shoot_explorer(settings: object, url: str) -> None:
    """The explorer on a busy shop: its exchanges, a queue with a stuck consumer, peek, tap and what-if."""
    stop = asyncio.Event()
    shop = asyncio.create_task(seed_broker.shop(url, 20, stop))
    app = make_app(settings)  # type: ignore[arg-type]
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(
                lambda: app.snapshot is not None and any(q.name.startswith("seed.") for q in app.snapshot.queues)
            )
            await pilot.press("2")
            tree = app.screen.query_one(ExchangeTree)
            await until(lambda: any(n.data.exchange.name == seed_broker.SHOP for n in tree.root.children if n.data))
            node = next(n for n in tree.root.children if n.data and n.data.exchange.name == seed_broker.SHOP)
            tree.focus()
            tree.move_cursor(node)
            node.expand()
            await until(lambda: len(node.children) == 2)
            app.clear_notifications()
            await pilot.pause(0.5)
            app.save_screenshot(str(OUT / "exchanges.svg"))
            await pilot.press("k")
            await pilot.pause(0.5)
            app.screen.query_one("#whatif-key", Input).value = "orders.eu.new"
            await pilot.pause(1.0)
            app.save_screenshot(str(OUT / "whatif.svg"))
            await pilot.press("escape", "t")
            await until(lambda: isinstance(app.screen, TapScreen) and app.screen.drawn >= 30)
            await pilot.pause(0.6)
            app.save_screenshot(str(OUT / "tap.svg"))
            await pilot.press("escape")
            await pilot.pause(0.5)
            await app.push_screen(QueueScreen("/", f"{seed_broker.SHOP}.all"))
            consumers = app.screen.query_one(KeyedTable)
            await until(lambda: consumers.row_count > 0 and "stuck" in str(consumers.get_row_at(0)[1]), timeout=90)
            await until(lambda: len(app.screen.series["ready"]) >= 20, timeout=90)
            app.clear_notifications()
            await pilot.pause(0.5)
            app.save_screenshot(str(OUT / "queue-detail.svg"))
            await pilot.press("g")
            await pilot.pause(2.0)
            app.save_screenshot(str(OUT / "peek.svg"))
    finally:
        stop.set()
        await shop


async def shoot_lab(settings: object) -> None:
    """The builder, a real run of each pattern on the live screen, and a workshop step."""
    app = make_app(settings, builder="pub-sub")  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(1.0)
        app.clear_notifications()
        await pilot.pause(0.5)
        app.save_screenshot(str(OUT / "builder.svg"))
        for pattern in ("rpc", "map-reduce", "workers", "pub-sub"):
            await app.push_screen(LiveRunScreen(load(pattern, ["duration=60s"])))
            await until(lambda: app.run_latest is not None and app.run_latest.elapsed > 8)
            app.clear_notifications()
            await pilot.pause(1.2)  # every part of the screen redrawn once more
            app.save_screenshot(str(OUT / f"run-{pattern}.svg"))
            await app.end_run()
            app.pop_screen()

    found = experiment("handler-hangs")
    app = make_app(settings, experiment=found)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as folder:
        app.export_dir = Path(folder)  # a workshop records its run: replayed below
        async with app.run_test(size=SIZE) as pilot:
            await until(lambda: app.run_latest is not None and app.run_latest.elapsed > 4)
            await pilot.press("H", "n")  # held: the step with the hung handler stays on screen
            await until(lambda: app.run_latest is not None and app.run_latest.counters.get("timeouts", 0) > 20)
            app.clear_notifications()
            await pilot.pause(1.2)
            app.save_screenshot(str(OUT / "workshop.svg"))
            await app.end_run()
        recorded = await asyncio.to_thread(lambda: read(next(Path(folder).glob("*.rec.gz"))))
        await shoot_replay(recorded)


async def shoot_presenter(settings: object) -> None:
    """At 120x36: a workshop step waiting on its condition, projector mode, and the audience's watch screen."""
    app = make_app(settings, experiment=experiment("handler-hangs"))  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as folder:
        app.export_dir = Path(folder)
        async with app.run_test(size=PROJECTOR) as pilot:

            def counting() -> bool:  # step 2, its condition counting the timeouts
                waiting = app.screen.query("#workshop-advance")
                return bool(waiting) and " so far" in str(waiting.first(Static).content)

            await until(counting)
            await pilot.press("H")  # held there, for the picture
            app.clear_notifications()
            await pilot.pause(1.2)
            app.save_screenshot(str(OUT / "presenter-workshop.svg"))
            await pilot.press("H")
            await pilot.press("P")
            await pilot.pause(1.5)
            app.clear_notifications()
            await pilot.pause(0.3)
            app.save_screenshot(str(OUT / "presenter-projector.svg"))
            watcher = make_app(replace(settings, read_only=True), watch="")  # type: ignore[type-var]
            async with watcher.run_test(size=PROJECTOR) as watching:
                await until(lambda: isinstance(watcher.screen, LiveRunScreen) and watcher.screen.latest is not None)
                await watching.pause(2.5)  # every part drawn, a few trend points
                watcher.clear_notifications()
                await watching.pause(0.3)
                watcher.save_screenshot(str(OUT / "presenter-watch.svg"))
            await app.end_run()


async def shoot_replay(recording: Recording) -> None:
    """The workshop's run replayed, paused on its first timeout."""
    replay = ReplayApp(replace(recording, path=Path("handler-hangs.rec.gz")))
    async with replay.run_test(size=SIZE) as pilot:
        await until(lambda: isinstance(replay.screen, ReplayScreen))
        await pilot.press("space")
        while replay.player.kind not in (None, "timeout"):
            await pilot.press("k")
        await pilot.press("n")
        await pilot.pause(1.5)
        replay.save_screenshot(str(OUT / "replay.svg"))


async def shoot(node: rabbitmq_node.PrivateNode) -> None:
    stop = asyncio.Event()
    producer = asyncio.create_task(traffic(node.amqp_url, stop))
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "refresh": 1})
    try:
        await shoot_theme(make_app(settings), "", every_screen=True)
        await shoot_theme(make_app(settings, theme="lab-light"), "-light", every_screen=False)
        await shoot_explorer(settings, node.amqp_url)
        await shoot_lab(settings)
        await shoot_presenter(settings)
    finally:
        stop.set()
        await producer


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    OUT.mkdir(exist_ok=True)
    node = rabbitmq_node.start("amqplab-shots@localhost")
    try:
        asyncio.run(shoot(node))
    finally:
        rabbitmq_node.stop(node)
    print("wrote", ", ".join(sorted(p.name for p in OUT.glob("*.svg"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
