"""The Runs page: every run in the store, overlaid curves of the selected ones, their specs, deletion.

Summaries (final reward, accuracy, tokens) are read once per finished run and again on
each refresh only for active runs; the overlay reads one metric's series per selected run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import tomli_w
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QRunnable, Qt, QThreadPool, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop import theme
from desktop.run_eval import RunEvaluation
from desktop.runner import RunController
from desktop.widgets.forms import ComboBox, icon_button, label
from desktop.widgets.plots import LivePlot
from desktop.widgets.timeline import fmt_duration
from desktop.widgets.page import Page
from engine.store import ACTIVE

COLUMNS = ("#", "Name", "Status", "Preset", "Model", "Reward", "Accuracy", "Tokens", "Steps", "Eval acc.",
           "Took", "Started")
TOOLTIPS = {"Reward": "total reward at the last GRPO step", "Accuracy": "accuracy at the last GRPO step",
            "Tokens": "mean completion tokens at the last GRPO step",
            "Eval acc.": "accuracy on the held-out problems (eval stage)"}
OVERLAY_METRICS = {"reward": "Reward", "accuracy": "Accuracy", "tokens/completion": "Completion tokens",
                   "tokens/think": "Thinking tokens", "think_rate": "Think rate", "loss": "Loss", "kl": "KL",
                   "tokens_per_s": "Tokens/s"}


class _NumberItem(QTableWidgetItem):
    """Sorts by the number it holds, not by its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if a is None or b is None:
            return (a is None) and (b is not None)
        return a < b


