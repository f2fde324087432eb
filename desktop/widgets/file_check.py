"""A user file checked by the engine's own reader: `ponder data check FILE --json` in a QProcess.

The preview shows what the run will read, row for row, because the same command reads it
(engine/data/files.py); the GUI never parses a user file itself and never loads pyarrow or
datasets. The answer is the command's JSON (see Report.as_dict), or {"error": ...} when the
check itself could not run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal

from desktop.launch import ponder_argv, start_process


def check_argv(path: str, question: str, answer: str, reasoning: str = "", difficulty: str = "") -> list[str]:
    """The `ponder data check --json` command for a file and its column mapping."""
    args = ["data", "check", path, "--question", question, "--answer", answer, "--json"]
    args += ["--reasoning", reasoning] if reasoning else []
    args += ["--difficulty", difficulty] if difficulty else []
    return ponder_argv(*args)


def check_message(result: dict[str, Any]) -> tuple[bool, str]:
    """(usable, one line for the user) from a check's answer."""
    if result.get("error"):
        return False, result["error"]
    name = Path(result.get("path") or "").name or "the file"
    if result.get("fatal"):
        return False, f"{name} cannot be used: {result['fatal']}"
    kept, dropped, total = result.get("kept", 0), result.get("dropped", 0), result.get("total_rows", 0)
    if not result.get("ok"):
        first = result.get("problems") or []
        why = f"; {result.get('row_label', 'row')} {first[0][0]}: {first[0][1]}" if first else ""
        return False, f"{name} cannot be used: none of its {total} rows is usable{why}"
    return True, f"✓ {kept} rows usable" + (f", {dropped} dropped (see below)" if dropped else "")


class FileCheck(QObject):
    """One `ponder data check` at a time; `start` while one runs is refused (the caller retries)."""

    sig_finished = Signal(object)
    """A check ended; the argument is its answer (a dict)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._proc: QProcess | None = None

    def running(self) -> bool:
        return self._proc is not None

    def start(self, argv: list[str]) -> bool:
        if self._proc is not None:
            return False
        self._proc = QProcess(self)
        self._proc.finished.connect(self._on_proc_finished)
        self._proc.errorOccurred.connect(self._on_proc_error_occurred)
        start_process(self._proc, argv)
        return True

    def _on_proc_error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._proc is not None:
            self._done({"error": f"could not start the file check: {self._proc.errorString()}"})

    def _on_proc_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        proc = self._proc
        if proc is None:
            return
        out = bytes(proc.readAllStandardOutput()).decode("utf-8", errors="replace").strip()
        err = bytes(proc.readAllStandardError()).decode("utf-8", errors="replace").strip()
        try:
            result = json.loads(out.splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            last = err.splitlines()[-1] if err else "no answer"  # the last line, never a whole traceback
            result = {"error": f"the file check failed (exit code {code}): {last[-300:]}"}
        self._done(result)

    def _done(self, result: dict[str, Any]) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.deleteLater()
        self.sig_finished.emit(result)
