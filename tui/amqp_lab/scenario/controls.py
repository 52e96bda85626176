"""What a run is told while it runs, as values: the keys of the live screen, a workshop's steps and the TUI's pipe
to the run's process all speak these, so a control is checked where it is written, not where it lands."""

from __future__ import annotations

from dataclasses import dataclass

from amqp_lab.scenario.model import Action


@dataclass(frozen=True)
class Inject:
    """`action` on `client`: a client's name, or a role for add, remove and rate."""

    client: str
    action: Action
    value: float | None = None  # the factor of slow, the rate of rate


@dataclass(frozen=True)
class PauseProducers:
    pass


@dataclass(frozen=True)
class ResumeProducers:
    pass


@dataclass(frozen=True)
class SetRate:
    target: str  # a producer's name or role
    rate: float | None  # per second; None: as fast as it can


@dataclass(frozen=True)
class StopRun:
    """Drain, clean up, report."""


Control = Inject | PauseProducers | ResumeProducers | SetRate | StopRun
