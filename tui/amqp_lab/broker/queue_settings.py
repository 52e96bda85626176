"""What a queue actually does with its messages: its arguments and its policy, merged as RabbitMQ merges them.

A numeric limit given both ways takes the lower value; any other setting
given both ways takes the queue's own argument. The management API already
merges the policy with the operator policy (`effective_policy_definition`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqp_lab.broker.models import QueueDetail

# RabbitMQ's default consumer_timeout (rabbitmq.conf), 30 minutes since 3.8.15.
DEFAULT_CONSUMER_TIMEOUT_MS = 30 * 60 * 1000


@dataclass(frozen=True)
class Rule:
    label: str
    argument: str
    policy_key: str
    numeric: bool
    meaning: str


RULES = (
    Rule("message TTL", "x-message-ttl", "message-ttl", True, "ms a message may wait, then expires"),
    Rule(
        "dead-letter exchange",
        "x-dead-letter-exchange",
        "dead-letter-exchange",
        False,
        "expired, rejected and dropped messages go here",
    ),
    Rule(
        "dead-letter routing key",
        "x-dead-letter-routing-key",
        "dead-letter-routing-key",
        False,
        "their new routing key",
    ),
    Rule("max length", "x-max-length", "max-length", True, "messages held at most"),
    Rule("max length bytes", "x-max-length-bytes", "max-length-bytes", True, "bytes of bodies held at most"),
    Rule("overflow", "x-overflow", "overflow", False, "what happens when full"),
    Rule("expires", "x-expires", "expires", True, "ms unused before the queue itself is deleted"),
    Rule("consumer timeout", "x-consumer-timeout", "consumer-timeout", True, "ms a delivery may stay unacked"),
)


@dataclass(frozen=True)
class Setting:
    label: str
    value: Any
    source: str  # "argument", "policy NAME", or "default"
    meaning: str


def _policy_name(detail: QueueDetail) -> str:
    names = [name for name in (detail.policy, detail.operator_policy) if name]
    return "policy " + " + ".join(names) if names else "policy"


def effective_settings(detail: QueueDetail) -> list[Setting]:
    """Every rule set on the queue, by argument or policy, with the value that applies and where it comes from."""
    found: list[Setting] = []
    for rule in RULES:
        argument = detail.arguments.get(rule.argument)
        policy = detail.effective_policy.get(rule.policy_key)
        if argument is None and policy is None:
            continue
        if argument is not None and policy is not None and rule.numeric and _number(policy) < _number(argument):
            found.append(Setting(rule.label, policy, _policy_name(detail), rule.meaning))
        elif argument is not None:
            found.append(Setting(rule.label, argument, "argument", rule.meaning))
        else:
            found.append(Setting(rule.label, policy, _policy_name(detail), rule.meaning))
    if any(s.label == "max length" or s.label == "max length bytes" for s in found) and not any(
        s.label == "overflow" for s in found
    ):
        found.append(Setting("overflow", "drop-head", "default", "the oldest message is dropped when full"))
    return found


def consumer_timeout_ms(settings: list[Setting]) -> tuple[float, str]:
    """The consumer timeout that applies (of the queue's effective settings), and where it comes from."""
    for setting in settings:
        if setting.label == "consumer timeout":
            return _number(setting.value), setting.source
    return DEFAULT_CONSUMER_TIMEOUT_MS, "broker default (rabbitmq.conf consumer_timeout may differ)"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("inf")  # a value RabbitMQ would refuse: never the lower one
    return float(value)
