"""The lab's status colours for Rich text: mid-tones that read on the dark and the light theme alike."""

from __future__ import annotations

FLOW = "bold #1E88E5"  # a moving edge
READY = "#FB8C00"  # messages waiting in a queue
UNACKED = "#1E88E5"  # delivered, not yet acknowledged
DEAD = "bold #AB47BC"  # dead letters, alternate exchanges
GOOD = "bold #43A047"
WARN = "bold #FB8C00"
BAD = "bold #E53935"
