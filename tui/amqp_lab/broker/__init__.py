"""Talking to the broker: the AMQP connection manager and the management API client.

Runs headless: nothing here imports Textual.
"""
