"""What a run and its agents say to each other through the broker: typed, versioned messages in JSON.

Every message carries the protocol version `v` and its `type`. Both sides read a message of another
version only far enough to say so (its type and, from an agent, its name): a run and agents of
different amqp-lab versions tell the user to match them, rather than misread each other.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar

import aio_pika
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from amqp_lab.engine.events import EventKind
from amqp_lab.engine.snapshot import ClientStats
from amqp_lab.scenario.figures import Count

VERSION: Final = 1


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = VERSION


class Discover(_Message):
    """Run to every agent: who is idle? Answers go to `reply_to`."""

    type: Literal["discover"] = "discover"
    run_id: str
    reply_to: str


class Offer(_Message):
    """Agent to run: idle, and ready to take a share."""

    type: Literal["offer"] = "offer"
    agent: str
    run_id: str


class Assign(_Message):
    """Run to one agent: run these clients of this scenario, numbering messages from `id_base`."""

    type: Literal["assign"] = "assign"
    run_id: str
    scenario: dict[str, Any]  # the scenario file's document; the agent validates it as the run did
    clients: tuple[str, ...]
    reply_to: str
    id_base: int


class Pause(_Message):
    """Run to an agent: hold the producers (the run is draining)."""

    type: Literal["pause"] = "pause"
    run_id: str


class Finish(_Message):
    """Run to an agent: finish the share, send the last report."""

    type: Literal["finish"] = "finish"
    run_id: str


class Started(_Message):
    type: Literal["started"] = "started"
    agent: str


class AgentEvent(BaseModel):
    """One event of an agent's clients, logged again on the run's event log."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # an agent's Event has `at` and `seq` of its own

    kind: EventKind
    client: str
    text: str


class Report(_Message):
    """Agent to run, four times a second: what its clients did since the last report."""

    type: Literal["report"] = "report"
    agent: str
    ops: list[list[Any]]  # ledger calls, replayed in order (engine.relay)
    samples: dict[str, list[float]]  # latency samples by meter
    counters: dict[Count, int]
    events: list[AgentEvent]
    clients: list[ClientStats]


class Done(_Message):
    type: Literal["done"] = "done"
    agent: str


class Failed(_Message):
    type: Literal["failed"] = "failed"
    agent: str
    reason: str


ToAgent = Annotated[Discover | Assign | Pause | Finish, Field(discriminator="type")]
ToRun = Annotated[Offer | Started | Report | Done | Failed, Field(discriminator="type")]
_TO_AGENT: TypeAdapter[ToAgent] = TypeAdapter(ToAgent)
_TO_RUN: TypeAdapter[ToRun] = TypeAdapter(ToRun)


class Envelope(BaseModel):
    """What every version's messages keep: enough to tell the sender's version, who it is, and where to answer."""

    v: int
    type: str
    agent: str = ""
    run_id: str = ""
    reply_to: str = ""


class OtherVersion(Exception):
    """A message of another protocol version: the sender runs another amqp-lab version."""

    def __init__(self, envelope: Envelope) -> None:
        super().__init__(
            f"speaks agent protocol v{envelope.v}, this amqp-lab v{VERSION}: run the same amqp-lab version on both"
        )
        self.envelope = envelope


T = TypeVar("T")


def encode(message: _Message) -> aio_pika.Message:
    return aio_pika.Message(message.model_dump_json().encode(), content_type="application/json")


def _decode(adapter: TypeAdapter[T], body: bytes) -> T | None:
    """The message, or None for a body that is not one of ours; OtherVersion for one of another version."""
    try:
        return adapter.validate_json(body)
    except ValidationError:
        pass
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError:
        return None
    if envelope.v != VERSION:
        raise OtherVersion(envelope)
    return None


def to_agent(body: bytes) -> ToAgent | None:
    return _decode(_TO_AGENT, body)


def to_run(body: bytes) -> ToRun | None:
    return _decode(_TO_RUN, body)
