"""Each pattern end to end on each broker (RabbitMQ and the embedded one): its counts, a balanced ledger, nothing
left behind."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import from_text, load

from tests.conftest import deadline, wait_for
from tests.engine.conftest import client, run_scenario

pytestmark = pytest.mark.embedded

# Seconds past a channel's first publish by which the broker lists its confirm flag: the test node's statistics
# step every second, the channel's, then the management database's.
STATISTICS_LAG = 4.0


async def test_rpc_replies_returns_and_latency(settings: Settings) -> None:
    # A count of requests, not a duration: each requester waits for the broker's confirm before its next request,
    # and on a busy machine 2 s held 8 of them.
    _, s = await run_scenario(
        settings, "rpc", "duration=60s", "rpc.limit=30", "rpc.unroutable=0.2", "rpc.rate=30", "rpc.requesters=2"
    )
    c = s.counters
    assert c["requests"] == 60
    assert c["returns"] > 0  # mandatory: requests to a method no handler serves come back
    assert c["replies"] + c["returns"] + c.get("timeouts", 0) == c["requests"]
    assert s.ledger.returned == c["returns"]
    # Each answer a handler published is a reply, or answers a request that had timed out already (a loaded
    # machine): counted late, or still on its way when the run closed.
    answered = sum(h.sent for h in s.clients if h.role == "handler")
    assert c["replies"] <= answered <= c["replies"] + c.get("timeouts", 0)
    assert s.latency_total["rpc"].count == c["replies"]
    assert 0 < s.latency_total["rpc"].p50 <= s.latency_total["rpc"].p99
    assert s.ledger.lost == 0 and s.ledger.outstanding == 0


async def test_rpc_over_direct_reply_to(settings: Settings) -> None:
    _, s = await run_scenario(settings, "rpc", "duration=1.5s", "rpc.reply_queue=direct-reply-to", "rpc.unroutable=0")
    assert s.counters["replies"] == s.counters["requests"] > 0
    assert s.ledger.lost == 0
    # RabbitMQ delivers each mandatory answer and returns it too: counted once, neither returned nor duplicated.
    # (A return still on its way when the run closes its handlers is not seen: at most every answer.)
    assert s.ledger.returned == s.ledger.duplicates == 0
    assert 0 < s.ledger.delivered_and_returned <= s.counters["replies"]
    assert s.ledger.acked == s.ledger.copies == s.ledger.published


async def test_rpc_with_a_named_reply_queue(settings: Settings) -> None:
    _, s = await run_scenario(settings, "rpc", "duration=1.5s", "rpc.reply_queue=named", "rpc.unroutable=0")
    assert s.counters["replies"] == s.counters["requests"] > 0


async def test_map_reduce_fanout_with_deadline(settings: Settings) -> None:
    # A count of jobs, not a duration (see the RPC test): the submitter publishes each job in turn.
    _, s = await run_scenario(settings, "map-reduce", "duration=60s", "map-reduce.limit=15", "map-reduce.rate=10")
    c = s.counters
    assert c["jobs_submitted"] == 15
    assert c["jobs_complete"] == c["jobs_submitted"]  # all shards up: every job complete
    assert c["results_on_time"] == 3 * c["jobs_submitted"]
    assert sum(shard.sent for shard in s.clients if shard.role == "shard") == c["results_on_time"]
    assert c["results_returned"] == c["jobs_submitted"]  # combined results reached the submitter
    assert s.latency_total["job"].count == c["jobs_complete"]
    assert s.ledger.lost == 0


@pytest.mark.parametrize(("policy", "confirming"), [("deadline", False), ("wait-for-all", True)])
async def test_map_reduce_publishes_with_confirms_only_when_reliable(
    settings: Settings, policy: str, confirming: bool
) -> None:
    """The deadline policy is the fast mode: transient, fire and forget. The broker's own channel list says which
    of the run's channels are in confirm mode: none of them, or the submitter's, the shards' and the reducer's."""
    run = Run(load("map-reduce", [f"map-reduce.policy={policy}", "map-reduce.rate=10"]), settings)
    publishing = 1 + 3 + 1  # a submitter, three shards, the reducer: each publishes on one channel of its own
    flags: list[bool] = []
    active_since: list[float] = []

    async def listed() -> bool:
        """The confirm flags of the run's clients' channels, told apart from other runs' by their connection
        names ("amqp-lab <version> run <id> <client>"), once the broker's flags can be trusted."""
        async with httpx.AsyncClient(base_url=settings.management_url, auth=("guest", "guest"), timeout=10) as http:
            connections = (await http.get("api/connections")).raise_for_status().json()
            channels = (await http.get("api/channels")).raise_for_status().json()
        ours = {
            c["name"]
            for c in connections
            if f"run {run.run_id} " in str((c.get("client_properties") or {}).get("connection_name", ""))
        }
        # A channel of a connection just closed is listed a moment with connection_details [] (RabbitMQ 4.0).
        mine = [c for c in channels if (c.get("connection_details") or {}).get("name") in ours]
        flags[:] = [bool(c.get("confirm")) for c in mine]
        # A channel that has published is past its confirm.select, sent before any publish. Its confirm flag comes
        # with the channel's statistics, which can lag its message counts by a statistics step: trust the flags
        # once all are set, or once they have held a few steps.
        if len(flags) < publishing or not all((c.get("message_stats") or {}).get("publish") for c in mine):
            return False
        now = time.monotonic()
        active_since[:] = active_since or [now]
        return all(flags) or now - active_since[0] >= deadline(STATISTICS_LAG)

    try:
        await run.start()
        await wait_for(listed, what="the run's channels in the broker's channel list", explain=lambda: str(flags))
    finally:
        await run.stop()
    # The submitter's channel also consumes its results; each shard's and the reducer's consume and publish.
    assert flags.count(True) == (publishing if confirming else 0), flags
    assert run.last is not None and run.last.ledger.lost == 0
    assert (run.last.ledger.confirmed == run.last.ledger.published > 0) is confirming


