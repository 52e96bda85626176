"""The domain and I/O layers run without the TUI: importing every module outside the UI loads no Textual (what
the layering test cannot see: a dependency that pulls Textual in)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import deadline
from tests.unit.test_layers import layer_of, modules


def test_nothing_outside_the_ui_loads_textual() -> None:
    outside = sorted(m for m in modules() if layer_of(m) not in ("ui", "cli", "__main__"))
    code = f"import sys, {', '.join(outside)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=deadline(60), check=True
    )
    assert len(outside) > 40 and result.stdout.strip() == "[]"
