"""The stage timeline: one card per stage of the run, with its status, progress and ETA."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from engine.progress import eta, fmt_duration  # fmt_duration: monitor, runs and compare import it here

STAGE_TITLES = {"sft": "SFT cold start", "judge": "Reward model", "prefer": "Preference (DPO)", "grpo": "GRPO",
                "eval": "Evaluation"}


class StageCard(QFrame):
    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage
        self.setProperty("role", "stage")
        self.title = QLabel(STAGE_TITLES.get(stage, stage))
        self.title.setProperty("role", "section")
        self.status = QLabel("pending")
        self.status.setProperty("role", "muted")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(8)
        self.detail = QLabel("")
        self.detail.setProperty("role", "muted")
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)

    def update_from(self, row: dict[str, Any] | None, step_time: float | None = None) -> None:
        """Show a `stages` row; `step_time` (seconds a step, recently) gives the ETA, else the pace so far."""
        state = (row or {}).get("status") or "pending"
        done, total = (row or {}).get("progress") or 0, (row or {}).get("total_steps") or 0
        self.status.setText(state)
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, total) if total else (1 if state == "succeeded" else 0))
        if state == "running":
            left = step_time * max(0, total - done) if step_time and total else (eta(row) if done else None)
            remaining = fmt_duration(left) if left else "estimating…"
            self.detail.setText(f"step {done}/{total or '?'} · ETA {remaining}")
        elif state in ("succeeded", "stopped", "failed"):
            took = (row.get("finished") or time.time()) - (row.get("started") or time.time())
            self.detail.setText(f"step {done}/{total or '?'} · took {fmt_duration(took)}")
        else:
            self.detail.setText("waits for the stages before it" if state == "pending" else "")
        if self.property("state") != state:
            self.setProperty("state", state)
            self.style().unpolish(self)
            self.style().polish(self)


class StageTimeline(QWidget):
    """Cards for the run's stages, left to right in the order they run."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.cards: dict[str, StageCard] = {}
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(8)

    def set_stages(self, stages: list[str]) -> None:
        if list(self.cards) == list(stages):
            return
        for card in self.cards.values():
            card.deleteLater()
        self.cards = {}
        for stage in stages:
            self.cards[stage] = StageCard(stage)
            self._layout.addWidget(self.cards[stage], 1)

    def update_rows(self, rows: list[dict[str, Any]], step_times: dict[str, float] | None = None) -> None:
        by_stage = {r["stage"]: r for r in rows}
        for stage, card in self.cards.items():
            card.update_from(by_stage.get(stage), (step_times or {}).get(stage))
