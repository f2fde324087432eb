"""Starting engine processes from the GUI: the one place that knows how a `ponder` command, a
module of the engine or a supervised worker is started.

Long jobs (a run's worker, an evaluation) start detached through desktop.supervise, so they
outlive the window and record their exit code in their folder; short ones (a file check, an
export) run in a QProcess the page owns, read asynchronously, never waited for.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QProcess


def module_argv(module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS...` with this interpreter (the engine runs in the GUI's environment)."""
    return [sys.executable, "-m", module, *args]


def ponder_argv(*args: str) -> list[str]:
    """The `ponder ARGS...` command line (the console script's entry point, without Qt)."""
    return module_argv("desktop.entry", *args)


def start_supervised(folder: str | Path, argv: list[str]) -> int | None:
    """Start `argv` detached under desktop.supervise, which writes its log and exit code into
    `folder`; the supervisor's pid, or None if it could not start."""
    ok, pid = QProcess.startDetached(sys.executable, ["-m", "desktop.supervise", str(folder), "--", *argv],
                                     os.getcwd())
    return pid if ok else None


def start_process(proc: QProcess, argv: list[str]) -> None:
    """Start `argv` in `proc` with separate stdout and stderr; its signals report the rest."""
    proc.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
    proc.start(argv[0], argv[1:])


def end_process(proc: QProcess) -> None:
    """Kill a process the GUI owns and reap it (a closing window leaves none behind)."""
    if proc.state() != QProcess.ProcessState.NotRunning:
        proc.kill()
        proc.waitForFinished(2000)  # a killed process is gone at once; this only reaps it
