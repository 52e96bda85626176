"""Two recorded runs side by side in the lab, as `amqp-lab compare` prints them: a workshop's run before and after
its rerun step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from amqp_lab.compare import as_tables
from amqp_lab.engine.recording import Recording
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter


class CompareScreen(ModalScreen[None], StyleKeepingScreen[None]):
    BINDINGS = [Binding("escape,q,c", "dismiss", "Close")]

    def __init__(self, a: Recording, b: Recording) -> None:
        super().__init__()
        self.a, self.b = a, b

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="compare", classes="dialog"):
            yield Static(f"A {self.a.scenario.title}  against  B {self.b.scenario.title}", classes="title")
            yield Static(as_tables(self.a, self.b), id="compare-tables")
            command = f"amqp-lab compare {self.a.path} {self.b.path} --json FILE"
            yield Static(f"The same from a shell, as JSON too: {command}\nEsc closes.", classes="hint")
        yield FittingFooter()