async def test_map_reduce_direct_partitions_the_job(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "map-reduce", "duration=1.5s", "map-reduce.exchange=direct", "map-reduce.policy=wait-for-all"
    )
    c = s.counters
    assert c["jobs_complete"] == c["jobs_submitted"] > 0
    for shard in ("shard-1", "shard-2", "shard-3"):  # each shard got exactly its part of every job
        assert client(s, shard).received == c["jobs_submitted"]
    assert s.ledger.confirmed == s.ledger.published  # wait-for-all publishes with confirms


async def test_workers_share_the_queue_and_record_results(settings: Settings, tmp_path: Path) -> None:
    sink = tmp_path / "results.jsonl"
    _, s = await run_scenario(
        settings, "workers", "duration=2s", "workers.rate=100", "workers.processing=5ms", f"workers.sink='{sink}'"
    )
    workers = [c for c in s.clients if c.role == "worker"]
    assert sum(w.received for w in workers) == s.ledger.delivered
    assert all(w.received > 0 for w in workers)
    assert s.ledger.acked == s.ledger.published > 60  # 200 at full pace; a loaded machine may give fewer
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert len(lines) == s.ledger.acked
    assert {line["worker"] for line in lines} == {w.name for w in workers}


async def test_workers_record_to_sqlite(settings: Settings, tmp_path: Path) -> None:
    sink = tmp_path / "results.sqlite"
    _, s = await run_scenario(settings, "workers", "duration=1s", "workers.processing=1ms", f"workers.sink='{sink}'")
    with sqlite3.connect(sink) as db:
        (count,) = db.execute("select count(*) from results").fetchone()
    assert count == s.ledger.acked > 0


async def test_pub_sub_delivers_what_the_patterns_select(settings: Settings) -> None:
    _, s = await run_scenario(settings, "pub-sub", "duration=2s", "pub-sub.rate=40")
    by_name = {sub.name: sub for sub in s.subscribers}
    published = s.ledger.published
    assert by_name["everything"].expected == published
    assert 0 < by_name["orders"].expected < published
    for sub in s.subscribers:
        assert sub.received == sub.expected, sub
        assert sub.missed == 0
    assert s.ledger.confirmed == published
    assert s.ledger.lost == 0


async def test_pub_sub_with_transactions(settings: Settings) -> None:
    _, s = await run_scenario(settings, "pub-sub", "duration=1s", "pub-sub.publish_mode=transactions")
    assert s.ledger.confirmed == s.ledger.published > 0
    assert all(sub.received == sub.expected for sub in s.subscribers)


async def test_pub_sub_with_a_direct_exchange_shows_why_topic(settings: Settings) -> None:
    """Patterns mean nothing to a direct exchange: the pattern subscribers get nothing."""
    _, s = await run_scenario(settings, "pub-sub", "duration=1s", "pub-sub.exchange=direct")
    assert all(sub.expected == sub.received == 0 for sub in s.subscribers)
    assert s.ledger.unroutable == s.ledger.published > 0


async def test_rpc_replies_to_a_requester_gone_count_as_replies_returned(settings: Settings) -> None:
    """A requester crashes while the handlers work on its requests: their replies come back, its reply queue gone.
    The problems panel's returns and replies returned add up to the ledger's returned (the panel said 14, the
    ledger 15). Replies are counted apart: each belongs to a request already counted as timed out, and counting it
    as a return as well broke requests = replies + returns + timeouts (88 = 86 + 2 + 2 in a broker restart)."""
    scenario = from_text(
        'preset = "rpc"\nduration = 3\n[rpc]\nunroutable = 0\nrate = 20\nprocessing = "300ms"\nprefetch = 20\n'
        '[[schedule]]\nat = 1.5\nclient = "requester-1"\naction = "crash"\n',
        "test",
    )
    run = Run(scenario, settings)
    s = await run.execute()
    c = s.counters
    assert c.get("replies_returned", 0) > 0, (c, s.ledger)
    assert c.get("returns", 0) + c["replies_returned"] == s.ledger.returned, (c, s.ledger)
    assert c["requests"] == c["replies"] + c.get("returns", 0) + c.get("timeouts", 0), c
    assert s.ledger.lost == 0
