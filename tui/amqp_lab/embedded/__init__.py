"""The embedded broker: AMQP 0-9-1 and the management API subset the lab uses, in pure Python."""
