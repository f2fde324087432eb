"""The base of the window's pages: what a page polls or runs stops when it, or the window, closes."""

from __future__ import annotations

from PySide6.QtCore import QProcess, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QWidget

from desktop.launch import end_process


def stop_timers(widget: QWidget) -> None:
    """Stop every timer in `widget`'s tree, and end every process it owns (a file check, an export):
    a closed widget polls nothing, even before it is deleted, and leaves no process behind."""
    for timer in widget.findChildren(QTimer):
        timer.stop()
    for proc in widget.findChildren(QProcess):
        proc.blockSignals(True)  # its end is nobody's news now
        end_process(proc)


class Page(QWidget):
    """A page of the main window. Shown alone (a test, a detached page), closing it stops its timers."""

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        stop_timers(self)
        super().closeEvent(event)
