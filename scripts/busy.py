#!/usr/bin/env python3
"""Run a command beside CPU hogs, as on a laptop busy with other work, to see that it still holds.

    python3 scripts/busy.py -- .venv/bin/pytest
    python3 scripts/busy.py --hogs 3 -- amqp-lab run workers --duration 30s

Starts N processes (default 2) that spin on the CPU for as long as the command
runs, then stops them and exits with the command's exit code. Prints how long
the command took and the load average before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def spin() -> None:
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the command (default 2)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if not 0 <= args.hogs <= 64:
        parser.error("--hogs takes 0 to 64")
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    before = os.getloadavg()
    started = time.monotonic()
    try:
        code = subprocess.call(command)
    except FileNotFoundError:
        print(f"busy.py: no such command: {command[0]}", file=sys.stderr)
        code = 127
    except KeyboardInterrupt:
        code = 130
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.join()
    after = os.getloadavg()
    print(
        f"busy.py: {' '.join(command)} took {time.monotonic() - started:.0f} s beside {args.hogs} busy "
        f"process(es) on {os.cpu_count()} cores; load average {before[0]:.1f} at the start, {after[0]:.1f} "
        f"at the end; exit {code}",
        file=sys.stderr,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
