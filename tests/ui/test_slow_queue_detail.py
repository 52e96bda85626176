"""A queue opened on a management API slower than Enter waits for: the screen comes up at once and says it is asking;
the answer, when it comes, is shown; a key that took the user elsewhere meanwhile wins. (An API that holds its
answer until told is a fault a real RabbitMQ will not give on demand: a fake transport gives it.)"""

from __future__ import annotations

import asyncio

import httpx
from amqp_lab.ui.screens.queue import ASKING, QueueScreen, open_queue
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from tests.conftest import shown_text, wait_for
from tests.ui.fake_management import FakeManagementLab


class HeldAnswersLab(FakeManagementLab):
    """A lab whose management API holds every answer until `answer` is set, then says the queue is not there."""

    def __init__(self) -> None:
        super().__init__(self._answer, timeout=60)
        self.answer = asyncio.Event()
        self.asked: list[str] = []

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.url.raw_path.decode().partition("?")[0])
        await self.answer.wait()
        return httpx.Response(404, json={"error": "Object Not Found", "reason": "Not Found"})


async def test_the_screen_comes_at_once_saying_it_asks_and_shows_the_answer_when_it_comes() -> None:
    lab = HeldAnswersLab()
    async with lab.run_test(size=(120, 36)):
        lab.run_worker(open_queue(lab.screen, "/", "orders"))
        shown = lambda: isinstance(lab.screen, QueueScreen) and lab.screen.is_mounted  # noqa: E731
        await wait_for(shown, what="the queue's screen, its answer still held")
        screen = lab.screen
        assert lab.asked == ["/api/queues/%2F/orders"] and not lab.answer.is_set()
        assert ASKING in shown_text(screen.query_one("#queue-settings"))
        lab.answer.set()
        notice = lambda: shown_text(screen.query_one("#queue-notice"))  # noqa: E731
        await wait_for(lambda: "Esc goes back" in notice(), what="the answer: the queue is gone", explain=notice)
        assert "orders" in notice()


class Elsewhere(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Static("where the user went")


async def test_a_key_that_went_elsewhere_before_the_queue_opened_keeps_the_user_there() -> None:
    lab = HeldAnswersLab()
    async with lab.run_test(size=(120, 36)) as pilot:
        opening = lab.run_worker(open_queue(lab.screen, "/", "orders"))
        elsewhere = Elsewhere()
        await lab.push_screen(elsewhere)  # the builder, help...: a key pressed before the screen came
        await wait_for(lambda: opening.is_finished, what="Enter's wait over")
        await pilot.pause()
        assert lab.screen is elsewhere
        assert not any(isinstance(screen, QueueScreen) for screen in lab.screen_stack)
