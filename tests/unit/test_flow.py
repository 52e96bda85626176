"""The flow diagram and the live screen's memory, from plans and snapshots made here (no broker)."""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.engine.events import Event, EventKind
from amqp_lab.engine.ledger import LedgerCounts
from amqp_lab.engine.placement import NodeState, QueuePlace
from amqp_lab.engine.snapshot import ClientStats, QueueDepth, RunSnapshot
from amqp_lab.scenario.files import from_text, load
from amqp_lab.scenario.patterns import build
from amqp_lab.ui.flow import render_flow
from amqp_lab.ui.history import STALL_AFTER, RunHistory
from rich.console import Console

PREFIX = "lab.t1."


def drawn(drawing: tuple[object, int], width: int = 130) -> str:
    console = Console(width=width, record=True, color_system=None)
    renderable, lines = drawing
    console.print(renderable)
    text = console.export_text()
    assert len(text.splitlines()) == lines  # the count the live screen uses to skip layout passes
    return text


def snapshot(**changes: object) -> RunSnapshot:
    base = RunSnapshot(
        run_id="t1",
        title="workers",
        pattern="workers",
        state="running",
        elapsed=5.0,
        duration=10.0,
        ledger=LedgerCounts(published=100, acked=90),
        counters={},
        rates={"published": 20.0, "delivered": 20.0, "acked": 20.0},
        latency={},
        latency_total={},
        clients=(
            ClientStats("producer-1", "producer", "running", 100, 0, 20.0, 0),
            ClientStats("worker-1", "worker", "running", 0, 50, 10.0, 2),
            ClientStats("worker-2", "worker", "hung", 0, 40, 0.0, 10),
        ),
        queues=(QueueDepth(f"{PREFIX}tasks", 37, 12, 2, in_rate=20.0, out_rate=10.0),),
        events=(),
    )
    return replace(base, **changes)


def test_each_preset_draws_its_producers_exchange_queues_and_consumers() -> None:
    expected = {
        "rpc": ["requester ×2", "rpc (direct)", "compute", "rpc.requests", "handler ×2", "reply queues"],
        "map-reduce": ["submitter-1", "jobs (fanout)", "shard.1", "shard.3", "shard-2", "results", "reducer"],
        "workers": ["producer-1", "tasks (direct)", "task", "worker ×3"],
        "pub-sub": ["publisher ×2", "events (topic)", "*.orders.*", "subscriber.eu-audit", "everything"],
        "custom": ["shop", "orders (topic)", "order.paid", "↪ unroutable", "unrouted (fanout)", "audit"],
    }
    for name, words in expected.items():
        plan = build(load(name), PREFIX)
        for wide in (True, False):
            text = drawn(render_flow(plan, None, wide=wide), 130 if wide else 90)
            assert PREFIX not in text  # run-scoped names are shown without the prefix
            for word in words:
                assert word in text, f"{name} ({'wide' if wide else 'narrow'}): {word!r} missing from\n{text}"


def test_live_rates_depths_and_states_show_on_the_lanes() -> None:
    plan = build(load("workers"), PREFIX)
    text = drawn(render_flow(plan, snapshot(), scale=49))
    lane = next(line for line in text.splitlines() if "tasks (direct)" in line)
    assert "20/s" in lane  # producer and inbound rates
    assert "37│12" in lane  # ready│unacked
    assert "10/s" in lane  # acked from the queue
    assert "worker ×2 (1 hung)" in lane  # workers grouped by role, a hung one called out


def test_returns_drops_and_dead_letters_get_their_own_line() -> None:
    plan = build(load("rpc", ["rpc.ttl0_dead_letter=true"]), PREFIX)
    ledger = LedgerCounts(published=50, returned=4, unroutable=2, dead_lettered=7, expired=7)
    text = drawn(render_flow(plan, snapshot(ledger=ledger, pattern="rpc", clients=(), queues=())))
    assert "↩ 4 returned" in text
    assert "✗ 2 dropped" in text
    assert "☠ 7 dead-lettered (7 expired)" in text
    assert "☠ dead letters" in text and "rpc.unhandled (fanout)" in text


def test_many_subscribers_fold_into_one_line() -> None:
    subscribers = ", ".join(f's{i} = ["#"]' for i in range(20))
    plan = build(load("pub-sub", [f"pub-sub.subscribers={{{subscribers}}}"]), PREFIX)
    text = drawn(render_flow(plan, None))
    assert "14 more queues" in text
    assert len(text.splitlines()) < 12


