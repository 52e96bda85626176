"""Scenarios as pure data: topology model, the four pattern builders, TOML files and validation. No I/O."""
