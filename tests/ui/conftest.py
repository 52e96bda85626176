"""A snapshot that does not match says which rows of the screen differ, in the test's failure.

The plugin's HTML report stays on the machine that ran the tests; on CI only the test output is seen.
"""

from __future__ import annotations

import difflib
import html
import pickle
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from pytest_textual_snapshot import node_to_report_path

CELL_WIDTH = 12.2  # pixels per terminal column in Textual's SVG export
TEXT_SPAN = re.compile(
    r'<text class="terminal-[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
    r'clip-path="url\(#terminal-(?:\d+-)?line-(\d+)\)">([^<]*)</text>'  # the id is dropped when stored
)


def screen_text(svg: str) -> list[str]:
    """The characters an exported screen shows, row by row, colours aside."""
    rows: dict[int, dict[int, str]] = defaultdict(dict)
    for x, row, text in TEXT_SPAN.findall(svg):
        start = round(float(x) / CELL_WIDTH)
        for offset, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            rows[int(row)][start + offset] = char
    return [
        "".join(cells.get(column, " ") for column in range(max(cells, default=-1) + 1)).rstrip()
        for cells in (rows[row] for row in range(max(rows, default=-1) + 1))
    ]


@pytest.fixture
def snap_compare(snap_compare: Callable[..., bool], request: pytest.FixtureRequest) -> Callable[..., bool]:
    def compare(app: Any, **options: Any) -> bool:
        __tracebackhide__ = True
        if snap_compare(app, **options):
            return True
        _, expected, actual, *_ = pickle.loads(node_to_report_path(request.node).read_bytes())
        diff = difflib.unified_diff(screen_text(expected), screen_text(actual), "snapshot", "this run", n=0)
        changed = "\n".join(line.rstrip("\n") for line in diff)
        pytest.fail(f"the screen differs from its snapshot (colours aside if nothing is listed):\n{changed}")

    return compare
