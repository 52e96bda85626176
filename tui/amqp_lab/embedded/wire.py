"""AMQP 0-9-1 on the wire for the embedded broker: pamqp's codec, with its traps as a server coded around.

- Frames are cut from the stream here: pamqp assumes whole frames and does not check the frame-end byte.
- The protocol header is compared byte for byte.
- pamqp validates names on marshal against a pattern narrower than RabbitMQ's (UTF-8 up to 255 bytes),
  so methods are encoded here with pamqp's primitives and no validation.
- A content header is forwarded as the client sent it: decoding and re-encoding a field table changes the
  wire types of its values.
- Bodies are split at the connection's frame_max.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands, encode
from pamqp.base import Frame as Method
from pamqp.commands import Basic
from pamqp.header import ContentHeader

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
METHOD, HEADER, BODY, HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
FRAME_OVERHEAD = 8  # type, channel, size before the payload; the end byte after it
HEARTBEAT_FRAME = struct.pack(">BHIB", HEARTBEAT, 0, 0, FRAME_END)
_FRAME_START = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">HH")
_HEADER_START = struct.Struct(">HHQ")
_DELIVER_ID = _METHOD_ID.pack(60, 60)
_DELIVERY = struct.Struct(">QB")


class FrameError(Exception):
    """The byte stream is not AMQP frames: the connection must close with 501 FRAME_ERROR."""


class FrameReader:
    """Cuts whole frames out of the bytes as they arrive, however they are split."""

    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """(frame type, channel, payload) for every whole frame received so far."""
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        end = len(buffer)
        while end - start >= 7:
            kind, channel, size = _FRAME_START.unpack_from(buffer, start)
            if size + FRAME_OVERHEAD > self.frame_max:
                raise FrameError(f"frame size {size} is over the negotiated frame_max {self.frame_max}")
            stop = start + 7 + size
            if stop >= end:
                break
            if buffer[stop] != FRAME_END:
                raise FrameError(f"frame end byte {buffer[stop]:#04x} instead of 0xce")
            frames.append((kind, channel, bytes(buffer[start + 7 : stop])))
            start = stop + 1
        del buffer[:start]
        return frames


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_START.pack(kind, channel, len(payload)) + payload + b"\xce"


def decode_method(payload: bytes) -> Method:
    """The method in a method frame's payload (pamqp does not validate names when decoding)."""
    class_id, method_id = _METHOD_ID.unpack_from(payload)
    method_class = commands.INDEX_MAPPING.get(class_id << 16 | method_id)
    if method_class is None:
        raise FrameError(f"unknown method {class_id}.{method_id}")
    method: Method = method_class()
    try:
        method.unmarshal(payload[4:])
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed {method.name}: {exc}") from None
    return method


def unchecked(method_class: type[Method], **values: Any) -> Method:
    """A method holding names RabbitMQ accepts: pamqp checks them on construction against a narrower rule, so
    they are set after it."""
    method: Method = method_class()
    for name, value in values.items():
        setattr(method, name, value)
    return method


def encode_method(channel: int, method: Method) -> bytes:
    """pamqp's Frame.marshal, without the name validation RabbitMQ does not do."""
    output = [_METHOD_ID.pack(method.index >> 16, method.index & 0xFFFF)]
    bits, offset, in_bits = 0, 0, False
    for argument in method.__slots__:
        kind = method.amqp_type(argument)
        value = getattr(method, argument, 0)
        if kind == "bit":
            if not in_bits:
                bits, offset, in_bits = 0, 0, True
            bits = encode.bit(value, bits, offset)
            offset += 1
            if offset == 8:
                output.append(encode.octet(bits))
                in_bits = False
            continue
        if in_bits:
            output.append(encode.octet(bits))
            in_bits = False
        output.append(encode.by_type(value, kind))
    if in_bits:
        output.append(encode.octet(bits))
    return frame(METHOD, channel, b"".join(output))


def _short(text: str) -> bytes:
    data = text.encode()
    return bytes((len(data),)) + data


def deliver_frame(
    channel: int, consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str, key: str
) -> bytes:
    """Basic.Deliver, the busiest method, packed directly."""
    payload = b"".join(
        (
            _DELIVER_ID,
            _short(consumer_tag),
            _DELIVERY.pack(delivery_tag, redelivered),
            _short(exchange),
            _short(key),
        )
    )
    return frame(METHOD, channel, payload)


def decode_header(payload: bytes) -> tuple[int, Basic.Properties]:
    """Body size and properties of a content header frame's payload."""
    header = ContentHeader()
    try:
        header.unmarshal(payload)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed content header: {exc}") from None
    return header.body_size, header.properties


def encode_header_payload(body_size: int, properties: Basic.Properties) -> bytes:
    """A content header payload for properties the broker changed (dead-lettering adds x-death)."""
    return _HEADER_START.pack(Basic.frame_id, 0, body_size) + properties.marshal()


def content(channel: int, header_payload: bytes, body: bytes, frame_max: int) -> bytes:
    """A content header frame (as received) and the body cut into frames that fit frame_max."""
    parts = [frame(HEADER, channel, header_payload)]
    room = frame_max - FRAME_OVERHEAD
    for start in range(0, len(body), room):
        parts.append(frame(BODY, channel, body[start : start + room]))
    return b"".join(parts)
