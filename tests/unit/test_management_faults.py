"""Faults a real RabbitMQ will not produce on demand: each becomes a typed, one-line error.

(Refused connections, 401 and 404 are also checked against the real node in
tests/broker; 500s, garbage, truncation and slow answers need a fake server.)
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from amqp_lab.broker import errors
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import build

SETTINGS = build({"amqp_url": "amqp://alice:s3cret@rabbit:5672/", "timeout": 0.5})


def client_answering(handler) -> ManagementClient:  # type: ignore[no-untyped-def]
    return ManagementClient(SETTINGS, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, b'{"error":"not_authorized"}', errors.ManagementUnauthorized, r"refused user 'alice' \(401\)"),
        (403, b"{}", errors.ManagementForbidden, r"'monitoring' or 'management' tag"),
        (404, b"{}", errors.ManagementNotFound, r"management plugin enabled"),
        (500, b"boom", errors.ManagementServerError, r"HTTP 500 .*broker's log"),
        (503, b"", errors.ManagementServerError, r"HTTP 503"),
        (200, b"<html>hello</html>", errors.ManagementBadResponse, r"not JSON.*15672"),
        (200, b'{"rabbitmq_version": "3.', errors.ManagementBadResponse, r"not JSON"),
        (200, b"[1, 2]", errors.ManagementBadResponse, r"sent list for the overview"),
        (200, b'{"object_totals": {"queues": "many"}}', errors.ManagementBadResponse, r"'many'.*queues"),
    ],
)
async def test_http_faults_become_typed_errors(status: int, body: bytes, error: type, message: str) -> None:
    async with client_answering(lambda request: httpx.Response(status, content=body)) as client:
        with pytest.raises(error, match=message) as caught:
            await client.overview()
    assert "s3cret" not in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_server_that_hangs_times_out() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with client_answering(hang) as client:
        with pytest.raises(errors.ManagementTimeout, match=r"did not answer within 0.5 s"):
            await client.overview()


async def test_a_slow_drip_is_cut_off_by_the_overall_deadline() -> None:
    async def drip():  # type: ignore[no-untyped-def]
        yield b'{"items": ['
        while True:
            await asyncio.sleep(0.1)
            yield b" "

    async with client_answering(lambda request: httpx.Response(200, content=drip())) as client:
        with pytest.raises(errors.ManagementTimeout):
            await client.queue_page()


async def test_a_refused_connection_says_where_to_look() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async with client_answering(refuse) as client:
        with pytest.raises(errors.ManagementUnreachable, match=r"nothing answers at http://alice:\*\*\*\*@rabbit"):
            await client.overview()


async def test_queue_pages_are_requested_with_columns_and_a_capped_page_size() -> None:
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        page = int(request.url.params["page"])
        items = [{"name": f"q{page}", "vhost": "/", "messages_ready": page}]
        return httpx.Response(
            200,
            json={"items": items, "page": page, "page_count": 3, "total_count": 3, "filtered_count": 3},
        )

    async with client_answering(answer) as client:
        queues, matching = await client.queues(vhost="/", name="q")
    assert [q.name for q in queues] == ["q1", "q2", "q3"]
    assert matching == 3
    assert seen[0].raw_path.split(b"?")[0] == b"/api/queues/%2F"
    assert seen[0].params["page_size"] == "500"
    assert "messages_ready" in seen[0].params["columns"]
    assert seen[0].params["use_regex"] == "true"


async def test_a_page_of_the_wrong_shape_is_rejected() -> None:
    body = json.dumps({"items": {"not": "a list"}, "page": 1, "page_count": 1})
    async with client_answering(lambda request: httpx.Response(200, content=body)) as client:
        with pytest.raises(errors.ManagementBadResponse, match="malformed list for queues"):
            await client.queue_page()


async def test_an_endless_page_is_cut_off_at_the_size_limit() -> None:
    sent = 0

    async def flood():  # type: ignore[no-untyped-def]
        nonlocal sent
        yield b'{"items": ['
        while True:  # a megabyte at a time, for ever
            sent += 1
            yield b'{"name": "q"},' * 70_000

    async with client_answering(lambda request: httpx.Response(200, content=flood())) as client:
        with pytest.raises(errors.ManagementBadResponse, match=r"more than 32 MB .*not a management API answer"):
            await client.queue_page()
    assert sent < 40  # it stopped reading soon after the limit, not at the end of the stream


async def test_a_passing_server_error_on_a_read_is_asked_again() -> None:
    """A loaded RabbitMQ 4.0 answered /api/exchanges with HTTP 500 once: the read is asked again, and the user sees
    the answer, not the fault."""
    answers = [httpx.Response(500, content=b"busy"), httpx.Response(200, json=[])]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return answers.pop(0)

    async with client_answering(handler) as client:
        assert await client.exchanges("/") == []
    assert len(asked) == 2 and asked[0] == asked[1]


async def test_a_change_is_never_sent_twice_after_a_server_error() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.method)
        return httpx.Response(500, content=b"busy")

    async with client_answering(handler) as client:
        with pytest.raises(errors.ManagementServerError):
            await client.purge("/", "q")
    assert asked == ["DELETE"]
