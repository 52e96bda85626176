"""Snapshot tests of screens whose content is stable: a broker that cannot be reached.

Regenerate after a deliberate change with `pytest tests/ui --snapshot-update`.
"""

from __future__ import annotations

from amqp_lab.broker.connection import Backoff, ConnectionState
from amqp_lab.config import build
from amqp_lab.ui.app import AmqpLabApp, make_app
from textual.pilot import Pilot

from tests.conftest import wait_for

SIZE = (120, 34)


def unreachable_lab(theme: str = "lab-dark") -> AmqpLabApp:
    settings = build(
        {
            "amqp_url": "amqp://guest:s3cret@127.0.0.1:1/",
            "management_url": "http://127.0.0.1:1/",
            "refresh": 3600,
        }
    )
    return make_app(settings, backoff=Backoff(0.2, 1.0), theme=theme)


async def settled(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, AmqpLabApp)
    await wait_for(
        lambda: (
            app.amqp_status is not None and app.amqp_status.state is ConnectionState.FAILED and app.snapshot is not None
        ),
        what="both connections to fail",
    )
    app.clear_notifications()
    await pilot.pause()


def test_overview_when_the_broker_is_unreachable(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(unreachable_lab(), terminal_size=SIZE, run_before=settled)


def test_overview_in_the_light_theme(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(unreachable_lab("lab-light"), terminal_size=SIZE, run_before=settled)


def test_help_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def open_help(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(unreachable_lab(), terminal_size=SIZE, run_before=open_help)


def test_connection_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def open_form(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("c")
        await pilot.pause()

    assert snap_compare(unreachable_lab(), terminal_size=SIZE, run_before=open_form)
