"""The stream of sampled completions: a table (newest first) and the selected completion in full.

The detail shows the prompt, the completion with its `<think>` block folded (a link
unfolds it), the reward of each component, the token split and whether it was correct.
"""

from __future__ import annotations

import html
import re
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QUrl
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QSplitter, QTableView, QTextBrowser

from desktop import theme

_THINK = re.compile(r"(<think>)(.*?)(</think>)", re.DOTALL)
COLUMNS = ("Step", "Question", "Reward", "Tokens", "Think / answer", "Mode", "Correct")


class TraceModel(QAbstractTableModel):
    """Traces newest first; keeps at most `cap` of them (the oldest drop off)."""

    def __init__(self, cap: int = 3000, parent=None):
        super().__init__(parent)
        self.cap = cap
        self.rows: list[dict[str, Any]] = []  # oldest first; row r of the view is rows[-1 - r]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt override)
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def trace(self, row: int) -> dict[str, Any]:
        return self.rows[-1 - row]

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        t, col = self.trace(index.row()), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return t.get("step")
            if col == 1:
                return " ".join(str(t.get("prompt") or "").split())[:120]
            if col == 2:
                return f"{t['reward']:.3g}" if t.get("reward") is not None else ""
            if col == 3:
                return t.get("tokens")
            if col == 4:
                return f"{t.get('think_tokens') or 0} / {t.get('answer_tokens') or 0}"
            if col == 5:
                return "no think" if t.get("mode") == "no_think" else (t.get("mode") or "")
            if col == 6:
                return "✓" if t.get("correct") else "✗"
        if role == Qt.ItemDataRole.ForegroundRole and col == 6:
            th = theme.current()
            return QColor(th.success if t.get("correct") else th.error)
        if role == Qt.ItemDataRole.TextAlignmentRole and col != 1:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def add(self, traces: list[dict[str, Any]]) -> None:
        if not traces:
            return
        traces = traces[-self.cap:]
        self.beginInsertRows(QModelIndex(), 0, len(traces) - 1)
        self.rows.extend(traces)
        self.endInsertRows()
        extra = len(self.rows) - self.cap
        if extra > 0:  # the oldest are the last rows of the view
            self.beginRemoveRows(QModelIndex(), self.cap, self.cap + extra - 1)
            del self.rows[:extra]
            self.endRemoveRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.rows = []
        self.endResetModel()


def completion_html(trace: dict[str, Any], show_think: bool) -> str:
    """The detail of one trace as HTML; the think block folded unless `show_think`."""
    t = theme.current()
    text = str(trace.get("completion") or "")
    think_tokens = trace.get("think_tokens") or 0

    def fold(inner: str, closed: bool = True) -> str:
        if not inner.strip():
            return f"<span style='color:{t.muted}'>&lt;think&gt;&lt;/think&gt; (no thinking)</span>"
        end = "&lt;/think&gt;" if closed else " (never closed: cut off at the length limit)"
        if show_think:
            return (f"<a href='toggle-think'>▾ hide thinking</a><br>"
                    f"<span style='color:{t.muted}'>&lt;think&gt;{html.escape(inner)}{end}</span><br>")
        return f"<a href='toggle-think'>▸ thinking folded ({think_tokens} tokens): show</a><br>"

    parts, last = [], 0
    for match in _THINK.finditer(text):
        parts.append(html.escape(text[last:match.start()]))
        parts.append(fold(match.group(2)))
        last = match.end()
    rest = text[last:]
    if not parts and "</think>" in rest:  # the prompt opened the think block; the completion closes it
        head, _, rest = rest.partition("</think>")
        parts.append(fold(head))
    elif not parts and trace.get("mode") == "think" and think_tokens >= (trace.get("tokens") or 0) > 0:
        parts.append(fold(rest, closed=False))  # still thinking when the length limit cut it off
        rest = ""
    parts.append(html.escape(rest))
    completion = "".join(parts).replace("\n", "<br>")

    rewards = trace.get("rewards") or {}
    reward_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td align='right'>{'—' if v is None else f'{v:.3g}'}</td></tr>"
        for name, v in rewards.items())
    correct = (f"<span style='color:{t.success}'>correct</span>" if trace.get("correct")
               else f"<span style='color:{t.error}'>wrong</span>")
    total = trace.get("reward")
    step = f"<b>Step {trace['step']}</b> · " if trace.get("step") is not None else ""
    reward_part = ""
    if rewards or total is not None:
        reward_part = (f"<p style='color:{t.muted}'>Reward {'' if total is None else f'{total:.3g}'}</p>"
                       f"<table cellspacing='0' cellpadding='3'>{reward_rows}</table>")
    return (
        f"<p>{step}{correct} · {trace.get('tokens') or 0} tokens "
        f"({think_tokens} thinking, {trace.get('answer_tokens') or 0} answer) · "
        f"mode {html.escape(str(trace.get('mode') or ''))}</p>"
        f"<p style='color:{t.muted}'>Question</p><p>{html.escape(str(trace.get('prompt') or ''))}</p>"
        f"<p style='color:{t.muted}'>Completion</p><p style='font-family:monospace'>{completion}</p>"
        + reward_part
    )


class TraceView(QSplitter):
    """Table of traces beside the selected trace's detail."""

    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.model = TraceModel(parent=self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()  # fixed widths: sizing to contents rescans on every insert
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in enumerate((48, 0, 64, 60, 116, 70, 62)):
            if width:
                self.table.setColumnWidth(col, width)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_row_changed)
        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        self.detail.anchorClicked.connect(self._on_detail_anchor_clicked)
        self.detail.setPlaceholderText("Select a completion to read it in full.")
        self.addWidget(self.table)
        self.addWidget(self.detail)
        self.setSizes([640, 460])
        self._current: dict[str, Any] | None = None
        self._show_think = False

    def add(self, traces: list[dict[str, Any]]) -> None:
        self.model.add(traces)

    def clear(self) -> None:
        self.model.clear()
        self._current = None
        self.detail.clear()

    def show_trace(self, trace: dict[str, Any] | None) -> None:
        self._current = trace
        self._show_think = False
        self._render()

    def _render(self) -> None:
        if self._current is None:
            self.detail.clear()
        else:
            self.detail.setHtml(completion_html(self._current, self._show_think))

    def _on_table_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.show_trace(self.model.trace(current.row()) if current.isValid() else None)

    def _on_detail_anchor_clicked(self, url: QUrl) -> None:
        if url.toString() == "toggle-think":
            self._show_think = not self._show_think
            self._render()
