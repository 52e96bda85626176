"""The lab's terminal driver, in a real pseudo-terminal: a lone Esc is the Esc key as soon as its wait is over, and
escape sequences (arrow keys) are still read whole, alone or amid other keys."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import busy_factor

KEY_LOGGER = """
import sys
from amqp_lab.ui.terminal import PromptEscapeApp

class KeyLogger(PromptEscapeApp):
    def on_mount(self) -> None:
        self.log_file = open(sys.argv[1], "a", buffering=1)
        self.log_file.write("ready\\n")

    def on_key(self, event) -> None:
        self.log_file.write(f"{event.key}\\n")
        if event.key == "q":
            self.exit()

KeyLogger().run()
"""


class Terminal:
    def __init__(self, log: Path) -> None:
        self.log = log
        master, child = os.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("TEXTUAL_DRIVER", "ESCDELAY")} | {"TERM": "xterm"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", KEY_LOGGER, str(log)],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            start_new_session=True,
        )
        os.close(child)
        self.master = master
        # The app draws: someone must read, or its writes fill the terminal's buffer.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while os.read(self.master, 65536):
                pass
        except OSError:
            pass  # the app has gone

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def lines(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def keys(self) -> list[str]:
        return self.lines()[1:]  # after "ready"

    def wait_until(self, condition: Callable[[], bool], failure: Callable[[], str], timeout: float = 20.0) -> None:
        give_up = time.monotonic() + timeout * busy_factor()
        while not condition():
            if time.monotonic() > give_up or self.process.poll() is not None:
                raise AssertionError(failure())
            time.sleep(0.02)

    def wait_for_keys(self, expected: list[str]) -> None:
        self.wait_until(lambda: self.keys() == expected, lambda: f"keys read: {self.keys()}, expected {expected}")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path / "keys.log")
    try:
        term.wait_until(lambda: term.lines()[:1] == ["ready"], lambda: "the app never started")
        yield term
    finally:
        term.type("q")
        try:
            term.process.wait(timeout=10 * busy_factor())
        except subprocess.TimeoutExpired:
            term.process.kill()
            term.process.wait()
        os.close(term.master)


def test_a_lone_esc_is_the_escape_key_without_any_key_after_it(terminal: Terminal) -> None:
    terminal.type("\x1b")
    terminal.wait_for_keys(["escape"])
    terminal.type("\x1b")
    terminal.wait_for_keys(["escape", "escape"])


def test_escape_sequences_are_still_read_whole(terminal: Terminal) -> None:
    terminal.type("\x1b[A")  # an arrow key, as a terminal writes it: in one go
    terminal.wait_for_keys(["up"])
    terminal.type("a\x1b[Bb")  # amid other keys
    terminal.wait_for_keys(["up", "a", "down", "b"])
    terminal.type("\x1b")
    terminal.wait_for_keys(["up", "a", "down", "b", "escape"])
