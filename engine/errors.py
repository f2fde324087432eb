"""Errors whose message is complete for a user: it names the file or field and says what to do.

The command line prints such a message as it is (no traceback) and exits non-zero; the GUI
shows it in its banner. No imports here: every engine module may raise these.
"""

from __future__ import annotations


class PonderError(Exception):
    """A problem the user can fix; `str(exc)` is the whole message."""


class StoreError(PonderError):
    """The run store cannot be opened or used (damaged, read-only, locked, not a file)."""


class RunNotFound(PonderError, KeyError):
    """No run (or evaluation) with that id. A KeyError too, for callers that catch that."""

    def __str__(self) -> str:  # KeyError's str() quotes its argument
        return str(self.args[0]) if self.args else "no such run"


class RunBusy(PonderError):
    """The run is already queued or running: a second worker for it is refused."""


class HomeError(PonderError):
    """The Ponder home (PONDER_HOME) is not a usable folder."""
