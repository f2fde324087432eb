"""The non-modal error banner: a message, a Details button, and a queue of further messages.

Every error path of the app ends here: a worker that failed, a worker that could not start,
and exceptions in the GUI itself (sys.excepthook and threading.excepthook, see app.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
)

from desktop import theme


@dataclass
class Notice:
    message: str
    details: str = ""
    level: str = "error"  # error, warning, info
    run_id: int | None = None


class ErrorBanner(QFrame):
    """Shows one notice at a time; closing it shows the next. Never takes the focus or blocks."""

    sig_show_run = Signal(int)
    """The user asked to see the run the notice is about."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.notices: list[Notice] = []
        self.icon = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count = QLabel()
        self.count.setProperty("role", "muted")
        self.show_run_button = QPushButton("Show run")
        self.show_run_button.clicked.connect(self._on_show_run_button_clicked)
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._on_details_button_toggled)
        self.close_button = QToolButton()
        theme.set_icon(self.close_button, "close")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setMaximumHeight(220)
        self.details.hide()

        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.message, 1)
        top.addWidget(self.count)
        top.addWidget(self.show_run_button)
        top.addWidget(self.details_button)
        top.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.details)
        self.hide()

    def show_error(self, message: str, details: str = "", run_id: int | None = None) -> None:
        self.push(Notice(message, details, "error", run_id))

    def push(self, notice: Notice) -> None:
        if any(n.message == notice.message for n in self.notices):
            return  # the same problem again (a poll failing every second): once is enough
        self.notices.append(notice)
        if len(self.notices) == 1:
            self._show_current()
        else:
            self._update_count()

    def current(self) -> Notice | None:
        return self.notices[0] if self.notices else None

    def dismiss(self) -> None:
        if self.notices:
            self.notices.pop(0)
        self._show_current()

    def _show_current(self) -> None:
        notice = self.current()
        if notice is None:
            self.hide()
            return
        self.setProperty("level", notice.level)
        self.style().unpolish(self)
        self.style().polish(self)
        t = theme.current()
        color = {"error": t.error, "warning": t.warning}.get(notice.level, t.accent)
        self.icon.setPixmap(theme.icon({"error": "error", "warning": "warning"}.get(notice.level, "info"),
                                       color).pixmap(20, 20))
        self.message.setText(notice.message)
        self.details.setPlainText(notice.details)
        self.details_button.setVisible(bool(notice.details))
        self.details_button.setChecked(False)
        self.show_run_button.setVisible(notice.run_id is not None)
        self._update_count()
        self.show()

    def _update_count(self) -> None:
        more = len(self.notices) - 1
        self.count.setText(f"+{more} more" if more > 0 else "")

    def _on_details_button_toggled(self, on: bool) -> None:
        self.details.setVisible(on)
        self.details_button.setText("Hide details" if on else "Details")

    def _on_show_run_button_clicked(self) -> None:
        notice = self.current()
        if notice is not None and notice.run_id is not None:
            self.sig_show_run.emit(notice.run_id)
