"""The Compare page: two models answer the same held-out problems with the same decoding.

Compare registers an evaluation in the store and starts `python -m engine.evaluate EVAL_ID`
detached (through desktop.supervise, like a run's worker); a timer polls the `evaluations`
row for progress and the `generations` table for new answers, shown side by side with the
summary the papers report (pass@1, pass@k, tokens, think-rate, EoT, dAcc%, dTok%).
The eval stage of a run writes the same rows, so its base-vs-trained results show here too.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from PySide6.QtCore import QProcess, Qt, QTimer, Signal
from PySide6.QtGui import QColor
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
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import engine.data as data_catalogue
from desktop import theme
from desktop.runner import RunController, describe_exit, log_tail, read_exit_code
from desktop.widgets.forms import ComboBox, SciEdit, SpinBox, label
from desktop.widgets.trace_view import completion_html
from desktop.widgets.page import Page
from engine import paths

SUMMARY_ROWS = (("accuracy", "Accuracy (pass@1)", "pct"), ("tokens", "Tokens per answer", "num"),
                ("think_tokens", "Thinking tokens", "num"), ("answer_tokens", "Answer tokens", "num"),
                ("tokens_correct", "Tokens when correct", "num"),
                ("tokens_wrong", "Tokens when wrong", "num"), ("think_rate", "Think rate", "pct"),
                ("eot", "Efficiency (accuracy / thinking token)", "sci"))
POLL_MS = 500


def _letter(i: int) -> str:
    return "AB"[i] if i < 2 else str(i + 1)


def _fmt(value: Any, kind: str) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.1%}" if kind == "pct" else f"{value:.3g}" if kind == "sci" else f"{value:.1f}"


class ComparePage(Page):
    sig_error = Signal(str, str)
    """An evaluation failed or could not start; arguments: message, details."""

    def __init__(self, controller: RunController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self.eval_id: int | None = None
        self.evaluation: dict[str, Any] | None = None
        self._after = 0
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}  # prompt id -> source -> first sample
        self._order: list[str] = []
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
        self.pairs = QTableWidget(0, 3)
        self.pairs.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.pairs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.pairs.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.pairs.verticalHeader().hide()
        self.pairs.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.pairs.currentCellChanged.connect(self._on_pairs_current_cell_changed)
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
        top_layout.addWidget(self.summary, 1)
        top_layout.addWidget(self.pairs, 1)
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
        for run in sorted(runs, key=lambda r: -r["id"]):
            for art in self.store.artifacts(run["id"]):
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
        folder = paths.ponder_home() / "evaluations" / f"{eval_id:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "engine.evaluate", str(eval_id), "--store", str(self.store.path)]
        supervised = ["-m", "desktop.supervise", str(folder), "--", *argv]
        ok, _pid = QProcess.startDetached(sys.executable, supervised, os.getcwd())
        if not ok:
            self.store.update_evaluation(eval_id, status="failed", finished=time.time(),
                                         error="could not start the evaluation process")
            self.sig_error.emit("Could not start the evaluation process.", " ".join(argv))
        self.refresh_list()
        return eval_id

    # ---- showing ----------------------------------------------------------------------------------
    def refresh_list(self) -> None:
        evaluations = self.store.list_evaluations()
        self.history.blockSignals(True)
        self.history.clear()
        for ev in reversed(evaluations):
            names = " vs ".join(ev["sources"] or [])
            origin = f" (eval stage of run #{ev['run_id']})" if ev.get("run_id") else ""
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
        self._rows, self._order = {}, []
        self.pairs.setRowCount(0)
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
        changed = self.evaluation is None or (self.evaluation["id"], self.evaluation["status"]) != (ev["id"],
                                                                                                   ev["status"])
        self.evaluation = ev
        new = self.store.generations(self.eval_id, self._after)
        if new:
            self._after = new[-1]["id"]
            self._add_generations(new)
        total, done = ev.get("total") or 0, ev.get("progress") or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total) if total else 0)
        self.progress.setFormat(f"{done} of {total} answers" if total else "starting…")
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
        how = (f"{ev['n']} problems of {ev['task']}, {settings.get('num_samples', 1)} sample(s) each, "
               f"temperature {settings.get('temperature', 0)}, "
               f"up to {settings.get('max_completion_length')} tokens")
        return f"#{ev['id']} {sources}: {ev['status']} · {how}"

    def _show_summary(self, ev: dict[str, Any]) -> None:
        summary = ev.get("summary") or {}
        labels = [s for s in (ev["sources"] or []) if s in summary] or [k for k in summary if k != "deltas"]
        extra = sorted({k for s in labels for k in summary[s] if k.startswith(("pass@", "accuracy/d"))
                        and k != "pass@1"})
        rows = [*SUMMARY_ROWS, *((k, k.replace("accuracy/d", "Accuracy, difficulty "), "pct") for k in extra)]
        deltas = summary.get("deltas") or {}
        delta_names = {"d_accuracy_pct": "Accuracy change, B vs. A", "d_tokens_pct": "Tokens saved, B vs. A"}
        self.summary.setColumnCount(1 + len(labels))
        self.summary.setHorizontalHeaderLabels(["", *(_letter(i) for i in range(len(labels)))])
        for i, source in enumerate(labels, start=1):
            self.summary.horizontalHeaderItem(i).setToolTip(source)
        self.summary.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.summary.setRowCount(len(rows) + len(deltas))
        for r, (key, text, kind) in enumerate(rows):
            self.summary.setItem(r, 0, QTableWidgetItem(text))
            for c, source in enumerate(labels, start=1):
                item = QTableWidgetItem(_fmt(summary[source].get(key), kind))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.summary.setItem(r, c, item)
        for r, (key, value) in enumerate(deltas.items(), start=len(rows)):
            self.summary.setItem(r, 0, QTableWidgetItem(delta_names.get(key, key)))
            item = QTableWidgetItem(f"{value:+.1f}%")
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.summary.setItem(r, len(labels) if labels else 0, item)
        self._set_pair_headers(labels)

    def _set_pair_headers(self, sources: list[str]) -> None:
        self.pairs.setColumnCount(1 + len(sources))
        self.pairs.setHorizontalHeaderLabels(["Problem", *(_letter(i) for i in range(len(sources)))])
        for i, source in enumerate(sources, start=1):
            self.pairs.horizontalHeaderItem(i).setToolTip(source)

    def _add_generations(self, rows: list[dict[str, Any]]) -> None:
        sources = list((self.evaluation or {}).get("sources") or [])
        for g in rows:
            if g["source"] not in sources:
                sources.append(g["source"])
            by_source = self._rows.setdefault(g["prompt_id"], {})
            if g["source"] not in by_source:  # the first sample stands for the prompt in the table
                by_source[g["source"]] = g
            if g["prompt_id"] not in self._order:
                self._order.append(g["prompt_id"])
        self._set_pair_headers(sources)
        self.pairs.setRowCount(len(self._order))
        t = theme.current()
        for r, prompt_id in enumerate(self._order):
            by_source = self._rows[prompt_id]
            first = next(iter(by_source.values()))
            self.pairs.setItem(r, 0, QTableWidgetItem(" ".join(str(first["prompt"]).split())[:100]))
            for c, source in enumerate(sources, start=1):
                g = by_source.get(source)
                text = "…" if g is None else f"{'✓' if g['correct'] else '✗'}  {g['tokens']} tokens"
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if g is not None:
                    item.setForeground(QColor(t.success if g["correct"] else t.error))
                self.pairs.setItem(r, c, item)

    def _on_pairs_current_cell_changed(self, row: int, *_args) -> None:
        if row < 0 or row >= len(self._order):
            return
        by_source = self._rows[self._order[row]]
        sources = list((self.evaluation or {}).get("sources") or by_source)
        sources += [None, None]
        for title, text, source in ((self.left_title, self.left_text, sources[0]),
                                    (self.right_title, self.right_text, sources[1])):
            g = by_source.get(source) if source else None
            title.setText(f"{'A' if text is self.left_text else 'B'}: {source}" if source else "")
            text.setHtml(completion_html({**g, "step": None, "reward": None, "rewards": {}}, show_think=True)
                         if g else "")

