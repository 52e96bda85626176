"""Broker-supplied strings made inert for display: no markup, no terminal escapes."""

from __future__ import annotations

import re

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """Control characters (escape sequences included) shown as \\xNN, not sent to the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def inert(value: str, style: str = "") -> Text:
    """A Text that shows `value` literally: Rich markup in it is not interpreted."""
    return Text(printable(value), style=style)


def inert_lines(value: str, style: str = "") -> Text:
    """Like inert(), for text of several lines (a payload): line breaks and tabs kept, other controls escaped."""
    lines = value.replace("\r\n", "\n").expandtabs(4).split("\n")
    return Text("\n".join(printable(line) for line in lines), style=style)


def rate(value: float) -> str:
    if value == 0:
        return "0"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:,.0f}"
