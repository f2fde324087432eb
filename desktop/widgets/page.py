"""The base of the window's pages: what a page polls stops when it, or the window, closes."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QWidget


def stop_timers(widget: QWidget) -> None:
    """Stop every timer in `widget`'s tree: a closed widget polls nothing, even before it is deleted."""
    for timer in widget.findChildren(QTimer):
        timer.stop()


class Page(QWidget):
    """A page of the main window. Shown alone (a test, a detached page), closing it stops its timers."""

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        stop_timers(self)
        super().closeEvent(event)
