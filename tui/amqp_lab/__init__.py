"""amqp-lab: an interactive terminal lab for AMQP 0-9-1 routing topologies."""

__version__ = "0.1.0"
