"""The Compare page's table of problems: one row per prompt, one column per source, the first sample of each.

Generations arrive in polls (`WHERE id > ?`); `add` appends the rows of new prompts with
beginInsertRows and marks the rows that got an answer from another source changed, so a poll
costs what it brings, not what the table holds (a QTableWidget rebuilt on every poll cost O(n) per
poll, O(n^2) over an evaluation).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from desktop import theme

_Index = QModelIndex | QPersistentModelIndex


class PairsModel(QAbstractTableModel):
    """Prompts (rows) by sources (columns 1..); column 0 is the problem's text."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sources: list[str] = []
        self._titles: list[str] = []
        self._order: list[str] = []  # prompt ids, in the order their first answer came
        self._row_of: dict[str, int] = {}
        self._first: dict[str, dict[str, dict[str, Any]]] = {}  # prompt id -> source -> first sample

    # ---- filling ----------------------------------------------------------------------------------
    def clear(self) -> None:
        self.beginResetModel()
        self.sources, self._titles = [], []
        self._order, self._row_of, self._first = [], {}, {}
        self.endResetModel()

    def set_sources(self, sources: list[str], titles: list[str]) -> bool:
        """The columns: the evaluation's sources and what to call them; False if they stand as they were."""
        if sources == self.sources and titles == self._titles:
            return False
        if len(sources) != len(self.sources):
            self.beginResetModel()
            self.sources, self._titles = list(sources), list(titles)
            self.endResetModel()
            return True
        self.sources, self._titles = list(sources), list(titles)
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 1, len(sources))
        return True

    def add(self, generations: list[dict[str, Any]]) -> None:
        """Take a poll's new generations (their sources are columns already: set_sources)."""
        fresh: list[str] = []
        changed: list[int] = []
        for g in generations:
            prompt_id = g["prompt_id"]
            by_source = self._first.get(prompt_id)
            if by_source is None:
                by_source = self._first[prompt_id] = {}
                fresh.append(prompt_id)
            if g["source"] not in by_source:  # the first sample stands for the prompt in the table
                by_source[g["source"]] = g
                if prompt_id in self._row_of:
                    changed.append(self._row_of[prompt_id])
        if fresh:
            first = len(self._order)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            for prompt_id in fresh:
                self._row_of[prompt_id] = len(self._order)
                self._order.append(prompt_id)
            self.endInsertRows()
        if changed:
            self.dataChanged.emit(self.index(min(changed), 1), self.index(max(changed), len(self.sources)))

    def samples(self, row: int) -> dict[str, dict[str, Any]]:
        """The first sample of each source for the prompt in `row`."""
        return self._first[self._order[row]]

    # ---- the model --------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else 1 + len(self.sources)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 (Qt override)
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section <= len(self.sources):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return "Problem" if section == 0 else self._titles[section - 1]
        if role == Qt.ItemDataRole.ToolTipRole and section:
            return self.sources[section - 1]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        by_source = self._first[self._order[index.row()]]
        if index.column() == 0:
            if role == Qt.ItemDataRole.DisplayRole:
                first = next(iter(by_source.values()))
                return " ".join(str(first["prompt"]).split())[:100]
            return None
        g = by_source.get(self.sources[index.column() - 1])
        if role == Qt.ItemDataRole.DisplayRole:
            return "…" if g is None else f"{'✓' if g['correct'] else '✗'}  {g['tokens']} tokens"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.ForegroundRole and g is not None:
            t = theme.current()
            return QColor(t.success if g["correct"] else t.error)
        return None
