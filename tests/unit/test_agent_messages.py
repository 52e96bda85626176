"""The messages between a run and its agents: each reads back as it was sent, a misspelt field or counter is refused,
and a message of another protocol version says so instead of being misread."""

from __future__ import annotations

import json

import pytest
from amqp_lab.engine.agent_messages import (
    VERSION,
    AgentEvent,
    Assign,
    Discover,
    Done,
    Failed,
    Finish,
    Offer,
    OtherVersion,
    Pause,
    Report,
    Started,
    encode,
    to_agent,
    to_run,
)
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.snapshot import ClientStats
from amqp_lab.scenario.figures import Count

TO_AGENT = [
    Discover(run_id="0f00d1", reply_to="amq.gen-1"),
    Assign(run_id="0f00d1", scenario={"pattern": "workers"}, clients=("worker-1",), reply_to="amq.gen-1", id_base=10),
    Pause(run_id="0f00d1"),
    Finish(run_id="0f00d1"),
]
TO_RUN = [
    Offer(agent="north", run_id="0f00d1"),
    Started(agent="north"),
    Report(
        agent="north",
        ops=[["published", 10, "", "tasks", None, False]],
        samples={"delivery": [0.004, 0.006]},
        counters={Count.RECONNECTS: 2},
        events=[AgentEvent(kind=EventKind.RESTART, client="worker-1", text="reconnected after 0.4 s")],
        clients=[ClientStats("worker-1", "worker", "running", 0, 12, 3.0, 1)],
    ),
    Done(agent="north"),
    Failed(agent="north", reason="ACCESS_REFUSED"),
]


@pytest.mark.parametrize("message", TO_AGENT, ids=lambda m: m.type)
def test_what_a_run_sends_an_agent_reads_back_as_sent(message: object) -> None:
    assert to_agent(encode(message).body) == message  # type: ignore[arg-type]


@pytest.mark.parametrize("message", TO_RUN, ids=lambda m: m.type)
def test_what_an_agent_sends_a_run_reads_back_as_sent(message: object) -> None:
    assert to_run(encode(message).body) == message  # type: ignore[arg-type]


def test_the_kinds_and_counters_an_agent_reports_arrive_typed() -> None:
    report = to_run(encode(TO_RUN[2]).body)
    assert isinstance(report, Report)
    assert report.events[0].kind is EventKind.RESTART
    assert list(report.counters) == [Count.RECONNECTS] and report.clients[0].received == 12


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"v": VERSION, "type": "offer", "agent": "north"}).encode(),  # run_id missing
        json.dumps({"v": VERSION, "type": "pause", "run_id": "0f00d1", "runid": "x"}).encode(),  # misspelt field
        json.dumps({"v": VERSION, "type": "shutdown", "run_id": "0f00d1"}).encode(),  # no such message
    ],
)
def test_a_body_that_is_not_one_of_ours_is_passed_over(body: bytes) -> None:
    assert to_agent(body) is None and to_run(body) is None


def test_a_report_with_a_counter_no_one_counts_is_refused() -> None:
    document = json.loads(encode(TO_RUN[2]).body)
    document["counters"] = {"partial_jobs": 1}  # the engine counts jobs_partial
    assert to_run(json.dumps(document).encode()) is None


def test_a_message_of_another_version_says_who_sent_it_and_where_to_answer() -> None:
    body = json.dumps({"v": VERSION + 1, "type": "discover", "run_id": "0f00d1", "reply_to": "amq.gen-1", "new": 1})
    with pytest.raises(OtherVersion) as raised:
        to_agent(body.encode())
    assert raised.value.envelope.reply_to == "amq.gen-1" and raised.value.envelope.run_id == "0f00d1"
    assert f"v{VERSION + 1}" in str(raised.value) and "same amqp-lab version" in str(raised.value)
    offer = json.dumps({"v": VERSION + 1, "type": "offer", "agent": "south", "run_id": "0f00d1"})
    with pytest.raises(OtherVersion) as raised:
        to_run(offer.encode())
    assert raised.value.envelope.agent == "south"
