"""A dialog's footer lists the keys the dialog answers, not those of the screen beneath it, which do nothing
while the dialog is up (Textual stops a key at a modal screen)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from amqp_lab.ui.app import AmqpLabApp
from amqp_lab.ui.screens.builder import PathPrompt
from amqp_lab.ui.screens.confirm import ConfirmScreen
from amqp_lab.ui.screens.connection import ConnectionScreen
from amqp_lab.ui.screens.help import HelpScreen
from amqp_lab.ui.screens.peek import PeekScreen
from amqp_lab.ui.screens.publish import PublishScreen
from amqp_lab.ui.screens.vhosts import VhostScreen
from amqp_lab.ui.screens.whatif import WhatIfScreen
from amqp_lab.ui.screens.workshop import WorkshopScreen
from textual.screen import Screen

from tests.conftest import wait_for
from tests.ui.conftest import screen_text
from tests.ui.test_snapshots import SIZE, settled, unreachable_lab

DIALOGS: dict[str, Callable[[AmqpLabApp], Screen[object]]] = {
    "help": lambda app: HelpScreen(),
    "confirm": lambda app: ConfirmScreen("Delete", "queue", "orders", "/", "Its 3 messages are lost."),
    "save as": lambda app: PathPrompt("Save the scenario as", "scenario.toml", must_exist=False),
    "workshop": lambda app: WorkshopScreen(),
    "vhosts": lambda app: VhostScreen(),
    "connection": lambda app: ConnectionScreen(app.settings),
    "what if": lambda app: WhatIfScreen("/", "amq.topic"),
    "peek": lambda app: PeekScreen("/", "orders"),
    "publish": lambda app: PublishScreen("/", "amq.topic"),
}
BENEATH = ("Filter", "Sort", "Build & run", "Quit", "Help")  # the explorer's footer


@pytest.mark.parametrize("name", DIALOGS)
async def test_a_dialog_footer_lists_its_own_keys_and_esc_does_what_it_says(name: str) -> None:
    app = unreachable_lab()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        assert "Quit" in screen_text(app.export_screenshot())[-1]  # the explorer's footer, to begin with
        dialog = DIALOGS[name](app)
        await app.push_screen(dialog)
        own = [binding.description for _, binding, _, _ in dialog.active_bindings.values() if binding.show]
        assert own, "the dialog has keys to list"

        def bottom() -> str:
            return screen_text(app.export_screenshot())[-1]

        await wait_for(lambda: all(description in bottom() for description in own), what=f"{own} in the footer")
        shown = bottom()
        assert not [word for word in BENEATH if word in shown], shown
        assert shown.lstrip().startswith("esc ")

        await pilot.press("escape")
        await wait_for(lambda: app.screen is not dialog, what="Esc to close the dialog, as its footer says")
        await wait_for(lambda: "Quit" in bottom(), what="the explorer's footer back")