def test_history_keeps_new_events_once_and_spots_a_stalled_consumer() -> None:
    history = RunHistory()
    first = Event(0.5, EventKind.INFO, "run", "started", 1)
    second = Event(1.0, EventKind.TIMEOUT, "requester-1", "request 1 timed out", 2)
    assert history.add(snapshot(events=(first,)))
    assert history.add(snapshot(events=(first, second)))
    assert not history.add(snapshot(events=(first, second)))
    assert [e.seq for e in history.events] == [1, 2]

    waiting = ClientStats("requester-1", "requester", "running", 10, 3, 1.0, 7)  # requests in flight, no replies
    history.add(snapshot(elapsed=5.0, clients=(*snapshot().clients, waiting)))
    history.add(snapshot(elapsed=5.0 + STALL_AFTER - 0.5, clients=(*snapshot().clients, waiting)))
    assert history.stalled == set()
    history.add(snapshot(elapsed=5.0 + STALL_AFTER, clients=(*snapshot().clients, waiting)))
    assert history.stalled == {"worker-1", "worker-2"}  # both hold unacked and took nothing new; not the requester
    moving = snapshot(elapsed=6.0 + STALL_AFTER)
    moving = replace(moving, clients=(replace(moving.clients[1], received=51), moving.clients[2]))
    history.add(moving)
    assert history.stalled == {"worker-2"}

    history.sample(snapshot())
    assert history.series["published/s"].points[-1] == 20.0
    assert history.series[f"queue {PREFIX}tasks"].points[-1] == 49


def test_a_queue_shows_its_type_and_in_a_cluster_its_leader_and_replicas_online() -> None:
    plan = build(load("workers"), PREFIX)
    quorum = QueuePlace("quorum", "running", "lab-3", replicas=3, replicas_down=1)
    three = tuple(NodeState(f"lab-{n}", "down" if n == 2 else "running") for n in (1, 2, 3))
    one_node = replace(snapshot().queues[0], place=quorum)
    assert "tasks quorum @lab-3 2/3" in drawn(render_flow(plan, snapshot(queues=(one_node,), nodes=three)))
    assert "tasks quorum ▕" in drawn(render_flow(plan, snapshot(queues=(one_node,), nodes=three[:1])))
    classic_down = replace(one_node, place=QueuePlace("classic", "down", "lab-2"))
    assert "tasks @lab-2 DOWN" in drawn(render_flow(plan, snapshot(queues=(classic_down,), nodes=three)))


async def test_a_second_without_a_latency_sample_reads_no_sample_not_zero() -> None:
    """A hung handler times nothing: its second has no p50, and a 0 beside the sparkline read as perfect latency."""
    from amqp_lab.engine.metrics import Percentiles
    from amqp_lab.ui.widgets.trends import Trends
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    history = RunHistory()
    history.sample(snapshot(latency={"delivery": Percentiles(count=40, p50=3.5, p95=7.5, p99=9.5, max=12.0)}))

    class Screen(App[None]):
        def compose(self) -> ComposeResult:
            yield Trends(PREFIX)

    async with Screen().run_test() as pilot:
        trends = pilot.app.query_one(Trends)

        def shown() -> dict[str, str]:
            values = trends.query(".trend-value").results(Static)
            labels = trends.query(".trend-label").results(Static)
            return {str(label.render()): str(value.render()) for label, value in zip(labels, values, strict=True)}

        trends.show(history)
        await pilot.pause()
        assert shown()["p50 ms"] == "3.5" and shown()["p99 ms"] == "9.5"
        history.sample(snapshot(latency={"delivery": Percentiles()}))
        trends.show(history)
        await pilot.pause()
        assert shown()["p50 ms"] == shown()["p95 ms"] == shown()["p99 ms"] == "no sample"
        assert shown()["published/s"] == "20"


def test_headers_bindings_are_labelled_by_what_they_match() -> None:
    """Every headers binding read "(any)", even x-match all: the lesson of a headers exchange is in that word."""
    text = """
pattern = "custom"
[[custom.exchanges]]
name = "by-region"
type = "headers"
[[custom.queues]]
name = "eu-orders"
[[custom.queues]]
name = "eu-or-orders"
[[custom.queues]]
name = "everything"
[[custom.bindings]]
source = "by-region"
destination = "eu-orders"
arguments = {x-match = "all", region = "eu", type = "order"}
[[custom.bindings]]
source = "by-region"
destination = "eu-or-orders"
arguments = {x-match = "any", region = "eu", type = "order"}
[[custom.bindings]]
source = "by-region"
destination = "everything"
[[custom.publishers]]
name = "shop"
exchange = "by-region"
headers = {region = "eu"}
"""
    plan = build(from_text(text, "headers.toml"), PREFIX)
    lanes = drawn(render_flow(plan, None, wide=True), 160).splitlines()

    def lane(queue: str) -> str:
        return next(line for line in lanes if f" {queue} " in line)

    assert "all: region=eu, type=order" in lane("eu-orders")
    assert "any: region=eu, type=order" in lane("eu-or-orders")
    assert "all: every message" in lane("everything")
    assert "(any)" not in "\n".join(lanes)


def test_the_reply_edge_moves_with_the_answers_received_not_the_requests_sent() -> None:
    """A hung handler answers nothing: its reply edge showed the requesters' 10 requests a second."""
    plan = build(load("rpc", ["rpc.requesters=1", "rpc.handlers=1"]), PREFIX)
    requester = ClientStats("requester-1", "requester", "running", 50, 20, 10.0, 5, received_rate=0.0)
    handler = ClientStats("handler-1", "handler", "hung", 20, 25, 0.0, 5)
    hung = drawn(render_flow(plan, snapshot(clients=(requester, handler)), scale=49))
    assert "replies 0/s" in hung and "replies 10/s" not in hung
    answering = drawn(render_flow(plan, snapshot(clients=(replace(requester, received_rate=8.0), handler)), scale=49))
    assert "replies 8.0/s" in answering
