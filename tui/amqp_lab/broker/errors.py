"""Typed broker failures, each with a one-line message that says what to fix."""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every failure the broker layer reports; str() is the human message."""


class AmqpError(BrokerError):
    """The AMQP connection could not be made or was lost."""

    # Retrying cannot help: the settings must change first.
    fatal = False


class AmqpUnreachable(AmqpError):
    pass


class AmqpTimeout(AmqpError):
    pass


class AmqpAccessRefused(AmqpError):
    fatal = True


class AmqpVhostNotAllowed(AmqpError):
    fatal = True


class AmqpTlsError(AmqpError):
    fatal = True


class AmqpProtocolError(AmqpError):
    pass


class ManagementError(BrokerError):
    """The management HTTP API did not give a usable answer."""


class ManagementUnreachable(ManagementError):
    pass


class ManagementTimeout(ManagementError):
    pass


class ManagementUnauthorized(ManagementError):
    pass


class ManagementForbidden(ManagementError):
    pass


class ManagementNotFound(ManagementError):
    pass


class ManagementServerError(ManagementError):
    pass


class ManagementBadResponse(ManagementError):
    pass


class ManagementTlsError(ManagementError):
    pass


class ManagementObjectGone(ManagementError):
    """The queue or exchange asked for does not exist (any more)."""


class ReadOnlyRefused(BrokerError):
    """Read-only mode: the lab refused to change the broker."""


class ManagementUnavailable(ManagementError):
    """The lab has no management API client: not connected, or its TLS files did not load."""


class ManagementRefused(ManagementError):
    """The broker understood the request and refused it (HTTP 400), saying why."""
