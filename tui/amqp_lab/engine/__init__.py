"""Runs a scenario on a broker: declares its topology, runs simulated clients, injects faults, keeps the ledger."""
