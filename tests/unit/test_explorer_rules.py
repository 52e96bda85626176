"""The explorer's pure parts: effective queue settings, consumer progress, tap binding copies, headers input,
message display (inert), and the poller's back-off when the management API is slow."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from amqp_lab.broker.consumer_health import ProgressWatch
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Binding, ChannelActivity, Consumer, Exchange, QueueDetail, QueueStats
from amqp_lab.broker.poller import BrokerSnapshot, ManagementPoller
from amqp_lab.broker.queue_settings import DEFAULT_CONSUMER_TIMEOUT_MS, consumer_timeout_ms, effective_settings
from amqp_lab.broker.tap import binding_copies, refusal
from amqp_lab.config import build
from amqp_lab.ui.message_view import payload_mode, render_message, render_payload
from amqp_lab.ui.screens.queue import channel_label
from amqp_lab.ui.screens.whatif import HeadersError, parse_headers
from rich.console import Console

from tests.conftest import deadline


def detail(arguments: dict[str, object], policy: dict[str, object], name: str = "") -> QueueDetail:
    stats = QueueStats.parse({"name": "q", "vhost": "/"})
    return QueueDetail(stats, True, False, False, "node", arguments, name, "", policy, ())


def test_numeric_limits_take_the_lower_value_and_other_settings_the_argument() -> None:
    shown = {
        s.label: (s.value, s.source)
        for s in effective_settings(
            detail(
                {"x-message-ttl": 1000, "x-max-length": 50, "x-overflow": "reject-publish"},
                {"message-ttl": 5000, "max-length": 10, "overflow": "drop-head", "dead-letter-exchange": "dlx"},
                "limits",
            )
        )
    }
    assert shown["message TTL"] == (1000, "argument")
    assert shown["max length"] == (10, "policy limits")
    assert shown["overflow"] == ("reject-publish", "argument")
    assert shown["dead-letter exchange"] == ("dlx", "policy limits")


def test_the_consumer_timeout_is_the_broker_default_unless_set() -> None:
    assert consumer_timeout_ms(effective_settings(detail({}, {})))[0] == DEFAULT_CONSUMER_TIMEOUT_MS
    assert consumer_timeout_ms(effective_settings(detail({"x-consumer-timeout": 60_000}, {})))[0] == 60_000
    assert effective_settings(detail({}, {})) == []


def consumer(channel: str = "ch 1", ack: bool = True) -> Consumer:
    return Consumer("q", "/", "c1", channel, prefetch=5, ack_required=ack, active=True)


def activity(unacked: int, acked: int) -> dict[str, ChannelActivity]:
    return {"ch 1": ChannelActivity("ch 1", unacked, acked, 0.0, 1)}


def test_a_channel_holding_unacked_messages_without_acking_becomes_stuck_then_nears_the_timeout() -> None:
    watch = ProgressWatch(stuck_after=10)
    timeout_s = 60.0
    assert watch.judge((consumer(),), activity(5, 100), timeout_s, now=0)[0].flags == []
    assert watch.judge((consumer(),), activity(5, 100), timeout_s, now=9)[0].flags == []
    health = watch.judge((consumer(),), activity(5, 100), timeout_s, now=12)[0]
    assert health.stuck and health.flags == ["stuck 12 s"]
    health = watch.judge((consumer(),), activity(5, 100), timeout_s, now=40)[0]
    assert health.flags == ["stuck 40 s", "consumer timeout in 20 s"]
    # One ack and the clock starts again; an empty channel is never stuck.
    assert watch.judge((consumer(),), activity(5, 101), timeout_s, now=41)[0].flags == []
    assert watch.judge((consumer(),), activity(0, 101), timeout_s, now=100)[0].flags == []


def test_auto_ack_consumers_are_never_stuck_and_closed_channels_are_forgotten() -> None:
    watch = ProgressWatch(stuck_after=1)
    watch.judge((consumer(ack=False),), activity(5, 0), 60, now=0)
    assert watch.judge((consumer(ack=False),), activity(5, 0), 60, now=50)[0].flags == []
    health = watch.judge((consumer(),), {}, 60, now=60)[0]
    assert health.activity is None and not health.stuck


def exchange(name: str, kind: str) -> Exchange:
    return Exchange(name, "/", kind, True, False, False, 0.0, 0.0)


def binding(source: str, key: str, arguments: dict[str, object] | None = None, to: str = "q") -> Binding:
    return Binding(source, "/", to, "queue", key, arguments or {})


def test_the_tap_copies_each_distinct_binding_key_and_refuses_the_default_exchange() -> None:
    topic = exchange("orders", "topic")
    bindings = [binding("orders", "a.#"), binding("orders", "a.#", to="q2"), binding("orders", "*.b")]
    bindings.append(binding("orders", "#", to="amqp-lab.tap.1234"))  # another tap's binding is not copied
    assert binding_copies(topic, bindings) == [("a.#", {}), ("*.b", {})]
    assert binding_copies(exchange("all", "fanout"), [binding("all", "")]) == [("", {})]
    assert binding_copies(exchange("all", "fanout"), []) == []  # its own binding would make messages routable
    headers = exchange("h", "headers")
    assert binding_copies(headers, [binding("h", "", {"x-match": "any", "k": 1})]) == [("", {"x-match": "any", "k": 1})]
    reason = refusal(exchange("", "direct"))
    assert reason is not None and "Peek at the destination queue" in reason
    assert "x-consistent-hash" in (refusal(exchange("hash", "x-consistent-hash")) or "")
    assert refusal(topic) is None


def test_headers_are_typed_as_amqp_tables_and_bad_input_says_how_to_write_it() -> None:
    assert parse_headers("tier=vip, x-flag=1, urgent=true") == {"tier": "vip", "x-flag": 1, "urgent": True}
    assert parse_headers('{"n": 1.5}') == {"n": 1.5}
    assert parse_headers("  ") == {}
    with pytest.raises(HeadersError, match="name=value"):
        parse_headers("tier")
    with pytest.raises(HeadersError, match="JSON object"):
        parse_headers("{nope")


def plain(renderable: object) -> str:
    console = Console(width=100, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_payloads_are_shown_inert_as_text_json_or_hex() -> None:
    hostile = b"[bold red]boom[/] \x1b[2J\x07 line\nnext"
    shown = plain(render_payload(hostile, "auto"))
    assert "[bold red]boom[/]" in shown  # markup shown, not applied
    assert "\\x1b[2J\\x07" in shown and "\x1b" not in shown  # escapes shown, not sent to the terminal
    assert "line\nnext" in shown  # line breaks kept
    assert payload_mode(b'{"a": 1}') == "json" and payload_mode(b"\xff\xfe") == "hex"
    assert '"a": 1' in plain(render_payload(b'{"a":1}', "json"))
    assert "00000000  ff fe 41" in plain(render_payload(b"\xff\xfeA", "hex"))
    message = plain(render_message({"content_type": "[i]x[/i]"}, {"h": b"\x00\x01"}, b"x" * 20_000, 90_000, "text"))
    assert "[i]x[/i]" in message and "\\x00\\x01" in message
    assert "the broker sent the first 20,000" in message and "more bytes not shown" in message


def test_channel_labels_keep_the_client_side_and_the_channel_number() -> None:
    assert channel_label("127.0.0.1:5555 -> 127.0.0.1:5672 (3)") == "127.0.0.1:5555 (3)"
    assert channel_label("odd name") == "odd name"


async def test_a_slow_management_api_is_asked_less_often_and_the_snapshot_says_so() -> None:
    """A fault a real broker will not produce on demand: answers that take 0.3 s against a 0.2 s interval."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        if request.url.path.endswith("/overview"):
            return httpx.Response(200, json={"rabbitmq_version": "3.10.8"})
        if request.url.path.endswith("/nodes"):
            return httpx.Response(200, json=[{"name": "rabbit@slow", "running": True}])
        return httpx.Response(
            200, json={"items": [], "page": 1, "page_count": 1, "total_count": 0, "filtered_count": 0}
        )

    settings = build({"amqp_url": "amqp://guest:guest@127.0.0.1:1/", "timeout": 5})
    seen: list[BrokerSnapshot] = []
    first = asyncio.Event()

    def received(snapshot: BrokerSnapshot) -> None:
        seen.append(snapshot)
        first.set()

    async with ManagementClient(settings, transport=httpx.MockTransport(slow)) as client:
        poller = ManagementPoller(client, 0.2, received)
        task = asyncio.create_task(poller.run())
        try:
            await asyncio.wait_for(first.wait(), deadline(10))
        finally:
            task.cancel()
    snapshot = seen[0]
    assert snapshot.ok and snapshot.answered_in >= 0.3
    assert snapshot.slowed_to is not None and snapshot.slowed_to >= 4 * 0.3  # four times the answer time
    assert poller.next_wait(0.01) == 0.2  # a quick answer: back to the interval
