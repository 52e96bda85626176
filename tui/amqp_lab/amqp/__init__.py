"""AMQP 0-9-1 as data: the object model (exchanges, queues, bindings) and RabbitMQ's routing rules.

Shared by the scenario builders, the engine's ledger, the embedded broker and the explorer's what-if, so all of
them agree on where a message goes. No I/O.
"""
