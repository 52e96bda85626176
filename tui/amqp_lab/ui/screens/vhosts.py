"""Pick the vhost the explorer shows, or all of them."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from amqp_lab.broker.errors import BrokerError
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.text import inert, printable
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter

EVERY_VHOST = "\x00all"  # option id for every vhost: no vhost name holds a NUL


class VhostScreen(ModalScreen[str | None], StyleKeepingScreen[str | None]):
    """Dismisses with a vhost name, EVERY_VHOST, or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="vhost-picker", classes="dialog"):
            yield Static("Show which vhost?", classes="title")
            yield OptionList(Option("every vhost", id=EVERY_VHOST), id="vhost-list")
            yield Static("Asking the broker for its vhosts…", classes="hint", id="vhost-hint")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self._load()

    @work(exclusive=True, group="vhosts", exit_on_error=False)
    async def _load(self) -> None:
        hint = self.query_one("#vhost-hint", Static)
        try:
            vhosts = await lab_of(self).management.vhosts()
        except BrokerError as exc:
            hint.update(inert(f"Could not list vhosts: {exc}"))
            return
        options = self.query_one(OptionList)
        for vhost in vhosts:
            options.add_option(Option(f"{printable(vhost.name)}   ({vhost.messages:,} messages)", id=vhost.name))
        hint.update("Enter picks, Esc cancels")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
