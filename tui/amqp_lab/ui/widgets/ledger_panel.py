"""The ledger on the run screen: every figure with what it means, the identity they keep, and at the end what
the cleanup did with what was still queued. The same figures as the summary and the JSON report."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from amqp_lab.engine.ledger import MEANINGS, LedgerCounts
from amqp_lab.ui.colors import BAD, GOOD, WARN

ALWAYS = ("published", "copies", "acked", "outstanding", "lost")  # shown even at 0: the run's first questions
ALARMS = {"lost": BAD, "unchecked": BAD, "duplicates": WARN, "still_queued": WARN, "discarded": WARN}
SETTLED = ("acked", "rejected", "dead_lettered", "discarded", "still_queued", "outstanding")


def ledger_lines(counts: LedgerCounts, finished: bool, backlog: dict[str, Any] | None) -> tuple[Text, int]:
    """The panel's content and its number of lines. `backlog` is the report's, once the run has ended."""
    values = counts.as_dict()
    rows: list[tuple[Text, Text, Text]] = []
    for name, value in values.items():
        if (not value and name not in ALWAYS) or (name == "outstanding" and finished):
            continue  # after the end, what is outstanding is lost (or unchecked): said on their lines
        said = str(backlog["fate"]) if name == "still_queued" and backlog is not None else MEANINGS[name]
        style = ALARMS.get(name, "") if value else (GOOD if name == "lost" else "")
        rows.append((Text(name.replace("_", " "), style=style or "bold"), Text(f"{value:,}", style=style), Text(said)))
    terms = [n for n in SETTLED if values[n] and not (finished and n == "outstanding")]
    if finished and counts.outstanding:
        terms.append("lost" if counts.lost else "unchecked")
    sums = " + ".join(n.replace("_", " ") for n in terms) or "0"
    balanced = counts.copies == counts.accounted
    rows.append((Text(""), Text(""), Text("")))
    rows.append(
        (
            Text("balance", style="bold"),
            Text("✓" if balanced else "✗", style=GOOD if balanced else BAD),
            Text(f"copies = {sums}" if balanced else f"copies {counts.copies:,} ≠ {counts.accounted:,}: {sums}"),
        )
    )
    # Figures and counts keep their width on a narrow panel; only the meanings give way (the panel's CSS ends
    # each line with an ellipsis instead of wrapping it).
    figure_width, count_width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    shown = Text()
    for figure, count, meaning in rows:
        figure.pad_right(figure_width - len(figure))
        count.pad_left(count_width - len(count))
        meaning.stylize("dim")
        shown.append_text(Text.assemble(figure, " ", count, "  ", meaning, "\n"))
    shown.rstrip()
    return shown, len(rows)
