"""Where workers record their results: "record them to a database or filesystem to be retrieved later"."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    def record(self, result: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class JsonLinesSink:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def record(self, result: dict[str, Any]) -> None:
        self._file.write(json.dumps(result, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


class SqliteSink:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute(
            "create table if not exists results (id integer, worker text, queue text, finished real, payload integer)"
        )
        self._pending = 0

    def record(self, result: dict[str, Any]) -> None:
        self._db.execute(
            "insert into results values (?, ?, ?, ?, ?)",
            (result["id"], result["worker"], result["queue"], result["finished"], result["payload"]),
        )
        self._pending += 1
        if self._pending >= 500:  # commit in batches: one fsync per result would be the bottleneck
            self._db.commit()
            self._pending = 0

    def close(self) -> None:
        self._db.commit()
        self._db.close()


def open_sink(path: str) -> Sink:
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".jsonl":
        return JsonLinesSink(target)
    return SqliteSink(target)
