"""The lab on a three-node RabbitMQ cluster: the nodes in the header, failover, where queues live, and a node
stopped in the middle of a run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
from amqp_lab.broker.connection import Backoff, ConnectionManager, ConnectionState
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import make_app
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.workshop import experiment
from textual.widgets import Static

from tests.conftest import deadline, settings_for, wait_for
from tests.engine.conftest import lab_objects


def on_cluster(cluster: Any, first: int = 1) -> Settings:
    """AMQP and the management API of every node, node `first` tried first."""
    nodes = [cluster.node(first), *(node for node in cluster.nodes if node is not cluster.node(first))]
    return settings_for(
        cluster,
        amqp_url=",".join(node.amqp_url for node in nodes),
        management_url=",".join(node.management_url for node in nodes),
        heartbeat=2,
    )


@asynccontextmanager
async def node_down(cluster: Any, number: int) -> AsyncIterator[None]:
    """The broker on one node stopped (rabbitmqctl stop_app), and started again on leaving."""
    await asyncio.to_thread(cluster.stop_node, number)
    try:
        yield
    finally:
        await asyncio.to_thread(cluster.start_node, number)


def label(node: Any) -> str:
    return str(node.name.partition("@")[0])


async def test_the_script_makes_one_named_cluster_of_three_running_nodes(cluster: Any) -> None:
    assert sorted(cluster.running()) == sorted(node.name for node in cluster.nodes)
    async with ManagementClient(on_cluster(cluster)) as management:
        assert (await management.overview()).cluster_name == "amqp-lab-test"
        nodes = await management.nodes()
    assert sorted(node.name for node in nodes) == sorted(node.name for node in cluster.nodes)
    assert all(node.state == "running" for node in nodes)


async def test_the_header_shows_a_node_go_down_and_come_back(cluster: Any) -> None:
    app = make_app(on_cluster(cluster), backoff=Backoff(0.2, 1.0))
    async with app.run_test(size=(160, 40)):

        def badge() -> str:
            return str(app.screen.query_one("#cluster-badge", Static).content)

        await wait_for(lambda: badge() == "cluster amqp-lab-test ● 3/3 up", what="three nodes up in the header")
        async with node_down(cluster, 3):
            await wait_for(
                lambda: badge() == f"cluster amqp-lab-test ● 2/3 up: {label(cluster.node(3))} down",
                what="node 3 down in the header",
            )
            assert app.screen.query_one("#cluster-badge").has_class("-busy")
        await wait_for(lambda: badge() == "cluster amqp-lab-test ● 3/3 up", what="node 3 back in the header")


async def test_the_management_api_fails_over_to_the_next_node_and_says_the_first_is_down(cluster: Any) -> None:
    async with ManagementClient(on_cluster(cluster, first=2)) as management:
        assert (await management.overview()).node == cluster.node(2).name
        async with node_down(cluster, 2):
            overview = await management.overview()
            assert overview.node == cluster.node(1).name  # asked on the next node of the list
            down = {node.name: node.state for node in await management.nodes()}
            assert down[cluster.node(2).name] == "down"
            assert management.settings.management_display == cluster.node(1).management_url


async def test_the_connection_fails_over_to_the_next_node(cluster: Any) -> None:
    manager = ConnectionManager(on_cluster(cluster, first=2), Backoff(0.2, 1.0))
    seen: list[tuple[ConnectionState, str]] = []
    manager.add_listener(lambda status: seen.append((status.state, status.endpoint)))
    try:
        status = await manager.connect()
        assert status.state is ConnectionState.CONNECTED and f":{cluster.node(2).amqp_port}/" in status.endpoint
        async with node_down(cluster, 2):
            await wait_for(
                lambda: (
                    manager.status.state is ConnectionState.CONNECTED
                    and f":{cluster.node(1).amqp_port}/" in manager.status.endpoint
                ),
                what="connected again, to the next node in the list: node 1",
            )
        assert any(state is ConnectionState.RECONNECTING for state, _ in seen)
    finally:
        await manager.close()


async def test_a_quorum_queue_has_three_members_and_a_new_leader_when_its_leader_stops(cluster: Any) -> None:
    settings = on_cluster(cluster, first=2)
    connection = await aio_pika.connect(cluster.node(2).amqp_url)
    name = "cluster.placement"
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        async with ManagementClient(settings) as management:

            async def placed() -> tuple[str, tuple[str, ...], tuple[str, ...]]:
                found = await management.queue(settings.vhost, name)
                return found.stats.leader, found.stats.members, found.stats.online

            leader, members, online = await placed()
            assert leader == cluster.node(2).name  # declared through node 2
            assert sorted(members) == sorted(online) == sorted(node.name for node in cluster.nodes)
            await connection.close()
            async with node_down(cluster, 2):

                async def moved() -> bool:
                    leader, _, online = await placed()
                    return leader != cluster.node(2).name and cluster.node(2).name not in online

                await wait_for(moved, what="a new leader, and node 2 offline")
    finally:
        if not connection.is_closed:
            await connection.close()
        async with await aio_pika.connect(cluster.node(1).amqp_url) as cleanup:
            await (await cleanup.channel()).queue_delete(name)


async def run_with_node_failure(cluster: Any, *overrides: str) -> tuple[RunSnapshot, list[RunSnapshot]]:
    """A workers run through node 2 first; node 2 stopped once tasks flow, started again once the run has said so;
    the run ends when it has said node 2 is back and work has gone on (stopping a node takes 10-15 s on a loaded
    machine: a run of fixed length could end before it saw anything)."""
    settings = on_cluster(cluster, first=2)
    run = Run(load("workers", ["workers.rate=100", "workers.processing=5ms", *overrides]), settings)
    seen: list[RunSnapshot] = []
    texts: set[str] = set()  # every event text seen: a snapshot carries only the latest hundred while running

    def listen(snapshot: RunSnapshot) -> None:
        seen.append(snapshot)
        texts.update(e.text for e in snapshot.events)

    run.add_listener(listen)
    stop = asyncio.Event()
    execution = asyncio.create_task(run.execute(duration=3600, stop=stop))
    node = label(cluster.node(2))
    try:
        await wait_for(lambda: bool(seen) and seen[-1].ledger.acked > 100, what="tasks flowing")
        down_at = len(seen)
        async with node_down(cluster, 2):
            await wait_for(
                lambda: any(text.startswith(f"node {node}:") for text in texts),
                timeout=30,
                what="the run's events to say node 2 went down",
            )
        await wait_for(lambda: f"node {node}: down → running" in texts, what="the run's events to say node 2 is back")
        back = seen[-1].ledger.acked
        await wait_for(
            lambda: seen[-1].outage is None and seen[-1].ledger.acked > max(back + 200, 1000),
            timeout=60,
            what="work going on with node 2 back",
        )
        stop.set()
        final = await asyncio.wait_for(execution, deadline(90))
    finally:
        if not execution.done():
            execution.cancel()
    assert final.state == "finished"
    assert run.leftovers == []

    async def nothing_left() -> bool:  # the management API of a cluster lists a deletion a moment later
        return await lab_objects(settings, run.run_id) == []

    await wait_for(nothing_left, timeout=15, what="nothing of the run left on the broker")
    return final, seen[down_at:]


async def test_a_node_stopped_mid_run_loses_nothing_with_quorum_queues(cluster: Any) -> None:
    final, _ = await run_with_node_failure(cluster)
    tasks = next(q for q in final.queues if q.name.endswith(".tasks"))
    assert tasks.place is not None and tasks.place.type == "quorum" and tasks.place.replicas == 3
    texts = [e.text for e in final.events]
    assert f"node {label(cluster.node(2))}: running → down" in texts
    assert f"node {label(cluster.node(2))}: down → running" in texts
    assert any(text.startswith(f"leader moved from {label(cluster.node(2))} to ") for text in texts)
    # They were on node 2: each said it lost its connection and came back (a state of "reconnecting" may last less
    # than the time between two snapshots: the events are the record).
    for client in final.clients:
        said = [e.kind for e in final.events if e.client == client.name]
        assert "disconnect" in said and "restart" in said[said.index("disconnect") :], (client.name, said)
    assert final.counters["reconnects"] >= len(final.clients)
    assert final.ledger.lost == 0 and final.ledger.outstanding == 0
    assert final.ledger.acked > 1000  # work went on on the other nodes


async def test_a_classic_queue_whose_node_is_down_is_shown_unavailable(cluster: Any) -> None:
    final, after = await run_with_node_failure(cluster, "workers.queue_type='classic'")
    down = [s for s in after if s.outage is not None]
    assert down, "the run never said the broker was unavailable"
    assert any("down or inaccessible" in s.outage_reason for s in down)  # RabbitMQ's words for the queue
    assert any(q.place is not None and q.place.state == "down" for s in after for q in s.queues)
    assert final.outage is None and final.ledger.acked > after[0].ledger.acked  # back, and working again


async def test_the_node_failure_workshop_goes_on_as_a_node_stops_and_comes_back(cluster: Any, tmp_path: Path) -> None:
    app = make_app(on_cluster(cluster), backoff=Backoff(0.2, 1.0), experiment=experiment("node-failure"))
    app.export_dir = tmp_path
    runs: list[str] = []
    async with app.run_test(size=(160, 40)) as pilot:

        def step_panel() -> str:
            if not isinstance(app.screen, LiveRunScreen):
                return ""
            return " ".join(
                str(app.screen.query_one(f"#workshop-{part}", Static).content) for part in ("advance", "progress")
            )

        await wait_for(lambda: "once a node is down: 3 running" in step_panel(), timeout=60, what="step 1 waiting")
        assert app.run_latest is not None
        runs.append(app.run_latest.run_id)
        async with node_down(cluster, 3):
            await wait_for(lambda: "step 2 of 3" in step_panel(), timeout=60, what="step 2 once node 3 is down")
            await wait_for(lambda: "once every node runs: 1 down" in step_panel(), what="step 2 waiting")
        await wait_for(lambda: "step 3 of 3" in step_panel(), timeout=90, what="step 3 once node 3 is back")

        def classic_run() -> bool:  # the rerun with a classic queue
            latest = app.run_latest
            return latest is not None and latest.run_id not in runs and latest.state == "running"

        await wait_for(classic_run, timeout=60, what="the rerun with a classic queue")
        assert app.run_latest is not None
        runs.append(app.run_latest.run_id)
        await wait_for(
            lambda: any(q.place is not None and q.place.type == "classic" for q in app.run_latest.queues),  # type: ignore[union-attr]
            what="its classic queue placed",
        )
        await pilot.press("q")
    for run_id in runs:
        assert await lab_objects(on_cluster(cluster), run_id) == []
