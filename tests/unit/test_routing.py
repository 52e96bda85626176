"""RabbitMQ's routing rules, evaluated locally (checked against the real broker in tests/broker)."""

from __future__ import annotations

import pytest
from amqp_lab.amqp.model import Binding, Exchange, Queue, Topology
from amqp_lab.amqp.routing import headers_match, route, topic_matches, topic_words


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#", "a", True),  # # matches zero words
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("*", "", False),  # "" has no words at all
        ("*", "a", True),
        ("a.*", "a.", True),  # "a." has an empty second word
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("#.c", "a.b.c", True),
        ("#.c", "c", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.b.c", True),
        ("a.#.#.c", "a.c", True),
        ("*.orders.*", "eu.orders.created", True),
        ("*.orders.*", "eu.billing.created", False),
        ("eu.#", "us.orders.paid", False),
    ],
)
def test_topic_rules(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_topic_words_split_like_rabbitmq() -> None:
    assert topic_words("") == []
    assert topic_words("a..b") == ["a", "", "b"]
    assert topic_words(".") == ["", ""]


@pytest.mark.parametrize(
    ("arguments", "headers", "expected"),
    [
        ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x", "c": 0}, True),
        ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1}, False),
        ({"x-match": "any", "a": 1, "b": "x"}, {"a": 1}, True),
        ({"x-match": "any", "a": 1}, {"a": "1"}, False),  # values compare with their types
        ({"a": 1}, {"a": 1}, True),  # all is the default
        ({"x-match": "all", "x-tag": 1}, {}, True),  # x- arguments are ignored by all/any
        ({"x-match": "all-with-x", "x-tag": 1}, {}, False),
        ({"x-match": "any-with-x", "x-tag": 1}, {"x-tag": 1}, True),
        ({"x-match": "any"}, {"a": 1}, False),  # any with nothing to match matches nothing
    ],
)
def test_headers_rules(arguments: dict, headers: dict, expected: bool) -> None:
    assert headers_match(arguments, headers) is expected


def test_route_follows_exchange_bindings_and_alternate_exchanges() -> None:
    topology = Topology(
        exchanges=(
            Exchange("in", "topic", arguments={"alternate-exchange": "unrouted"}),
            Exchange("fan", "fanout"),
            Exchange("unrouted", "fanout"),
        ),
        queues=(Queue("orders"), Queue("copy-1"), Queue("copy-2"), Queue("lost-and-found")),
        bindings=(
            Binding("in", "orders", "*.orders.*"),
            Binding("in", "fan", "#.audit", to_exchange=True),
            Binding("fan", "copy-1"),
            Binding("fan", "copy-2"),
            Binding("unrouted", "lost-and-found"),
        ),
    )
    assert route(topology, "in", "eu.orders.created") == {"orders"}
    assert route(topology, "in", "eu.orders.audit") == {"orders", "copy-1", "copy-2"}
    assert route(topology, "in", "nothing") == {"lost-and-found"}
    assert route(topology, "", "orders") == {"orders"}  # the default exchange routes by queue name
    assert route(topology, "", "missing") == frozenset()


def test_a_queue_neither_durable_nor_exclusive_is_refused() -> None:
    with pytest.raises(ValueError, match=r"RabbitMQ 4\.3 refuses"):
        Queue("shared", durable=False)
