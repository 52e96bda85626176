"""AMQP errors as RabbitMQ raises them: a reply code, its name and a text, closing a channel or the connection."""

from __future__ import annotations

NAMES = {
    320: "CONNECTION_FORCED",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}
CONNECTION_CODES = {320, 501, 502, 503, 504, 505, 530, 540, 541}


class AmqpFault(Exception):
    """Closes the channel (soft errors) or the connection (hard errors), as the code says."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = f"{NAMES[code]} - {text}"
        super().__init__(self.text)

    @property
    def closes_connection(self) -> bool:
        return self.code in CONNECTION_CODES


def limit(what: str, code: int = 540) -> AmqpFault:
    """Something RabbitMQ has and this broker does not: refused, never silently accepted."""
    return AmqpFault(code, f"{what} is not supported by amqp-lab's embedded broker; use RabbitMQ for it")
