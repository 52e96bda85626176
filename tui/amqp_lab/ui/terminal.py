"""The lab's terminal driver: Textual's own, with the Esc key answered as soon as the escape delay is over.

A lone Esc byte may be the start of an escape sequence (an arrow key, a mouse report), so Textual's parser waits
`ESCDELAY` for the rest before it calls it the Esc key. Textual's input thread checks that wait only when its
`select(0.1)` returns, so every Esc took 100 ms or more, whatever the delay: most of closing help, the builder or
a queue's detail. This driver's input thread wakes when the wait is over.

The wait itself is 25 ms unless `ESCDELAY` (milliseconds, as in curses) says otherwise: a terminal writes a
sequence in one go. Over a link that splits sequences, `ESCDELAY=100` is Textual's own wait.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from typing import Any

from textual import constants
from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.app import App
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from amqp_lab.ui.heap import SteadyHeapApp

ESCAPE_DELAY = 0.025
IDLE_WAIT = 0.1  # Textual's: how often the input thread looks at whether the app is exiting
ESC = "\x1b"


class PromptEscapeDriver(LinuxDriver):
    def __init__(self, app: App[Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        if "ESCDELAY" not in os.environ:  # the user's own setting, read by Textual, wins
            constants.ESCAPE_DELAY = ESCAPE_DELAY  # type: ignore[misc]  # read by the parser at each Esc

    def run_input_thread(self) -> None:
        """Textual's input loop, with each wait cut short when an Esc may be waiting for the rest of a sequence."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        escape_due: float | None = None  # when the parser may call a lone Esc the Esc key

        def read(ready: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            nonlocal escape_due
            text = decode(os.read(self.fileno, 4096), final=final) if ready else ""  # one file: stdin
            if text:  # none either when stdin is piped and at its end
                for event in parser.feed(text):
                    self.process_message(event)
                if ESC in text:
                    escape_due = get_time() + constants.ESCAPE_DELAY
            for event in parser.tick():
                self.process_message(event)
            if escape_due is not None and get_time() >= escape_due:
                escape_due = None  # the parser has decided

        def wait() -> float:
            return IDLE_WAIT if escape_due is None else max(0.0, escape_due - get_time())

        try:
            while not self.exit_event.is_set():
                read(selector.select(wait()))
            selector.unregister(self.fileno)
            read(selector.select(IDLE_WAIT), final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass


class PromptEscapeApp(SteadyHeapApp):
    """An app that runs on `PromptEscapeDriver` in a terminal (not when `TEXTUAL_DRIVER` names another, as for
    a browser, nor on Windows)."""

    def get_driver_class(self) -> type[Driver]:
        chosen = super().get_driver_class()
        return PromptEscapeDriver if chosen is LinuxDriver else chosen
