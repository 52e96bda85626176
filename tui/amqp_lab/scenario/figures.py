"""What a run counts, named once: the counters the clients keep, which patterns have them, how the screens label
them and which ones `[expect]` can hold. The engine counts by these names, the model validates `[expect]` against
them, and the summary, the report and the run screen show them, so no two places can spell one differently."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PATTERNS = ("rpc", "map-reduce", "workers", "pub-sub", "custom")


class Count(StrEnum):
    REQUESTS = "requests"
    REPLIES = "replies"
    TIMEOUTS = "timeouts"
    LATE_REPLIES = "late_replies"
    ORPHAN_REPLIES = "orphan_replies"
    JOBS_SUBMITTED = "jobs_submitted"
    JOBS_COMPLETE = "jobs_complete"
    JOBS_PARTIAL = "jobs_partial"
    PENDING_JOBS = "pending_jobs"
    RESULTS_ON_TIME = "results_on_time"
    LATE_RESULTS = "late_results"
    RESULTS_RETURNED = "results_returned"
    MISSED = "missed"
    RETURNS = "returns"
    REPLIES_RETURNED = "replies_returned"
    NACKED = "nacked"
    IMMEDIATE_REFUSED = "immediate_refused"
    BROKER_OUTAGES = "broker_outages"
    RECONNECTS = "reconnects"
    REPUBLISHED = "republished"
    PUBLISHES_LOST = "publishes_lost"


@dataclass(frozen=True)
class CountInfo:
    label: str  # as the run screen's problems panel says it
    patterns: tuple[str, ...]  # the patterns whose runs count it
    expectable: bool  # `[expect]` may hold it
    outage: bool = False  # counted when the broker went away: shown once there was an outage


_ALL = PATTERNS
_PUBLISHING = ("workers", "pub-sub", "custom")
COUNTS: dict[Count, CountInfo] = {
    Count.REQUESTS: CountInfo("requests", ("rpc",), False),
    Count.REPLIES: CountInfo("replies", ("rpc",), False),
    Count.TIMEOUTS: CountInfo("RPC timeouts", ("rpc",), True),
    Count.LATE_REPLIES: CountInfo("late replies", ("rpc",), True),
    Count.ORPHAN_REPLIES: CountInfo("orphan replies", ("rpc",), True),
    Count.JOBS_SUBMITTED: CountInfo("jobs submitted", ("map-reduce",), False),
    Count.JOBS_COMPLETE: CountInfo("complete jobs", ("map-reduce",), False),
    Count.JOBS_PARTIAL: CountInfo("partial jobs", ("map-reduce",), True),
    Count.PENDING_JOBS: CountInfo("pending jobs", ("map-reduce",), True),
    Count.RESULTS_ON_TIME: CountInfo("results on time", ("map-reduce",), False),
    Count.LATE_RESULTS: CountInfo("late results", ("map-reduce",), True),
    Count.RESULTS_RETURNED: CountInfo("results returned", ("map-reduce",), False),
    Count.MISSED: CountInfo("missed (away)", ("pub-sub",), True),
    Count.RETURNS: CountInfo("returns", _ALL, True),
    # An answer the broker sent back to its handler or shard: the queue it was addressed to was gone (its asker
    # crashed or reconnected). Kept apart from returns so that requests = replies + returns + timeouts holds.
    Count.REPLIES_RETURNED: CountInfo("replies returned", ("rpc", "map-reduce", "custom"), True),
    Count.NACKED: CountInfo("nacked by broker", _PUBLISHING, True),
    Count.IMMEDIATE_REFUSED: CountInfo("immediate refused", ("rpc",), True),
    Count.BROKER_OUTAGES: CountInfo("broker outages", _ALL, False, outage=True),
    Count.RECONNECTS: CountInfo("reconnects", _ALL, False, outage=True),
    Count.REPUBLISHED: CountInfo("republished", _ALL, False, outage=True),
    Count.PUBLISHES_LOST: CountInfo("publishes lost", _ALL, True, outage=True),
}

# `[expect]` holds these: two figures of the ledger, and the counters that say something went wrong.
LEDGER_EXPECTABLE = ("lost", "discarded")
EXPECTABLE = (*LEDGER_EXPECTABLE, *(str(c) for c, info in COUNTS.items() if info.expectable))
OUTAGE_COUNTS = tuple(c for c, info in COUNTS.items() if info.outage)


def pattern_counts(pattern: str) -> tuple[Count, ...]:
    """What a run of `pattern` counts besides outages, in the order the summary lists them."""
    return tuple(c for c, info in COUNTS.items() if pattern in info.patterns and not info.outage)
