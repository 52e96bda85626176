"""Scenarios as pure data: the four pattern builders, TOML files and validation. No I/O."""
