"""The routing what-if on a busy broker: a read of the bindings that fails is tried again on its own, and the
screen says so meanwhile; the answer comes once the broker answers. (A management API that answers 503 is a fault
a real RabbitMQ will not give on demand: a fake transport gives it.)"""

from __future__ import annotations

import httpx
from amqp_lab.ui.screens import whatif
from amqp_lab.ui.screens.whatif import WhatIfScreen
from textual.widgets import Input

from tests.conftest import shown_text, wait_for
from tests.ui.fake_management import FakeManagementLab

SHOP = {"name": "shop", "vhost": "/", "type": "topic", "durable": True, "arguments": {}}
BINDINGS = [
    {"source": "shop", "vhost": "/", "destination": d, "destination_type": "queue", "routing_key": k, "arguments": {}}
    for d, k in (("orders.all", "orders.#"), ("refunds", "*.*.refund"), ("invoices", "invoice.#"))
]


class BusyBrokerLab(FakeManagementLab):
    """A lab whose management API answers 503 while `busy`, then the shop's exchange and bindings."""

    def __init__(self) -> None:
        super().__init__(self._answer, timeout=2)
        self.busy = True

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if self.busy:
            return httpx.Response(503, content=b"busy")
        if request.url.path.endswith("/bindings/source"):
            return httpx.Response(200, json=BINDINGS)
        return httpx.Response(200, json=SHOP)


async def test_a_failed_read_is_tried_again_and_the_answer_comes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(whatif, "RETRY_AFTER", 0.5)
    lab = BusyBrokerLab()
    async with lab.run_test(size=(120, 36)) as pilot:
        await lab.push_screen(WhatIfScreen("/", "shop"))
        answer = lab.screen.query_one("#whatif-answer")
        await wait_for(
            lambda: "Trying again in 0.5 s" in shown_text(answer),
            what="the retry said",
            explain=lambda: shown_text(answer),
        )
        assert "HTTP 503" in shown_text(answer)
        lab.busy = False  # the broker answers again: the next try reads the bindings
        lab.screen.query_one("#whatif-key", Input).value = "orders.eu.refund"
        await wait_for(lambda: "2 queues get a copy" in shown_text(answer), what="the answer after the retry")
        assert "orders.all" in shown_text(answer) and "refunds" in shown_text(answer)
        await pilot.press("escape")
