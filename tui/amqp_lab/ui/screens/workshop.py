"""Pick a guided experiment; each runs with a side panel that says what to look at, step by step."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.workshop import EXPERIMENTS, Experiment


class WorkshopScreen(ModalScreen[Experiment | None], StyleKeepingScreen[Experiment | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="workshop-picker"):
            yield Static("Workshop: pick an experiment", classes="title")
            yield OptionList(
                *(
                    Option(Text.assemble((e.title, "bold"), f"\n  {e.preset} · {len(e.steps)} steps"), id=e.key)
                    for e in EXPERIMENTS
                ),
                id="experiments",
            )
            yield Static(
                "Enter starts it (a run on the broker, cleaned up when you stop it) · Esc closes", classes="hint"
            )
        yield FittingFooter()

    @on(OptionList.OptionSelected, "#experiments")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(next(e for e in EXPERIMENTS if e.key == event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
