"""The child processes a test may not leave behind, as the leftover checks read them."""

from __future__ import annotations

import psutil


def running_children(proc: psutil.Process | None = None) -> dict[psutil.Process, str]:
    """`proc`'s (this process's) descendants that still run, with their command lines.

    Not counted: zombies (reaped by whoever waits for them) and multiprocessing's resource tracker,
    which the first spawned or forked-server process starts and which lives as long as this process,
    so it belongs to no single test."""
    left = {}
    for child in (proc or psutil.Process()).children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in cmd:
                left[child] = cmd
        except psutil.NoSuchProcess:
            continue
    return left
