"""The Compare page's summary table: the figures the papers report, one column per source."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from engine.evalstats import source_title

SUMMARY_ROWS = (("accuracy", "Accuracy (pass@1)", "pct"), ("tokens", "Tokens per answer", "num"),
                ("think_tokens", "Thinking tokens", "num"), ("answer_tokens", "Answer tokens", "num"),
                ("tokens_correct", "Tokens when correct", "num"),
                ("tokens_wrong", "Tokens when wrong", "num"), ("think_rate", "Think rate", "pct"),
                ("eot", "Efficiency (accuracy / thinking token)", "sci"))


def titles(summary: dict[str, Any], labels: list[str]) -> list[str]:
    """Column titles by what each source is (base, after SFT, trained, checkpoint 16), unique."""
    out = [source_title(lb, summary.get(lb) if isinstance(summary.get(lb), dict) else None) for lb in labels]
    return [f"{t} ({lb})" if out.count(t) > 1 else t for t, lb in zip(out, labels, strict=True)]


def _fmt(value: Any, kind: str) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.1%}" if kind == "pct" else f"{value:.3g}" if kind == "sci" else f"{value:.1f}"


def fill_summary(table: QTableWidget, ev: dict[str, Any]) -> list[str]:
    """Fill `table` from an evaluation's summary (a few dozen cells, once per change); its sources."""
    summary = ev.get("summary") or {}
    labels = [s for s in (ev["sources"] or []) if s in summary] or [k for k in summary if k != "deltas"]
    extra = sorted({k for s in labels for k in summary[s] if k.startswith(("pass@", "accuracy/d"))
                    and k != "pass@1"})
    rows = [*SUMMARY_ROWS, *((k, k.replace("accuracy/d", "Accuracy, difficulty "), "pct") for k in extra)]
    deltas = summary.get("deltas") or {}
    names = titles(summary, labels)
    versus = f"{names[-1]} vs. {names[0]}" if len(names) >= 2 else ""
    delta_names = {"d_accuracy_pct": f"Accuracy change, {versus}", "d_tokens_pct": f"Tokens saved, {versus}"}
    table.setColumnCount(1 + len(labels))
    table.setHorizontalHeaderLabels(["", *names])
    for i, source in enumerate(labels, start=1):
        table.horizontalHeaderItem(i).setToolTip(source)
    # two columns share the width; more (checkpoints) keep their titles readable and scroll instead
    table.horizontalHeader().setSectionResizeMode(
        QHeaderView.ResizeMode.Stretch if len(labels) <= 2 else QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    table.setRowCount(len(rows) + len(deltas))
    for r, (key, text, kind) in enumerate(rows):
        table.setItem(r, 0, QTableWidgetItem(text))
        for c, source in enumerate(labels, start=1):
            item = QTableWidgetItem(_fmt(summary[source].get(key), kind))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            table.setItem(r, c, item)
    for r, (key, value) in enumerate(deltas.items(), start=len(rows)):
        table.setItem(r, 0, QTableWidgetItem(delta_names.get(key, key)))
        item = QTableWidgetItem(f"{value:+.1f}%")
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        table.setItem(r, len(labels) if labels else 0, item)
    return labels

