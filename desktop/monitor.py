"""The Monitor page: the selected run's stages, live charts, sampled completions and log.

A 250 ms poll timer reads only what is new (`WHERE id > ?`) and appends it to the
charts' numpy buffers, the trace table and the log; a separate redraw timer repaints
the charts that changed, and only while the page is visible.
"""

from __future__ import annotations

import html
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
)

from desktop import theme
from desktop.runner import RunController, describe_failure
from desktop.widgets.forms import ComboBox
from desktop.widgets.plots import LivePlot
from desktop.widgets.run_charts import RunCharts, run_reward_weights
from desktop.widgets.timeline import StageTimeline, fmt_duration
from desktop.widgets.trace_view import TraceView
from desktop.widgets.page import Page
from engine.evalstats import source_title
from engine.health import ALERT_LEVEL
from engine.store import ACTIVE

PAIR_METRICS = "prefer/"  # the prefer stage's step-0 counts: pairs by level and difficulty, sampled accuracy
POLL_MS, REDRAW_MS = 250, 500  # each chart redraws at most every REDRAW_MS
CHARTS_PER_CYCLE = 8
METRICS_PER_POLL, TRACES_PER_POLL = 2000, 200  # bounded work per tick; the rest comes on the next


class MonitorPage(Page):
    sig_show_error = Signal(str, str, int)
    """The user asked to see a failed run's error again; arguments: message, details, run id."""

    def __init__(self, controller: RunController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self.run_id: int | None = None
        self.run: dict[str, Any] | None = None
        self._after = {"metrics": 0, "traces": 0, "events": 0}
        # stage -> x offset: steps restart per stage, the x axis does not
        self._offsets: dict[str, float] = {}
        self._max_x = 0.0
        self._step_times: dict[str, deque[float]] = {}  # stage -> the last few seconds-per-step
        self.alerts: list[dict[str, Any]] = []
        self._pair_counts: dict[str, float] = {}
        self._failure: tuple[Any, str] = (None, "")  # (run id, error) -> message: reads worker.log once
        self._build()
        controller.sig_runs_changed.connect(self._on_controller_runs_changed)
        self._on_controller_runs_changed(controller.runs)
        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self._on_poll_timer_timeout)
        self.poll_timer.start()
        self.redraw_timer = QTimer(self)
        self.redraw_timer.setInterval(REDRAW_MS // CHARTS_PER_CYCLE)  # one chart a tick, see below
        self.redraw_timer.timeout.connect(self._on_redraw_timer_timeout)
        self.redraw_timer.start()

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        title = QLabel("Monitor")
        title.setProperty("role", "title")
        self.run_combo = ComboBox()
        self.run_combo.setMinimumWidth(320)
        self.run_combo.currentIndexChanged.connect(self._on_run_combo_index_changed)
        self.stop_button = QPushButton("Stop")
        theme.set_icon(self.stop_button, "stop")
        self.stop_button.setToolTip("Ask the worker to save a checkpoint and stop after the current step")
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.resume_button = QPushButton("Resume")
        theme.set_icon(self.resume_button, "resume")
        self.resume_button.setToolTip("Continue a stopped or failed run from its last checkpoint")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.folder_button = QPushButton("Open folder")
        theme.set_icon(self.folder_button, "open")
        self.folder_button.clicked.connect(self._on_folder_button_clicked)
        self.details_button = QPushButton("Error details")
        self.details_button.clicked.connect(self._on_details_button_clicked)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addSpacing(16)
        header.addWidget(self.run_combo)
        header.addStretch(1)
        for button in (self.details_button, self.folder_button, self.resume_button, self.stop_button):
            header.addWidget(button)
        self.alerts_label = QLabel()
        self.alerts_label.setObjectName("alerts")
        self.alerts_label.setWordWrap(True)
        self.alerts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.alerts_label.hide()
        self.result_label = QLabel()  # the run's evaluation, once it has one: the answer the user came for
        self.result_label.setObjectName("result")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.hide()
        self._result_for: tuple | None = None
        self.pairs_label = QLabel()
        self.pairs_label.setObjectName("pairs")
        self.pairs_label.setWordWrap(True)
        self.pairs_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pairs_label.hide()
        self.status_label = QLabel("No run selected. Start one on the New run page.")
        self.status_label.setProperty("role", "muted")
        self.status_label.setWordWrap(True)
        self.timeline = StageTimeline()

        self.run_charts = RunCharts()
        self.charts: dict[str, LivePlot] = self.run_charts.charts
        self.traces = TraceView()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFont(QFont("monospace"))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.traces, "Completions")
        self.tabs.addTab(self.log, "Log")
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.run_charts)
        splitter.addWidget(self.tabs)
        splitter.setSizes([460, 320])
        splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addWidget(self.result_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.alerts_label)
        layout.addWidget(self.timeline)
        layout.addWidget(self.pairs_label)
        layout.addWidget(splitter, 1)
        self._update_buttons()

    # ---- choosing a run ---------------------------------------------------------------------------
    def _on_controller_runs_changed(self, runs: list[dict[str, Any]]) -> None:
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for run in sorted(runs, key=lambda r: (r["status"] not in ACTIVE, -r["id"])):
            self.run_combo.addItem(f"#{run['id']} {run['name']} — {run['status']}", run["id"])
        if self.run_id is not None:
            index = self.run_combo.findData(self.run_id)
            self.run_combo.setCurrentIndex(index)
        self.run_combo.blockSignals(False)
        if self.run_id is None and runs:  # re-attach: the newest active run, else the newest run
            self.show_run(self.run_combo.itemData(0))
        elif self.run_id is not None and self.run_combo.findData(self.run_id) < 0:
            self.show_run(self.run_combo.itemData(0) if runs else None)  # the shown run was deleted

    def _on_run_combo_index_changed(self, index: int) -> None:
        if index >= 0:
            self.show_run(self.run_combo.itemData(index))

    def show_run(self, run_id: int | None) -> None:
        """Show (and follow) the run with this id, from its first step."""
        if run_id == self.run_id:
            return
        self.run_id, self.run = run_id, None
        self._after = {"metrics": 0, "traces": 0, "events": 0}
        self._offsets, self._max_x = {}, 0.0
        self._step_times: dict[str, deque[float]] = {}
        try:
            spec = self.store.get_run(run_id).get("spec") if run_id is not None else None
        except KeyError:  # deleted meanwhile
            spec = None
        self.run_charts.reset(run_reward_weights(spec), (spec or {}).get("stages") or ())  # once per run
        self.traces.clear()
        self.log.clear()
        self.alerts = []
        self.alerts_label.hide()
        self._result_for = None
        self.result_label.hide()
        self._pair_counts = {}
        self.pairs_label.hide()
        index = self.run_combo.findData(run_id) if run_id is not None else -1
        if index >= 0 and index != self.run_combo.currentIndex():
            self.run_combo.blockSignals(True)
            self.run_combo.setCurrentIndex(index)
            self.run_combo.blockSignals(False)
        self._on_poll_timer_timeout()
        self._on_redraw_timer_timeout(force=True)

    # ---- polling ----------------------------------------------------------------------------------
    def _on_poll_timer_timeout(self) -> None:
        if self.run_id is None:
            self.timeline.set_stages([])
            self._update_buttons()
            return
        try:
            run = self.store.get_run(self.run_id)
        except KeyError:
            return
        old_status = self.run["status"] if self.run else None
        self.run = run
        rows = self.store.metrics_since(self.run_id, self._after["metrics"], limit=METRICS_PER_POLL)
        for row in rows:
            self._add_metric(row)
        if rows:
            self._after["metrics"] = rows[-1]["id"]
        traces = self.store.traces_since(self.run_id, self._after["traces"], limit=TRACES_PER_POLL)
        if traces:
            self._after["traces"] = traces[-1]["id"]
            self.traces.add(traces)
        events = self.store.events_since(self.run_id, self._after["events"])
        if events:
            self._after["events"] = events[-1]["id"]
            self._add_alerts([e for e in events if e["level"] == ALERT_LEVEL])
            self.log.appendPlainText("\n".join(
                f"{time.strftime('%H:%M:%S', time.localtime(e['time']))}  {e['level']:<7} "
                f"{(e['stage'] + ': ') if e.get('stage') and not e['message'].startswith(e['stage']) else ''}"
                f"{e['message']}" for e in events))
        self.timeline.set_stages((run.get("spec") or {}).get("stages") or [])
        stages = self.store.stages(self.run_id)
        self.timeline.update_rows(stages, {s: statistics.median(t) for s, t in self._step_times.items() if t})
        self._update_status(run, stages)
        self._update_buttons()
        if events or run["status"] != old_status:  # the eval stage logs its result as an event
            self._update_result()
        if run["status"] != old_status:
            self.run_charts.set_empty_note("waiting for the first step" if run["status"] in ACTIVE
                                           else "no steps recorded")

    def _add_metric(self, row: dict[str, Any]) -> None:
        stage, name, value = row["stage"], row["name"], row["value"]
        if stage not in self._offsets:
            self._offsets[stage] = self._max_x
            if self._max_x > 0:
                self.run_charts.add_boundary(self._max_x, stage)
        x = self._offsets[stage] + row["step"]
        self._max_x = max(self._max_x, x)
        if name == "step_time":  # the ETA follows the recent pace (a resumed stage's start says nothing)
            self._step_times.setdefault(stage, deque(maxlen=5)).append(value)
        if name.startswith(PAIR_METRICS):
            self._pair_counts[name[len(PAIR_METRICS):]] = value
            self._show_pairs()
        else:
            self.run_charts.add(name, x, value)

    def _show_pairs(self) -> None:
        """One line of the prefer stage's pairs: by level of AdaR1's rule, by difficulty, and what was sampled."""
        c = self._pair_counts
        if "pairs" not in c:
            return
        levels = sorted((k for k in c if k.startswith("pairs/d") and k[7:].isdigit()), key=lambda k: int(k[7:]))
        parts = [f"<b>Preference pairs: {int(c['pairs'])}</b>",
                 f"group level {int(c.get('pairs/group', 0))}, instance level {int(c.get('pairs/instance', 0))}"]
        if levels:
            parts.append("by difficulty " + ", ".join(f"level {k[7:]}: {int(c[k])}" for k in levels))
        acc = [f"{m.replace('_', '-')} {c[f'accuracy/{m}']:.0%} ({c.get(f'tokens/{m}', 0):.0f} tokens)"
               for m in ("think", "no_think") if f"accuracy/{m}" in c]
        if acc:
            parts.append("sampled accuracy " + ", ".join(acc))
        if "preferred/long" in c:
            parts.append(f"long preferred on {int(c['preferred/long'])} problems, short on "
                         f"{int(c.get('preferred/short', 0))}")
        self.pairs_label.setText(" · ".join(parts))
        self.pairs_label.show()

    def _add_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Training-health alerts: a strip above the charts (newest first), a marker on the reward chart."""
        if not alerts:
            return
        color = theme.current().warning
        for alert in alerts:
            self.alerts.append(alert)
            if alert.get("step") is not None:
                x = self._offsets.get(alert.get("stage") or "", 0.0) + alert["step"]
                code = alert.get("code") or "alert"
                self.charts["reward"].add_boundary(x, code, color, position=0.75)
        lines = [f"<b>step {'?' if a.get('step') is None else a['step']}</b>: {html.escape(a['message'])}"
                 for a in reversed(self.alerts[-3:])]
        more = len(self.alerts) - 3
        title = f"<b>Training health: {len(self.alerts)} alert{'s' * (len(self.alerts) != 1)}</b>"
        earlier = f"<br>… and {more} earlier (see the log)" if more > 0 else ""
        self.alerts_label.setText(title + "<br>" + "<br>".join(lines) + earlier)
        self.alerts_label.show()

    def _on_redraw_timer_timeout(self, force: bool = False) -> None:
        """Redraw the charts that have new points: all at once when forced, else the next one in turn.

        The timer ticks CHARTS_PER_CYCLE times per REDRAW_MS, so each chart still redraws every REDRAW_MS."""
        if self.isVisible() or force:
            self.run_charts.redraw(force)

    def _update_result(self) -> None:
        """Base / after SFT / trained (and the best checkpoint) with dAcc% and dTok%, from the run's evaluation."""
        if self.run_id is None:
            return
        evals = [e for e in self.store.list_evaluations(self.run_id) if e["status"] == "succeeded" and e["summary"]]
        key = (self.run_id, evals[-1]["id"]) if evals else None
        if key == self._result_for:
            return
        self._result_for = key
        if not evals:
            self.result_label.hide()
            return
        ev = evals[-1]
        summary = ev["summary"]
        labels = [s for s in ev["sources"] or [] if isinstance(summary.get(s), dict)]
        main = [s for s in labels if summary[s].get("role") in ("base", "sft", "trained")] or labels
        parts = [f"{source_title(s, summary[s])} <b>{summary[s]['accuracy']:.1%}</b> · "
                 f"{summary[s]['tokens']:.0f} tokens" for s in main]
        text = f"<b>Result</b> on {ev['n']} held-out problems: " + " → ".join(parts)
        d = summary.get("deltas") or {}
        if d:
            text += " · " + " · ".join(f"{name} <b>{d[k]:+.1f}%</b>" for k, name in (
                ("d_accuracy_pct", "dAcc"), ("d_tokens_pct", "dTok")) if k in d)
        checkpoints = [s for s in labels if summary[s].get("role") == "checkpoint"]
        if checkpoints:
            best = max(checkpoints, key=lambda s: (summary[s]["accuracy"], -summary[s]["tokens"]))
            text += (f"<br>Best of {len(checkpoints)} checkpoints: {source_title(best, summary[best])} "
                     f"({summary[best]['accuracy']:.1%}, {summary[best]['tokens']:.0f} tokens); "
                     "see the Runs page's Evaluation tab")
        t = theme.current()
        self.result_label.setStyleSheet(f"QLabel#result {{ background: {t.accent_soft}; color: {t.text}; "
                                        "border-radius: 6px; padding: 8px 12px; }")
        self.result_label.setText(text)
        self.result_label.show()

    # ---- status and actions -----------------------------------------------------------------------
    def _update_status(self, run: dict[str, Any], stages: list[dict[str, Any]]) -> None:
        spec = run.get("spec") or {}
        model = (spec.get("model") or {}).get("source", "?")
        data = (spec.get("data") or {}).get("source", "?")
        preset = (spec.get("rewards") or {}).get("preset", "?")
        elapsed = (run.get("finished") or time.time()) - run["created"]
        parts = [f"<b>{run['status']}</b>"]
        if self.controller.is_stopping(run["id"]) and run["status"] in ACTIVE:
            parts = ["<b>stopping…</b> (the worker saves a checkpoint after the current step)"]
        parts += [f"{fmt_duration(elapsed)}", f"model {model}", f"data {data}", f"rewards {preset}"]
        if run["status"] == "failed":
            key = (run["id"], run.get("error_message"))
            if self._failure[0] != key:
                self._failure = (key, describe_failure(run)[0])
            message = self._failure[1].split(" failed: ", 1)[-1]
            short = message if len(message) < 140 else message[:137] + "…"
            parts.append(f"<span style='color:{theme.current().error}'>{html.escape(short)}</span>")
        self.status_label.setText(" · ".join(parts))

    def _update_buttons(self) -> None:
        run = self.run
        active = bool(run and run["status"] in ACTIVE)
        self.stop_button.setEnabled(active and not self.controller.is_stopping(run["id"]))
        self.resume_button.setEnabled(bool(run and run["status"] in ("stopped", "failed")))
        self.folder_button.setEnabled(bool(run and run.get("run_dir")))
        self.details_button.setVisible(bool(run and run["status"] == "failed"))

    def _on_stop_button_clicked(self) -> None:
        if self.run_id is not None:
            self.controller.stop(self.run_id)
            self._on_poll_timer_timeout()

    def _on_resume_button_clicked(self) -> None:
        if self.run_id is not None:
            self.controller.resume(self.run_id)
            run_id, self.run_id = self.run_id, None
            self.show_run(run_id)  # reload: a resumed run redoes the steps after its checkpoint

    def _on_folder_button_clicked(self) -> None:
        if self.run and self.run.get("run_dir"):
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.run["run_dir"]))))

    def _on_details_button_clicked(self) -> None:
        if self.run and self.run["status"] == "failed":
            message, details = describe_failure(self.run)
            self.sig_show_error.emit(message, details, self.run["id"])
