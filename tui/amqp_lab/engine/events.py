"""The run's event log vocabulary: what an event says happened, and which kinds come once per message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    """What an event is about: the event log colours by it, the report lists and counts by it."""

    INFO = "info"
    ERROR = "error"
    CRASH = "crash"  # a client or an agent went away
    FAULT = "fault"  # a fault the user injected: pause, hang, slow, reject, ...
    STOP = "stop"
    RESTART = "restart"  # something is back: a client, the broker, a node, a queue's leader
    DISCONNECT = "disconnect"  # a connection, a node or a queue replica lost
    TIMEOUT = "timeout"  # a request not answered in time
    LATE = "late"  # an answer after its request's timeout
    ORPHAN = "orphan"  # an answer no request of this run asked for
    PARTIAL = "partial"  # a job closed with shards missing
    RETURN = "return"  # a mandatory message routed nowhere, sent back
    NACK = "nack"  # a message the broker refused
    REFUSED = "refused"  # a message a consumer rejected


# Kinds a run may log once per message: under load they come by the thousand, so only the latest are kept (and
# counted by kind). Every other kind (faults, crashes, outages, refusals, errors) is kept for the report.
PER_MESSAGE_KINDS = frozenset(
    {EventKind.TIMEOUT, EventKind.LATE, EventKind.ORPHAN, EventKind.PARTIAL, EventKind.RETURN, EventKind.NACK}
)
# What the report lists under "timeouts": every message that did not get the answer or the route it was sent for.
PROBLEM_KINDS = PER_MESSAGE_KINDS | {EventKind.REFUSED}


@dataclass(frozen=True)
class Event:
    """Something a user should see: a timeout, a return, a crash, a redelivery burst, a reconnect."""

    at: float  # seconds since the run started
    kind: EventKind
    client: str
    text: str
    seq: int = 0  # counts from 1 over the run, so a viewer can tell new events from those it has
