"""How far a stage is and how long it has left, in words: shared by the command line and the GUI. No Qt here."""

from __future__ import annotations

import time


def fmt_duration(seconds: float | None) -> str:
    """45s, 3m 07s, 2h 05m; "?" when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def eta(stage: dict) -> float | None:
    """Seconds left in a stage, from its pace so far."""
    done, total, started = stage.get("progress") or 0, stage.get("total_steps") or 0, stage.get("started")
    if not (done and total and started):
        return None
    return (time.time() - started) / done * (total - done)
