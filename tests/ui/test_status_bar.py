"""The status bar follows the app's states for as long as its screen lives, and not a moment longer."""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.ui.widgets.status_bar import StatusBar

from tests.conftest import shown_text, wait_for
from tests.ui.frozen_broker import frozen_broker_lab


async def test_a_snapshot_while_the_bar_is_taken_down_is_not_an_error() -> None:
    """Textual removes a dismissed screen's widgets parts first. A snapshot that came while a peek or tap screen
    went raised NoMatches in the management poller (the suite, beside other load), which stopped polling."""
    app = frozen_broker_lab()
    async with app.run_test(size=(140, 40)):
        bar = app.screen.query_one(StatusBar)
        await wait_for(lambda: "RabbitMQ" in shown_text(bar.query_one("#broker")), what="the bar showing the broker")
        page = app.snapshot
        assert page is not None
        await bar.remove_children()  # as when its screen goes
        app.snapshot = replace(page, answered_in=page.answered_in + 1)  # raised here
        assert app.snapshot is not page