class _RemoveFolder(QRunnable):
    """Deletes a run folder off the GUI thread (checkpoints can be large)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def run(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class RunsPage(Page):
    sig_show_run = Signal(int)
    """The user wants to follow this run on the Monitor page."""
    sig_export = Signal(dict)
    """The user wants to export this run's trained model."""
    sig_compare = Signal(dict)
    """The user wants to compare this run's model with its base model."""
    sig_use_spec = Signal(dict)
    """The user wants a new run from this run's spec."""
    sig_error = Signal(str, str)
    """Something went wrong; arguments: message, details."""
    sig_export_checkpoint = Signal(int, str)
    """The user wants to export a run's weights; arguments: run id, "" (final adapter) or "STAGE:STEP"."""

    def __init__(self, controller: RunController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self._summaries: dict[int, dict[str, Any]] = {}
        self._sized_for = -1
        self._build()
        controller.sig_runs_changed.connect(self._on_controller_runs_changed)
        self._on_controller_runs_changed(controller.runs)

    def _build(self) -> None:
        title = QLabel("Runs")
        title.setProperty("role", "title")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for col, name in enumerate(COLUMNS):
            self.table.horizontalHeaderItem(col).setToolTip(TOOLTIPS.get(name, ""))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        # sized when rows come or go: sizing to contents on every setItem is quadratic
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        self.empty = label("No runs yet. Start one on the New run page; runs started from the command line "
                           "(ponder-engine run spec.toml) appear here too.", "muted")

        self.monitor_button = icon_button("Monitor", "monitor", self._on_monitor_button_clicked)
        self.spec_button = icon_button("Show spec", "spec", self._on_spec_button_clicked)
        self.reuse_button = icon_button("New run from spec", "new-run", self._on_reuse_button_clicked)
        self.folder_button = icon_button("Open folder", "open", self._on_folder_button_clicked)
        self.compare_button = icon_button("Compare with base", "compare", self._on_compare_button_clicked)
        self.export_button = icon_button("Export…", "export", self._on_export_button_clicked)
        self.delete_button = icon_button("Delete…", "delete", self._on_delete_button_clicked, "error")
        self.delete_button.setProperty("role", "danger")
        buttons = QHBoxLayout()
        for b in self._one_run_buttons():
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)

        self.metric = ComboBox()
        for key, text in OVERLAY_METRICS.items():
            self.metric.addItem(text, key)
        self.metric.currentIndexChanged.connect(self._on_metric_index_changed)
        self.overlay = LivePlot("Selected runs", empty_note="select runs above to overlay their curves",
                                legend=True)
        overlay_box = QWidget()
        overlay_layout = QVBoxLayout(overlay_box)
        overlay_layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Overlay"))
        row.addWidget(self.metric)
        row.addStretch(1)
        overlay_layout.addLayout(row)
        overlay_layout.addWidget(self.overlay, 1)
        self.evaluation = RunEvaluation(self.store)
        self.evaluation.sig_export_checkpoint.connect(self.sig_export_checkpoint)
        self.evaluation.sig_error.connect(self.sig_error)
        self.bottom_tabs = QTabWidget()
        self.bottom_tabs.addTab(overlay_box, "Training curves")
        self.bottom_tabs.addTab(self.evaluation, "Evaluation")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table, 1)
        top_layout.addWidget(self.empty)
        top_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.bottom_tabs)
        splitter.setSizes([260, 480])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        layout.addWidget(title)
        layout.addWidget(splitter, 1)
        self._update_buttons()

    # ---- the table --------------------------------------------------------------------------------
    def _summary(self, run: dict[str, Any]) -> dict[str, Any]:
        cached = self._summaries.get(run["id"])
        if cached is not None and cached["status"] == run["status"] and run["status"] not in ACTIVE:
            return cached
        summary = {"status": run["status"], **self.store.run_summary(run["id"])}
        self._summaries[run["id"]] = summary
        return summary

    def _on_controller_runs_changed(self, runs: list[dict[str, Any]]) -> None:
        selected = set(self.selected_ids())
        t = theme.current()
        colors = {"running": t.accent, "queued": t.accent, "succeeded": t.success, "failed": t.error,
                  "stopped": t.warning}
        self.table.setSortingEnabled(False)
        self.table.setUpdatesEnabled(False)
        self.table.blockSignals(True)
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            spec = run.get("spec") or {}
            s = self._summary(run)
            values = s["values"]
            took = (run.get("finished") or time.time()) - run["created"]
            cells = [
                (str(run["id"]), run["id"]), (run["name"], None), (run["status"], None),
                ((spec.get("rewards") or {}).get("preset", ""), None),
                ((spec.get("model") or {}).get("source", ""), None),
                (_fmt(values.get("reward")), values.get("reward")),
                (_fmt(values.get("accuracy"), pct=True), values.get("accuracy")),
                (_fmt(values.get("tokens/completion"), digits=0), values.get("tokens/completion")),
                (str(s["step"] or ""), s["step"]),
                (_fmt(s["eval_accuracy"], pct=True), s["eval_accuracy"]),
                (fmt_duration(took), took),
                (time.strftime("%b %d, %H:%M", time.localtime(run["created"])), run["created"]),
            ]
            for col, (text, number) in enumerate(cells):
                numeric = number is not None or col in (5, 6, 7, 8, 9)
                item = _NumberItem(text) if numeric else QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, number)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole + 1, run["id"])
                if col == 2:
                    item.setForeground(QColor(colors.get(run["status"], t.text)))
                if col in (0, 5, 6, 7, 8, 9, 10):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        self.table.clearSelection()
        self._select_rows(selected)
        self.table.blockSignals(False)
        if self._sized_for != len(runs):  # size the columns when rows come or go, not on every status change
            self._sized_for = len(runs)
            self.table.resizeColumnsToContents()
            self.table.setColumnWidth(4, min(self.table.columnWidth(4), 190))  # sources can be long paths
        self.table.setUpdatesEnabled(True)
        self.empty.setVisible(not runs)
        self._update_overlay()
        self._update_buttons()

    def _row_id(self, row: int) -> int:
        return self.table.item(row, 0).data(Qt.ItemDataRole.UserRole + 1)

    def selected_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self._row_id(r) for r in rows]

    def select_ids(self, ids: list[int]) -> None:
        self.table.blockSignals(True)
        self.table.clearSelection()
        self._select_rows(set(ids))
        self.table.blockSignals(False)
        self._on_table_selection_changed()

    def _select_rows(self, ids: set[int]) -> None:
        selection = QItemSelection()
        model = self.table.model()
        for row in range(self.table.rowCount()):
            if self._row_id(row) in ids:
                selection.select(model.index(row, 0), model.index(row, model.columnCount() - 1))
        self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.Select)

    def _run(self, run_id: int) -> dict[str, Any] | None:
        return next((r for r in self.controller.runs if r["id"] == run_id), None)

    def _on_table_selection_changed(self) -> None:
        self._update_overlay()
        self._update_buttons()
        ids = self.selected_ids()
        self.evaluation.set_run(self._run(ids[0]) if len(ids) == 1 else None)

    def _on_table_double_clicked(self, index) -> None:
        self.sig_show_run.emit(self._row_id(index.row()))

    def _one_run_buttons(self) -> tuple[QPushButton, ...]:
        return (self.monitor_button, self.compare_button, self.export_button, self.spec_button,
                self.reuse_button, self.folder_button)

    def _update_buttons(self) -> None:
        ids = self.selected_ids()
        one = len(ids) == 1
        for b in self._one_run_buttons():
            b.setEnabled(one)
        self.delete_button.setEnabled(bool(ids))

    # ---- overlay ----------------------------------------------------------------------------------
    def _on_metric_index_changed(self, _index: int) -> None:
        self._update_overlay()

    def _update_overlay(self) -> None:
        metric = self.metric.currentData()
        self.overlay.clear_data()
        for i, run_id in enumerate(self.selected_ids()[:10]):
            run = self._run(run_id)
            name = f"#{run_id} {run['name'] if run else ''}"
            self.overlay.add_series(str(run_id), name, theme.series_color(i))
            rows = self.store.db.execute(
                "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY id", [run_id, metric])
            self.overlay.extend(str(run_id), rows.fetchall())
        self.overlay.getPlotItem().setTitle(OVERLAY_METRICS.get(metric, metric), color=theme.current().text)
        self.overlay.redraw(force=True)

    # ---- actions ----------------------------------------------------------------------------------
    def _on_monitor_button_clicked(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.sig_show_run.emit(ids[0])

    def _on_spec_button_clicked(self) -> None:
        ids = self.selected_ids()
        run = self._run(ids[0]) if ids else None
        if run is None:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Spec of run #{run['id']} {run['name']}")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        text = QPlainTextEdit(tomli_w.dumps(run.get("spec") or {}))
        text.setReadOnly(True)
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        dialog.resize(560, 640)
        dialog.show()  # non-modal

    def _on_export_button_clicked(self) -> None:
        ids = self.selected_ids()
        run = self._run(ids[0]) if ids else None
        if run is not None:
            self.sig_export.emit(run)

    def _on_compare_button_clicked(self) -> None:
        ids = self.selected_ids()
        run = self._run(ids[0]) if ids else None
        if run is not None:
            self.sig_compare.emit(run)

    def _on_reuse_button_clicked(self) -> None:
        ids = self.selected_ids()
        run = self._run(ids[0]) if ids else None
        if run is not None and run.get("spec"):
            self.sig_use_spec.emit(run["spec"])

    def _on_folder_button_clicked(self) -> None:
        ids = self.selected_ids()
        run = self._run(ids[0]) if ids else None
        if run is not None and run.get("run_dir"):
            QDesktopServices.openUrl(QUrl.fromLocalFile(run["run_dir"]))

    def _on_delete_button_clicked(self) -> None:
        runs = [r for r in (self._run(i) for i in self.selected_ids()) if r is not None]
        active = [r for r in runs if r["status"] in ACTIVE]
        if active:
            ids = ", ".join(f"#{r['id']}" for r in active)
            self.sig_error.emit(f"Run {ids} is still going; stop it before deleting it.", "")
            return
        if not runs:
            return
        names = ", ".join(f"#{r['id']} {r['name']}" for r in runs)
        delete, with_folders = self.confirm_delete(names, len(runs))
        if delete:
            self.delete_runs([r["id"] for r in runs], with_folders)

    def confirm_delete(self, names: str, n: int) -> tuple[bool, bool]:
        """Ask before deleting; returns (delete, also delete the run folders)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete runs",
                          f"Delete {n} run{'s' * (n != 1)} ({names}) from the history?", parent=self)
        box.setInformativeText("Their metrics, traces and log are removed from the run store.")
        folders = QCheckBox("Also delete the run folders (checkpoints and adapters)")
        box.setCheckBox(folders)
        box.setStandardButtons(QMessageBox.StandardButton.Cancel)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.exec()
        return box.clickedButton() is delete, folders.isChecked()

    def delete_runs(self, ids: list[int], with_folders: bool) -> None:
        for run_id in ids:
            run = self._run(run_id)
            self.store.delete_run(run_id)
            self._summaries.pop(run_id, None)
            if with_folders and run and run.get("run_dir") and Path(run["run_dir"]).is_dir():
                QThreadPool.globalInstance().start(_RemoveFolder(Path(run["run_dir"])))
        self.controller.refresh()


def _fmt(value: float | None, pct: bool = False, digits: int = 3) -> str:
    if value is None:
        return ""
    if pct:
        return f"{value:.0%}"
    return f"{value:.0f}" if digits == 0 else f"{value:.{digits}g}"
