"""A message as a person reads it: properties, headers, and the payload as text, pretty JSON or hex.

Everything comes from the broker, so everything is shown inert: markup and
escape sequences in a payload are displayed, never interpreted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.text import Text

from amqp_lab.ui.text import inert, inert_lines

MODES = ("auto", "text", "json", "hex")
SHOWN_BYTES = 16 * 1024  # a payload larger than this is cut for display, and says so
HEX_WIDTH = 16


def payload_mode(body: bytes) -> str:
    """What auto shows: JSON when it parses, text when it decodes, hex otherwise."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return "hex"
    try:
        json.loads(text)
    except ValueError:
        return "text"
    return "json"


def render_payload(body: bytes, mode: str) -> Text:
    mode = payload_mode(body) if mode == "auto" else mode
    shown = body[:SHOWN_BYTES]
    if mode == "hex":
        lines = []
        for offset in range(0, len(shown), HEX_WIDTH):
            chunk = shown[offset : offset + HEX_WIDTH]
            hexes = " ".join(f"{b:02x}" for b in chunk)
            chars = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{offset:08x}  {hexes:<{HEX_WIDTH * 3 - 1}}  |{chars}|")
        text = inert_lines("\n".join(lines))
    elif mode == "json":
        try:
            text = inert_lines(json.dumps(json.loads(shown.decode()), indent=2, ensure_ascii=False))
        except ValueError:
            text = inert_lines(shown.decode(errors="replace"))
            text.append("\n(not valid JSON: shown as text)", style="italic")
    else:
        text = inert_lines(shown.decode(errors="replace"))
    if len(body) > SHOWN_BYTES:
        text.append(f"\n… {len(body) - SHOWN_BYTES:,} more bytes not shown", style="italic")
    return text


def _value(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex() if not value.isascii() else value.decode()
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def render_fields(title: str, fields: Mapping[str, Any]) -> Text:
    text = Text(title + "\n", style="bold")
    if not fields:
        text.append("  (none)\n", style="dim")
    for name, value in fields.items():
        text.append("  ")
        text.append_text(inert(str(name), "bold"))
        text.append(": ")
        text.append_text(inert(_value(value)))
        text.append("\n")
    return text


def render_message(
    properties: Mapping[str, Any],
    headers: Mapping[str, Any],
    body: bytes,
    size: int,
    mode: str,
    heading: Text | None = None,
) -> Group:
    shown_mode = payload_mode(body) if mode == "auto" else mode
    label = f"payload, {size:,} bytes, as {shown_mode}" + (" (auto)" if mode == "auto" else "")
    if size > len(body):
        label += f"; the broker sent the first {len(body):,}"
    return Group(
        heading or Text(),
        render_fields("properties", {k: v for k, v in properties.items() if k != "headers"}),
        render_fields("headers", headers),
        Text(label, style="bold"),
        render_payload(body, mode),
    )


def preview(body: bytes, width: int = 60) -> Text:
    """One line of the payload for a table cell."""
    text = body[: width * 4].decode(errors="replace").replace("\n", " ")
    return inert(text[:width] + ("…" if len(text) > width or len(body) > width * 4 else ""))
