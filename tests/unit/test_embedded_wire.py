"""The embedded broker's wire layer: the traps of pamqp as a server codec, coded around."""

from __future__ import annotations

import asyncio
import struct

import aio_pika
import aiormq.exceptions
import pytest
from amqp_lab.embedded.server import Broker, BrokerOptions
from amqp_lab.embedded.wire import (
    BODY,
    HEADER,
    METHOD,
    PROTOCOL_HEADER,
    FrameError,
    FrameReader,
    content,
    decode_header,
    decode_method,
    encode_header_payload,
    encode_method,
    frame,
)
from hypothesis import given
from hypothesis import strategies as st
from pamqp.commands import Basic, Channel, Confirm, Connection, Queue

from tests.conftest import deadline


def test_frames_are_cut_however_the_bytes_arrive() -> None:
    frames = frame(METHOD, 1, b"abc") + frame(BODY, 2, b"") + frame(HEADER, 3, b"x" * 300)
    for cut in range(1, len(frames)):
        reader = FrameReader(131072)
        got = reader.feed(frames[:cut]) + reader.feed(frames[cut:])
        assert got == [(METHOD, 1, b"abc"), (BODY, 2, b""), (HEADER, 3, b"x" * 300)]


@given(st.lists(st.binary(max_size=40), max_size=6), st.lists(st.integers(1, 30), max_size=20))
def test_any_split_yields_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(BODY, n, p) for n, p in enumerate(payloads))
    reader, got, start = FrameReader(131072), [], 0
    for size in [*cuts, len(stream)]:
        got += reader.feed(stream[start : start + size])
        start += size
    assert got == [(BODY, n, p) for n, p in enumerate(payloads)]


def test_a_wrong_frame_end_byte_is_a_frame_error() -> None:
    broken = frame(METHOD, 1, b"abc")[:-1] + b"\x00"
    with pytest.raises(FrameError, match="frame end byte"):
        FrameReader(131072).feed(broken)


def test_a_frame_over_frame_max_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="over the negotiated frame_max"):
        FrameReader(4096).feed(struct.pack(">BHI", BODY, 1, 5000))


def test_names_rabbitmq_accepts_are_encoded_though_pamqp_would_refuse_them() -> None:
    name = "café ☕ orders/eu (v2)" + "é" * 100  # UTF-8, under 255 bytes
    reply = Queue.DeclareOk(queue="x", message_count=3, consumer_count=1)
    reply.queue = name
    with pytest.raises(ValueError, match="Invalid value for queue"):
        reply.marshal()  # what pamqp alone would do
    (kind, channel, payload), = FrameReader(131072).feed(encode_method(7, reply))  # fmt: skip
    decoded = decode_method(payload)
    assert (kind, channel) == (METHOD, 7)
    assert isinstance(decoded, Queue.DeclareOk)
    assert (decoded.queue, decoded.message_count, decoded.consumer_count) == (name, 3, 1)


def test_bodies_are_split_at_frame_max_and_headers_forwarded_byte_for_byte() -> None:
    properties = Basic.Properties(headers={"n": 1, "big": 2**40}, content_type="text/plain")
    header = encode_header_payload(10_000, properties)
    frames = FrameReader(131072).feed(content(5, header, b"y" * 10_000, frame_max=4096))
    assert frames[0] == (HEADER, 5, header)
    bodies = [payload for kind, _, payload in frames[1:] if kind == BODY]
    assert all(len(b) <= 4096 - 8 for b in bodies) and b"".join(bodies) == b"y" * 10_000
    size, decoded = decode_header(header)
    assert size == 10_000 and decoded.headers == {"n": 1, "big": 2**40}


async def test_a_wrong_protocol_header_gets_ours_and_the_door() -> None:
    broker = Broker(BrokerOptions(amqp_port=0, management_port=0))
    await broker.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.amqp_port)
        writer.write(b"AMQP\x00\x00\x08\x00")  # 0-8
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), deadline(5)) == PROTOCOL_HEADER
        assert await asyncio.wait_for(reader.read(100), deadline(5)) == b""  # closed
        writer.close()
    finally:
        await broker.stop()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"x-delivery-limit": 3}, "delivery limits"),
        ({"x-queue-type": "stream"}, "stream queues"),
        ({"x-max-priority": 10}, "priority queues"),
        ({"x-single-active-consumer": True}, "single active consumer"),
    ],
)
async def test_what_it_does_not_support_is_refused_saying_so(arguments: dict[str, object], named: str) -> None:
    broker = Broker(BrokerOptions(amqp_port=0, management_port=0))
    await broker.start()
    try:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/")
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match=f"{named}.*embedded broker"):
            await channel.declare_queue("q", durable=True, arguments=arguments)
        await connection.close()
    finally:
        await broker.stop()


async def test_a_return_goes_before_its_confirm_on_the_wire() -> None:
    """aio-pika defers a multiple ack a loop turn, which hides the order; a raw client sees it."""
    broker = Broker(BrokerOptions(amqp_port=0, management_port=0))
    await broker.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.amqp_port)
    frames = FrameReader(131072)
    received: list[object] = []

    async def next_method() -> object:
        while not received:
            data = await asyncio.wait_for(reader.read(65536), deadline(5))
            assert data, "the broker closed the connection"
            received.extend(decode_method(p) for kind, _, p in frames.feed(data) if kind == METHOD)
        return received.pop(0)

    try:
        writer.write(PROTOCOL_HEADER)
        assert isinstance(await next_method(), Connection.Start)
        login = Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest")
        writer.write(encode_method(0, login))
        assert isinstance(await next_method(), Connection.Tune)
        writer.write(encode_method(0, Connection.TuneOk(frame_max=131072)) + encode_method(0, Connection.Open()))
        assert isinstance(await next_method(), Connection.OpenOk)
        writer.write(encode_method(1, Channel.Open()) + encode_method(1, Confirm.Select()))
        assert [type(await next_method()) for _ in range(2)] == [Channel.OpenOk, Confirm.SelectOk]
        publish = Basic.Publish(exchange="amq.direct", routing_key="nobody", mandatory=True)
        writer.write(encode_method(1, publish) + content(1, encode_header_payload(1, Basic.Properties()), b"x", 4096))
        assert [type(await next_method()) for _ in range(2)] == [Basic.Return, Basic.Ack]
    finally:
        writer.close()
        await broker.stop()
