"""The Compare page: two models answer the same held-out problems with the same decoding.

Compare registers an evaluation in the store and starts `python -m engine.evaluate EVAL_ID`
detached (through desktop.supervise, like a run's worker); a timer polls the `evaluations`
row for progress and the `generations` table for new answers, shown side by side with the
summary the papers report (pass@1, pass@k, tokens, think-rate, EoT, dAcc%, dTok%).
The eval stage of a run writes the same rows, so its base-vs-trained results show here too.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import engine.data as data_catalogue
from desktop import theme
from desktop.launch import module_argv, start_supervised
from desktop.runner import RunController, describe_exit, log_tail, read_exit_code
from desktop.widgets.evalviews import EvalViews
from desktop.widgets.forms import ComboBox, SciEdit, SpinBox, label
from desktop.widgets.page import Page
from desktop.widgets.pairs import PairsModel
from desktop.widgets.summary_table import fill_summary, titles
from desktop.widgets.timeline import fmt_duration
from desktop.widgets.trace_view import completion_html
from engine import paths

POLL_MS = 500


def start_evaluation_process(store, eval_id: int) -> bool:
    """Start `python -m engine.evaluate EVAL_ID` detached and supervised (like a run's worker): the GUI
    process never evaluates. False (the evaluation marked failed) if it could not start."""
    folder = paths.ponder_home() / "evaluations" / f"{eval_id:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    argv = module_argv("engine.evaluate", str(eval_id), "--store", str(store.path))
    if start_supervised(folder, argv) is None:
        store.update_evaluation(eval_id, status="failed", finished=time.time(),
                                error="could not start the evaluation process")
        return False
    return True


def evaluation_eta(ev: dict[str, Any]) -> str:
    """ "ETA 1m20s" from an evaluation's pace so far, or "" before its first answer."""
    done, total, started = ev.get("progress") or 0, ev.get("total") or 0, ev.get("started")
    if not (done and total and started) or done >= total:
        return ""
    return f"ETA {fmt_duration((time.time() - started) / done * (total - done))}"


class ComparePage(Page):
    sig_error = Signal(str, str)
    """An evaluation failed or could not start; arguments: message, details."""
    sig_export_checkpoint = Signal(int, str)
    """The user wants to export a run's weights; arguments: run id, "" (final adapter) or "STAGE:STEP"."""

    def __init__(self, controller: RunController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self.eval_id: int | None = None
        self.evaluation: dict[str, Any] | None = None
        self._after = 0
        self._reported: set[int] = set()
        self._build()
        controller.sig_runs_changed.connect(self._on_controller_runs_changed)
        self._on_controller_runs_changed(controller.runs)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start()
        self.refresh_list()

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        title = QLabel("Compare")
        title.setProperty("role", "title")
        subtitle = label("Two models answer the same held-out problems with the same decoding: base vs. "
                         "trained, checkpoint vs. checkpoint, run vs. run.", "subtitle")
        self.source_a, self.source_b = ComboBox(24), ComboBox(24)
        for combo in (self.source_a, self.source_b):
            combo.setEditable(True)
            combo.setToolTip("a model (bundled:NAME, builtin:tiny-random, a folder, a .gguf file, a hub id), "
                             "run:ID (its final adapter) or run:ID:STEP (a checkpoint)")
        self.task = ComboBox()
        self.task.setEditable(True)
        for name in data_catalogue.TASKS:
            self.task.addItem(f"builtin:{name}")
        self.n = SpinBox(1, 100_000, 32)
        self.samples = SpinBox(1, 64, 1)
        self.temperature = SciEdit(0.0)
        self.max_tokens = SpinBox(1, 32768, 256)
        self.prompt_mode = ComboBox()
        for mode, text in (("", "each source's own"), ("think", "think"), ("ellipsis", "ellipsis"),
                           ("budget", "budget")):
            self.prompt_mode.addItem(text, mode)
        self.start_button = QPushButton("Compare")
        theme.set_icon(self.start_button, "compare", "#ffffff")
        self.start_button.setProperty("role", "primary")
        self.start_button.clicked.connect(self._on_start_button_clicked)
        form = QGridLayout()
        form.setHorizontalSpacing(10)
        for col, (text, widget) in enumerate((("Model A", self.source_a), ("Model B", self.source_b),
                                              ("Data (its held-out problems)", self.task))):
            form.addWidget(QLabel(text), 0, col)
            form.addWidget(widget, 1, col)
        settings = QHBoxLayout()
        for text, widget in (("How many", self.n), ("Samples each", self.samples),
                             ("Temperature", self.temperature), ("Max tokens", self.max_tokens),
                             ("Prompt mode", self.prompt_mode)):
            settings.addWidget(QLabel(text))
            settings.addWidget(widget)
        settings.addStretch(1)
        settings.addWidget(self.start_button)

        self.history = QListWidget()
        self.history.setFixedWidth(280)
        self.history.setWordWrap(True)
        self.history.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.history.currentItemChanged.connect(self._on_history_current_item_changed)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = label("", "muted")
        self.summary = QTableWidget(0, 0)
        self.summary.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.summary.verticalHeader().hide()
        self.summary.verticalHeader().setDefaultSectionSize(24)
        self.summary.setMinimumHeight(200)
        self.views = EvalViews(self.store)  # frontier, pass@k, budgets, by difficulty; the table first
        self.views.insertTab(0, self.summary, "Summary")
        self.views.setCurrentIndex(0)
        self.views.sig_export_checkpoint.connect(self.sig_export_checkpoint)
        self.pairs_model = PairsModel(self)
        self.pairs = QTableView()
        self.pairs.setModel(self.pairs_model)
        self.pairs.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.pairs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.pairs.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.pairs.verticalHeader().hide()
        self.pairs.verticalHeader().setDefaultSectionSize(22)  # fixed row heights: no measuring per row
        self.pairs.horizontalHeader().setStretchLastSection(False)
        self.pairs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.pairs.horizontalHeader().setDefaultSectionSize(110)
        self.pairs.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.pairs.selectionModel().currentRowChanged.connect(self._on_pairs_current_row_changed)
        self.left_text, self.right_text = QTextBrowser(), QTextBrowser()
        self.left_title, self.right_title = label("", "section"), label("", "section")

        side = QWidget()
        grid = QGridLayout(side)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.left_title, 0, 0)
        grid.addWidget(self.right_title, 0, 1)
        grid.addWidget(self.left_text, 1, 0)
        grid.addWidget(self.right_text, 1, 1)
        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.views, 3)
        top_layout.addWidget(self.pairs, 2)
        results = QSplitter(Qt.Orientation.Vertical)
        results.addWidget(top)
        results.addWidget(side)
        results.setSizes([300, 300])
        right = QVBoxLayout()
        right.addWidget(self.status)
        right.addWidget(self.progress)
        right.addWidget(results, 1)
        body = QHBoxLayout()
        history_box = QVBoxLayout()
        history_box.addWidget(label("Comparisons", "section"))
        history_box.addWidget(self.history, 1)
        body.addLayout(history_box)
        body.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(10)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addLayout(form)
        layout.addLayout(settings)
        layout.addLayout(body, 1)

    # ---- sources ----------------------------------------------------------------------------------
    def _on_controller_runs_changed(self, runs: list[dict[str, Any]]) -> None:
        """Offer the bundled and built-in models, and every run's adapter and checkpoints."""
        options = [("SmolLM2-135M-Instruct (bundled)", "bundled:smollm2-135m-instruct"),
                   ("Tiny random model", "builtin:tiny-random")]
        by_run: dict[int, list[dict[str, Any]]] = {}
        for art in self.store.artifacts(None):  # one query for every run, not one per run
            by_run.setdefault(art["run_id"], []).append(art)
        for run in sorted(runs, key=lambda r: -r["id"]):
            for art in by_run.get(run["id"], []):
                if art["kind"] == "adapter":
                    options.append((f"run #{run['id']} {run['name']}: trained adapter", f"run:{run['id']}"))
                elif art["kind"] == "checkpoint" and art["meta"].get("step") is not None:
                    step = art["meta"]["step"]
                    options.append((f"run #{run['id']} {run['name']}: checkpoint step {step}",
                                    f"run:{run['id']}:{step}"))
        for combo in (self.source_a, self.source_b):
            current = self.source(combo)
            combo.blockSignals(True)
            combo.clear()
            for text, source in options:
                combo.addItem(f"{source}   ({text})", source)
            self.set_source(combo, current or options[0][1])
            combo.blockSignals(False)

    @staticmethod
    def source(combo: ComboBox) -> str:
        """The chosen item's source, or what the user typed (up to a "(description)")."""
        index = combo.findText(combo.currentText())
        return combo.itemData(index) if index >= 0 else combo.currentText().split("   (")[0].strip()

    @staticmethod
    def set_source(combo: ComboBox, source: str) -> None:
        index = combo.findData(source)
        if index >= 0:
            combo.setCurrentIndex(index)
        else:
            combo.setEditText(source)
        combo.lineEdit().setCursorPosition(0)  # show the start (the source), not the end of a long text

    def prefill(self, run: dict[str, Any]) -> None:
        """Base model vs. the run's trained adapter (or its last checkpoint), on the run's own data."""
        spec = run.get("spec") or {}
        arts = self.store.artifacts(run["id"])
        trained = f"run:{run['id']}" if any(a["kind"] == "adapter" for a in arts) else next(
            (f"run:{run['id']}:{a['meta']['step']}" for a in reversed(arts) if a["kind"] == "checkpoint"
             and a["meta"].get("step") is not None), f"run:{run['id']}")
        base = (spec.get("model") or {}).get("source", "bundled:smollm2-135m-instruct")
        self.set_source(self.source_a, base)
        self.set_source(self.source_b, trained)
        self.task.setEditText((spec.get("data") or {}).get("source", "builtin:arithmetic"))
        self.max_tokens.setValue(int((spec.get("grpo") or {}).get("max_completion_length", 256)))

    # ---- starting ---------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        temperature = self.temperature.value()
        return {"num_samples": self.samples.value(),
                "temperature": temperature if math.isfinite(temperature) else 0.0,
                "max_completion_length": self.max_tokens.value(), "batch_size": 16, "seed": 0,
                "prompt_mode": self.prompt_mode.currentData() or ""}

    def _on_start_button_clicked(self) -> None:
        sources = [self.source(self.source_a), self.source(self.source_b)]
        if not all(sources):
            self.sig_error.emit("Choose two models to compare.", "")
            return
        settings = self.settings()
        if settings["num_samples"] > 1 and settings["temperature"] == 0:
            self.sig_error.emit("Several samples per problem need sampling: set a temperature above 0 "
                                "(0.6 is typical) or one sample.", "")
            return
        eval_id = self.start(sources, self.task.currentText().strip(), self.n.value(), settings)
        if eval_id is not None:
            self.show_evaluation(eval_id)

    def start(self, sources: list[str], task: str, n: int, settings: dict[str, Any]) -> int | None:
        """Register the evaluation and start `python -m engine.evaluate` for it; returns its id."""
        eval_id = self.store.create_evaluation(sources, task, n, settings)
        if not start_evaluation_process(self.store, eval_id):
            self.sig_error.emit("Could not start the evaluation process.", f"python -m engine.evaluate {eval_id}")
        self.refresh_list()
        return eval_id

    # ---- showing ----------------------------------------------------------------------------------
    def refresh_list(self) -> None:
        evaluations = self.store.list_evaluations()
        self.history.blockSignals(True)
        self.history.clear()
        for ev in reversed(evaluations):
            names = " vs ".join(ev["sources"] or [])
            origin = f" (run #{ev['run_id']})" if ev.get("run_id") else ""
            item = QListWidgetItem(f"#{ev['id']} {names}{origin}\n"
                                   f"{ev['task']} · {ev['n']} problems · {ev['status']}")
            item.setData(Qt.ItemDataRole.UserRole, ev["id"])
            self.history.addItem(item)
            if ev["id"] == self.eval_id:
                self.history.setCurrentItem(item)
        self.history.blockSignals(False)
        if self.eval_id is None and evaluations:
            self.show_evaluation(evaluations[-1]["id"])

    def _on_history_current_item_changed(self, current, _previous) -> None:
        if current is not None:
            self.show_evaluation(current.data(Qt.ItemDataRole.UserRole))

    def show_evaluation(self, eval_id: int) -> None:
        self.eval_id, self._after = eval_id, 0
        self.pairs_model.clear()
        self.left_text.clear()
        self.right_text.clear()
        self._on_timer_timeout()
        self.refresh_list()

    def _on_timer_timeout(self) -> None:
        if self.eval_id is None:
            return
        try:
            ev = self.store.get_evaluation(self.eval_id)
        except KeyError:
            self.eval_id = None
            return
        changed = self.evaluation is None or (self.evaluation["id"], self.evaluation["status"],
                                              self.evaluation["summary"]) != (ev["id"], ev["status"], ev["summary"])
        self.evaluation = ev
        new = self.store.generations(self.eval_id, self._after)
        if new:
            self._after = new[-1]["id"]
            self._update_pair_columns([g["source"] for g in new])
            self.pairs_model.add(new)
        total, done = ev.get("total") or 0, ev.get("progress") or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total) if total else 0)
        self.progress.setFormat(f"{done} of {total} answers  {evaluation_eta(ev)}" if total else "starting…")
        self.progress.setVisible(ev["status"] in ("queued", "running"))
        self.start_button.setEnabled(ev["status"] not in ("queued", "running"))
        self.status.setText(self._status_text(ev))
        if changed:
            self._show_summary(ev)
            self.refresh_list()
        if ev["status"] == "failed" and ev["id"] not in self._reported:
            self._reported.add(ev["id"])
            folder = paths.ponder_home() / "evaluations" / f"{ev['id']:04d}"
            details = f"Last lines of {folder / 'worker.log'}:\n\n{log_tail(folder / 'worker.log')}"
            how = describe_exit(read_exit_code(folder)) if (folder / "worker.exit").exists() else ""
            self.sig_error.emit(f"Comparison #{ev['id']} failed: {ev.get('error') or how}", details)

    def _status_text(self, ev: dict[str, Any]) -> str:
        sources = " vs ".join(ev["sources"] or [])
        settings = ev.get("settings") or {}
        limit = settings.get("max_completion_length")
        how = (f"{ev['n']} problems of {ev['task']}, {settings.get('num_samples', 1)} sample(s) each, "
               f"temperature {settings.get('temperature', 0)}" + (f", up to {limit} tokens" if limit else ""))
        return f"#{ev['id']} {sources}: {ev['status']} · {how}"

    def _show_summary(self, ev: dict[str, Any]) -> None:
        fill_summary(self.summary, ev)
        self._update_pair_columns()
        self.views.set_evaluation(ev)

    def _title(self, source: str) -> str:
        summary = (self.evaluation or {}).get("summary") or {}
        sources = list((self.evaluation or {}).get("sources") or [])
        return titles(summary, sources)[sources.index(source)] if source in sources else source

    def _update_pair_columns(self, seen: list[str] | tuple[str, ...] = ()) -> None:
        """The table's columns: the evaluation's sources, then any other a generation names."""
        ev_sources = (self.evaluation or {}).get("sources") or []
        sources = list(dict.fromkeys([*ev_sources, *self.pairs_model.sources, *seen]))
        titles = [self._title(s) for s in sources]
        if self.pairs_model.set_sources(sources, titles):  # columns as wide as their titles; rows are not measured
            metrics = self.pairs.horizontalHeader().fontMetrics()
            for column, title in enumerate(titles, start=1):
                self.pairs.setColumnWidth(column, min(max(110, metrics.horizontalAdvance(title) + 36), 260))

    def _on_pairs_current_row_changed(self, current, _previous) -> None:
        row = current.row()
        if row < 0 or row >= self.pairs_model.rowCount():
            return
        by_source = self.pairs_model.samples(row)
        sources = list((self.evaluation or {}).get("sources") or by_source)
        sources += [None, None]
        for title, text, source in ((self.left_title, self.left_text, sources[0]),
                                    (self.right_title, self.right_text, sources[1])):
            g = by_source.get(source) if source else None
            title.setText(f"{self._title(source)}: {source}" if source and self._title(source) != source
                          else source or "")
            text.setHtml(completion_html({**g, "step": None, "reward": None, "rewards": {}}, show_think=True)
                         if g else "")

