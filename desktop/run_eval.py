"""The Runs page's Evaluation tab: the selected run's latest evaluation in the evaluation views, and a button
that evaluates every checkpoint of the run in a worker process (answers already generated are reused)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from desktop.compare import evaluation_eta, start_evaluation_process
from desktop.widgets.evalviews import EvalViews
from desktop.widgets.forms import label
from engine.store import ACTIVE

POLL_MS = 1000


class RunEvaluation(QWidget):
    sig_export_checkpoint = Signal(int, str)
    """The user wants to export a run's weights; arguments: run id, "" (final adapter) or "STAGE:STEP"."""
    sig_error = Signal(str, str)
    """An evaluation could not start; arguments: message, details."""

    def __init__(self, store, parent=None):
        super().__init__(parent)
        self.store = store
        self.run: dict[str, Any] | None = None
        self.shown: dict[str, Any] | None = None  # the evaluation drawn
        self.timer = QTimer(self)  # ticks only while the run's evaluation is in progress
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.views = EvalViews(store)
        self.views.sig_export_checkpoint.connect(self.sig_export_checkpoint)
        self.status = label("Select a run to see its evaluation.", "muted")
        self.status.setWordWrap(True)
        self.evaluate_button = QPushButton("Evaluate every checkpoint")
        self.evaluate_button.setToolTip("Score the base model, every saved checkpoint and the trained model on the "
                                        "run's held-out problems with its eval settings, in a worker process "
                                        "(answers already generated are reused)")
        self.evaluate_button.clicked.connect(self._on_evaluate_button_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.evaluate_button)
        layout.addLayout(row)
        layout.addWidget(self.views, 1)
        self.set_run(None)

    def evaluations(self, run_id: int) -> list[dict[str, Any]]:
        """The run's evaluations: its eval stage's, this tab's, and any of its weights (a source row of the run,
        or a summary entry of the run), oldest first."""
        return [e for e in self.store.list_evaluations() if e["run_id"] == run_id
                or any(r["run_id"] == run_id for r in e["source_rows"])
                or any(isinstance(v, dict) and v.get("run_id") == run_id for v in (e["summary"] or {}).values())]

    def set_run(self, run: dict[str, Any] | None) -> None:
        self.run = run
        self.evaluate_button.setEnabled(bool(run and run["status"] not in ACTIVE and any(
            a["kind"] in ("adapter", "checkpoint") for a in self.store.artifacts(run["id"]))))
        self.refresh()

    def refresh(self) -> None:
        run = self.run
        evals = self.evaluations(run["id"]) if run else []
        done = [e for e in evals if e["status"] == "succeeded" and e["summary"]]
        running = [e for e in evals if e["status"] in ACTIVE]
        shown = running[-1] if running and running[-1]["summary"] else (done[-1] if done else None)
        old = self.shown or {}
        if (shown or {}).get("id") != old.get("id") or (shown or {}).get("summary") != old.get("summary"):
            self.views.set_evaluation(shown)
        self.shown = shown
        if run is None:
            text = "Select one run to see its evaluation."
        elif running:
            ev = running[-1]
            text = (f"Evaluating #{ev['id']}: {ev.get('progress') or 0} of {ev.get('total') or '?'} answers  "
                    f"{evaluation_eta(ev)}")
        elif shown is None:
            text = "No evaluation of this run yet: add the eval stage, or evaluate its checkpoints."
        else:
            s = shown.get("settings") or {}
            text = (f"Evaluation #{shown['id']}: {shown['n']} held-out problems of {shown['task']}, "
                    f"{s.get('num_samples', 1)} sample(s) each, temperature {s.get('temperature', 0)}")
        self.status.setText(text)
        if running and not self.timer.isActive():
            self.timer.start()
        elif not running:
            self.timer.stop()

    def _on_timer_timeout(self) -> None:
        self.refresh()

    def _on_evaluate_button_clicked(self) -> None:
        if self.run is not None:
            self.evaluate_checkpoints(self.run)

    def evaluate_checkpoints(self, run: dict[str, Any]) -> int:
        """Register an evaluation of the run's base, checkpoints and trained model with the run's own eval
        settings and start it in a worker process; returns its id."""
        spec = run.get("spec") or {}
        e, data = spec.get("eval") or {}, spec.get("data") or {}
        settings = {"num_samples": e.get("num_samples", 1), "temperature": e.get("temperature", 0.0),
                    "max_completion_length": e.get("max_completion_length", 256),
                    "batch_size": e.get("batch_size", 16), "seed": spec.get("seed", 0), "prompt_mode": "",
                    "budgets": e.get("budgets") or [], "checkpoints": "all"}
        eval_id = self.store.create_evaluation([f"run:{run['id']}"], data.get("source", "builtin:arithmetic"),
                                               int(data.get("eval_size", 64)), settings, run_id=run["id"])
        if not start_evaluation_process(self.store, eval_id):
            self.sig_error.emit("Could not start the evaluation process.", f"python -m engine.evaluate {eval_id}")
        self.refresh()
        return eval_id
