"""The views of one evaluation, as tabs: frontier (click a point: its answers, or export it), pass@k,
thinking budget, and per-difficulty table and bars. The Runs and Compare pages both show it."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.evalcharts import LEVEL_METRICS, BudgetPlots, FrontierPlot, LevelBars, PassAtKPlot
from desktop.widgets.forms import ComboBox, label
from desktop.widgets.trace_view import completion_html
from engine.evalstats import level_table, source_title


def _cell(value: Any, kind: str) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.0%}" if kind == "pct" else f"{value:.1f}"


class TracesDialog(QDialog):
    """The answers one model or checkpoint gave in an evaluation (first sample of each problem)."""

    def __init__(self, store, eval_id: int, source: str, title: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Answers of {title} (evaluation #{eval_id})")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.rows = [g for g in store.generations(eval_id) if g["source"] == source and not g.get("budget")]
        first = {}
        for g in self.rows:
            first.setdefault(g["prompt_id"], g)
        self.text = QTextBrowser()
        parts = []
        for g in first.values():
            mark = "✓" if g["correct"] else "✗"
            parts.append(f"<p><b>{mark} {g['prompt']}</b> · {g['tokens']} tokens</p>"
                         + completion_html({**g, "step": None, "reward": None, "rewards": {}}, show_think=True))
        self.text.setHtml("<hr>".join(parts) or "<i>no answers stored</i>")
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        self.resize(640, 560)


class EvalViews(QTabWidget):
    sig_export_checkpoint = Signal(int, str)
    """The user wants to export a run's weights; arguments: run id, "" (final adapter) or "STAGE:STEP"."""

    def __init__(self, store, parent=None):
        super().__init__(parent)
        self.store = store
        self.evaluation: dict[str, Any] | None = None
        self.selected: dict[str, Any] | None = None
        self.dialogs: list[TracesDialog] = []
        self.frontier = FrontierPlot()
        self.frontier.sig_point_clicked.connect(self._on_frontier_point_clicked)
        self.point_label = label("Click a point to see that model's answers or to export that checkpoint.",
                                 "muted")
        self.point_label.setWordWrap(True)
        self.traces_button = QPushButton("Show its answers")
        self.traces_button.clicked.connect(self._on_traces_button_clicked)
        self.export_button = QPushButton("Export this checkpoint…")
        self.export_button.clicked.connect(self._on_export_button_clicked)
        for b in (self.traces_button, self.export_button):
            b.setEnabled(False)
        frontier_box = QWidget()
        box = QVBoxLayout(frontier_box)
        box.setContentsMargins(0, 4, 0, 0)
        box.addWidget(self.frontier, 1)
        row = QHBoxLayout()
        row.addWidget(self.point_label, 1)
        row.addWidget(self.traces_button)
        row.addWidget(self.export_button)
        box.addLayout(row)
        self.pass_at_k = PassAtKPlot()
        self.budgets = BudgetPlots()
        self.levels_table = QTableWidget(0, 0)
        self.levels_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.levels_table.verticalHeader().hide()
        self.levels_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.level_metric = ComboBox()
        for key, text, _ in LEVEL_METRICS:
            self.level_metric.addItem(text, key)
        self.level_metric.currentIndexChanged.connect(self._on_level_metric_index_changed)
        self.level_bars = LevelBars()
        levels_box = QWidget()
        levels = QHBoxLayout(levels_box)
        levels.setContentsMargins(0, 4, 0, 0)
        table_box = QVBoxLayout()
        table_box.addWidget(label("Each cell: accuracy · mean tokens · think-rate", "muted"))
        table_box.addWidget(self.levels_table, 1)
        levels.addLayout(table_box, 1)
        bars = QVBoxLayout()
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Bars of"))
        pick.addWidget(self.level_metric)
        pick.addStretch(1)
        bars.addLayout(pick)
        bars.addWidget(self.level_bars, 1)
        levels.addLayout(bars, 1)
        self.addTab(frontier_box, "Accuracy vs. tokens")
        self.addTab(self.pass_at_k, "pass@k")
        self.addTab(self.budgets, "Thinking budget")
        self.addTab(levels_box, "By difficulty")

    def set_evaluation(self, ev: dict[str, Any] | None) -> None:
        """Draw this evaluation (a row of the store's `evaluations`); None clears every view."""
        self.evaluation = ev
        summary = (ev or {}).get("summary") or {}
        self.frontier.set_summary(summary)
        self.pass_at_k.set_summary(summary)
        self.budgets.set_summary(summary)
        self.level_bars.set_summary(summary)
        self._fill_levels_table(summary)
        self._select(None)

    def _fill_levels_table(self, summary: dict[str, Any]) -> None:
        """A row per model, a column per level; each cell: accuracy · tokens · think-rate."""
        levels, labels, values = level_table(summary)
        self.levels_table.setColumnCount(1 + len(levels))
        self.levels_table.setHorizontalHeaderLabels(["Model", *(f"level {lv}" for lv in levels)])
        for c in range(1, 1 + len(levels)):
            self.levels_table.horizontalHeaderItem(c).setToolTip("accuracy · mean tokens · think-rate")
        self.levels_table.setRowCount(len(labels))
        for r, lb in enumerate(labels):
            self.levels_table.setItem(r, 0, QTableWidgetItem(source_title(lb, summary[lb])))
            for c, level in enumerate(levels, start=1):
                acc, tok, think = values[lb][level]
                item = QTableWidgetItem(f"{_cell(acc, 'pct')} · {_cell(tok, 'num')} · {_cell(think, 'pct')}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.levels_table.setItem(r, c, item)
        header = self.levels_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def _on_level_metric_index_changed(self, _index: int) -> None:
        self.level_bars.set_metric(self.level_metric.currentData())

    # ---- a clicked point ------------------------------------------------------------------------------
    def _on_frontier_point_clicked(self, point: dict[str, Any]) -> None:
        self._select(point)

    def _select(self, point: dict[str, Any] | None) -> None:
        self.selected = point
        self.traces_button.setEnabled(point is not None)
        self.export_button.setEnabled(self.export_target() is not None)
        if point is None:
            self.point_label.setText("Click a point to see that model's answers or to export that checkpoint.")
            return
        self.export_button.setText("Export this checkpoint…" if point["role"] == "checkpoint" else "Export…")
        self.point_label.setText(
            f"<b>{point['title']}</b>: accuracy {point['y']:.1%} (95% interval {point['lo']:.0%}–{point['hi']:.0%}),"
            f" {point['x']:.1f} tokens per answer{' · on the Pareto front' if point['pareto'] else ''}")

    def export_target(self) -> tuple[int, str] | None:
        """(run id, weights key for the Export page) of the selected point, if it is a run's weights."""
        point, ev = self.selected, self.evaluation or {}
        if point is None:
            return None
        info = ((ev.get("summary") or {}).get(point["label"]) or {})
        run_id = info.get("run_id") or ev.get("run_id")
        if run_id is None or point["role"] not in ("checkpoint", "trained"):
            return None
        return int(run_id), (f"{point['stage']}:{point['step']}" if point["role"] == "checkpoint" else "")

    def _on_traces_button_clicked(self) -> None:
        if self.selected is None or self.evaluation is None:
            return
        dialog = TracesDialog(self.store, self.evaluation["id"], self.selected["label"], self.selected["title"],
                              self)
        dialog.destroyed.connect(lambda *_: self.dialogs.remove(dialog) if dialog in self.dialogs else None)
        self.dialogs.append(dialog)
        dialog.show()  # non-modal

    def _on_export_button_clicked(self) -> None:
        target = self.export_target()
        if target is not None:
            self.sig_export_checkpoint.emit(*target)
