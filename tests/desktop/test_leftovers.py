"""The leftover check itself: a shown window or a running timer is found; a closed page stops its timers."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from desktop.widgets.page import Page
from tests.conftest import qt_leftovers


def _with_timer(widget: QWidget) -> QTimer:
    timer = QTimer(widget)
    timer.setInterval(250)
    timer.start()
    return timer


def test_a_shown_window_and_its_running_timer_are_found(qapp, qtbot):
    widget = QWidget()
    widget.setWindowTitle("left open")
    _with_timer(widget)
    widget.show()
    shown, timers, leftover = qt_leftovers(qapp)
    assert shown == ["QWidget 'left open'"] and timers == ["QWidget.QTimer (250 ms)"] and leftover == [widget]
    widget.close()  # a plain widget closes but keeps polling until it is deleted
    shown, timers, _ = qt_leftovers(qapp)
    assert shown == [] and timers == ["QWidget.QTimer (250 ms)"]
    widget.deleteLater()
    qtbot.waitUntil(lambda: qt_leftovers(qapp)[1] == [])


def test_closing_a_page_stops_every_timer_in_it(qapp, qtbot):
    page = Page()
    qtbot.addWidget(page)
    inner = QWidget(page)
    timers = [_with_timer(page), _with_timer(inner)]
    page.show()
    page.close()
    assert not any(t.isActive() for t in timers)
    assert qt_leftovers(qapp)[:2] == ([], [])
