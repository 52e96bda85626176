"""Simulated clients, one module per role; `make_client` picks the role a spec asks for."""

from __future__ import annotations

from amqp_lab.engine.clients.base import Client
from amqp_lab.engine.clients.consumer import Consumer
from amqp_lab.engine.clients.producers import Publisher
from amqp_lab.engine.clients.reducer import Reducer
from amqp_lab.engine.clients.requesters import Requester, Submitter
from amqp_lab.engine.context import RunContext
from amqp_lab.scenario.plan import ClientSpec, ConsumerSpec, PublisherSpec, ReducerSpec, RequesterSpec


def make_client(spec: ClientSpec, ctx: RunContext) -> Client:
    if isinstance(spec, PublisherSpec):
        return Publisher(spec, ctx)
    if isinstance(spec, ConsumerSpec):
        return Consumer(spec, ctx)
    if isinstance(spec, RequesterSpec):
        return Requester(spec, ctx)
    if isinstance(spec, ReducerSpec):
        return Reducer(spec, ctx)
    return Submitter(spec, ctx)
