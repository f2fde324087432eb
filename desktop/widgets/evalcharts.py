"""Charts of one evaluation: the efficiency frontier, pass@k curves, thinking-budget curves, per-level bars.

Each chart takes an evaluation summary (engine.evaluate's: one entry per model or checkpoint) with
`set_summary` and draws it at once; nothing here reads the store or generates. The frontier's points
are clickable (`sig_point_clicked`), so a page can show that model's answers or export that checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from desktop import theme
from desktop.widgets.plots import FitsWidth, FittingLegend, theme_chart
from engine.evalstats import frontier_points, level_table, source_title

ROLE_SYMBOLS = {"base": "s", "sft": "t", "trained": "star", "checkpoint": "o", "source": "d"}


def log2_ticks(plot: pg.PlotWidget, values) -> None:
    """A log axis for k or budgets: points are drawn at log2(value) and the ticks name the values themselves
    (pyqtgraph's own log mode labels decades, 10¹, which k = 1..16 never reaches)."""
    values = sorted({int(v) for v in values})
    plot.getPlotItem().getAxis("bottom").setTicks([[(math.log2(v), str(v)) for v in values], []])


def _labels(summary: dict[str, Any]) -> list[str]:
    return [k for k, v in summary.items() if k != "deltas" and isinstance(v, dict) and "accuracy" in v]


class PercentAxis(pg.AxisItem):
    """A share in [0, 1] labelled as a percentage (and never rescaled by an SI prefix)."""

    def __init__(self, orientation: str = "left", percent: bool = True):
        super().__init__(orientation)
        self.percent = percent  # False: plain numbers (token counts)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph override)
        return [f"{v:.0%}" for v in values] if self.percent else super().tickStrings(values, scale, spacing)


class EvalPlot(FitsWidth, pg.PlotWidget):
    """A themed chart with a legend in its own row under the plot (so it never covers a curve) and a note
    shown while there is nothing to draw."""

    def __init__(self, title: str, empty_note: str, x_label: str, y_label: str, legend: bool = True,
                 percent: bool = True):
        super().__init__(axisItems={"left": PercentAxis(percent=percent)})
        self.title, self._empty = title, empty_note
        item = self.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.hideButtons()
        self.setMenuEnabled(False)
        self.setMinimumHeight(220)
        item.setLabel("bottom", x_label)
        item.setLabel("left", y_label)
        self.legend = None
        if legend:
            self.legend = FittingLegend(3, labelTextSize="8pt", horSpacing=14)
            item.layout.addItem(self.legend, 4, 1)  # the row under the x axis: outside the data area
            item.legend = self.legend  # plot(name=...) items join it
        self.note = pg.TextItem(empty_note, anchor=(0.5, 0.5))
        self.note.setParentItem(item.vb)
        item.vb.sigResized.connect(self._place_note)
        self.apply_theme(theme.current())
        theme.manager().sig_changed.connect(self.apply_theme)
        self.keep_fitted()

    def reset(self) -> None:
        self.getPlotItem().clear()
        if self.legend is not None:
            self.legend.clear()

    def show_note(self, visible: bool, text: str | None = None) -> None:
        if text is not None:
            self._empty = text
            self.note.setText(text, color=theme.current().muted)
        self.note.setVisible(visible)

    def _place_note(self) -> None:
        self.note.setPos(self.getPlotItem().vb.boundingRect().center())

    def apply_theme(self, t: theme.Theme) -> None:
        theme_chart(self, t, self.title, self.note, self._empty, self.legend)


class FrontierPlot(EvalPlot):
    """Accuracy (with its 95% interval) against mean completion tokens, one point per model or checkpoint;
    the Pareto front (nothing is both cheaper and more accurate) joined by a line; base and trained marked."""

    sig_point_clicked = Signal(dict)
    """A point was clicked; argument: the point (label, title, role, stage, step, x, y, lo, hi, pareto)."""

    def __init__(self, title: str = "Accuracy vs. tokens (efficiency frontier)"):
        super().__init__(title, "no evaluation to show", "mean completion tokens", "accuracy (95% interval)")
        self.points: list[dict[str, Any]] = []
        self.scatter: pg.ScatterPlotItem | None = None
        self.texts: list[pg.TextItem] = []

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.reset()
        self.texts = []
        self.points = frontier_points(summary)
        pts = [p for p in self.points if math.isfinite(p["x"]) and math.isfinite(p["y"])]
        nothing_right = bool(pts) and all(p["y"] == 0 for p in pts)
        self.show_note(not pts or nothing_right, "every answer was wrong: no model to prefer on accuracy yet"
                       if nothing_right else "no evaluation to show")
        if not pts:
            self.scatter = None
            return
        t = theme.current()
        x = np.array([p["x"] for p in pts])
        y = np.array([p["y"] for p in pts])
        bars = pg.ErrorBarItem(x=x, y=y, top=np.array([p["hi"] for p in pts]) - y,
                               bottom=y - np.array([p["lo"] for p in pts]), beam=0.0,
                               pen=pg.mkPen(t.muted, width=1))
        self.addItem(bars)
        front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["x"])
        if len(front) > 1:
            self.plot([p["x"] for p in front], [p["y"] for p in front],
                      pen=pg.mkPen(t.accent, width=1.5, style=Qt.PenStyle.DashLine), name="Pareto front")
        steps = [p["step"] for p in pts if p["role"] == "checkpoint"]
        top = max(steps) if steps else 1
        spots = []
        for p in pts:
            color = {"base": t.muted, "sft": theme.series_color(2), "trained": t.accent}.get(p["role"])
            if color is None:  # checkpoints: light (early) to dark (late)
                color = theme.level_color(1 + round(4 * (p["step"] or 0) / top)) if p["role"] == "checkpoint" \
                    else theme.series_color(3)
            spots.append({"pos": (p["x"], p["y"]), "data": p["label"], "brush": pg.mkBrush(color),
                          "symbol": ROLE_SYMBOLS.get(p["role"], "o"), "size": 16 if p["role"] == "trained" else 12,
                          "pen": pg.mkPen(t.text if p["pareto"] else t.border, width=1.5 if p["pareto"] else 1)})
        self.scatter = pg.ScatterPlotItem(spots=spots, hoverable=True, tip=self._tip)
        self.scatter.sigClicked.connect(self._on_scatter_clicked)
        self.addItem(self.scatter)
        for role, text in (("base", "base"), ("sft", "after SFT"), ("trained", "trained"),
                           ("checkpoint", "checkpoint"), ("source", "model")):
            if any(p["role"] == role for p in pts):
                color = {"base": t.muted, "sft": theme.series_color(2), "trained": t.accent,
                         "checkpoint": theme.level_color(3)}.get(role, theme.series_color(3))
                sample = pg.ScatterPlotItem(symbol=ROLE_SYMBOLS[role], brush=pg.mkBrush(color), size=10,
                                            pen=pg.mkPen(t.border))
                self.legend.addItem(sample, text)
        labelled = [p for p in pts if p["role"] != "checkpoint" or p["pareto"] or len(steps) <= 4]
        for p, text_ in self._spread(labelled, x, y):  # names beside the points; other checkpoints in tips
            text = pg.TextItem(text_, color=t.text, anchor=(0, p["_anchor_y"]))
            text.setPos(p["x"], p["y"])
            self.addItem(text)
            self.texts.append(text)
        pad_x = max(1.0, 0.08 * (x.max() - x.min()))
        self.setXRange(max(0.0, x.min() - pad_x), x.max() + 3 * pad_x, padding=0)
        self.setYRange(max(-0.03, min(p["lo"] for p in pts) - 0.05), min(1.05, max(p["hi"] for p in pts) + 0.08),
                       padding=0)  # a little below 0, so points at 0% are not cut in half

    @staticmethod
    def _spread(points: list[dict[str, Any]], x: np.ndarray, y: np.ndarray) -> list[tuple[dict[str, Any], str]]:
        """One label per spot: points that land on the same spot (within 1% of the axes) share one ("base,
        after SFT and 5 more"); labels of spots close together alternate above and below their point."""
        dx, dy = max(float(np.ptp(x)), 1.0) / 100, max(float(np.ptp(y)), 0.01) / 100
        groups: list[list[dict[str, Any]]] = []
        for p in sorted(points, key=lambda p: (p["y"], p["x"])):
            for g in groups:
                if abs(g[0]["x"] - p["x"]) <= dx and abs(g[0]["y"] - p["y"]) <= dy:
                    g.append(p)
                    break
            else:
                groups.append([p])
        out = []
        for i, g in enumerate(groups):
            names = [p["title"] for p in g]
            text = ", ".join(names) if len(names) <= 3 else f"{names[0]}, {names[1]} and {len(names) - 2} more"
            g[0]["_anchor_y"] = 1.1 if i % 2 == 0 else -0.1
            out.append((g[0], text))
        return out

    def _tip(self, x: float, y: float, data: str) -> str:
        p = next((p for p in self.points if p["label"] == data), None)
        if p is None:
            return ""
        return (f"{p['title']} ({p['label']})\naccuracy {p['y']:.1%} [{p['lo']:.0%}–{p['hi']:.0%}]\n"
                f"{p['x']:.1f} tokens{' · on the Pareto front' if p['pareto'] else ''}\nclick: answers, export")

    def _on_scatter_clicked(self, _item, spots, _event=None) -> None:
        if len(spots):
            self.click(spots[0].data())

    def click(self, label: str) -> None:
        """What clicking the point of `label` does (tests and keyboard users call it too)."""
        point = next((p for p in self.points if p["label"] == label), None)
        if point is not None:
            self.sig_point_clicked.emit(dict(point))

    def widget_pos(self, label: str):
        """Where the point of `label` is drawn, in this widget's coordinates (for a real mouse click)."""
        p = next(p for p in self.points if p["label"] == label)
        scene = self.getPlotItem().vb.mapViewToScene(QPointF(p["x"], p["y"]))
        return self.mapFromScene(scene)


class PassAtKPlot(EvalPlot):
    """Mean pass@k against k (log axis) per model: how much more often one of k samples is right."""

    def __init__(self):
        super().__init__("pass@k", "pass@k needs several samples per problem: set Samples above 1 and a "
                         "temperature (0.6 is typical)", "k (samples per problem)", "pass@k")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.ks: list[int] = []

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.reset()
        self.curves = {}
        for i, label in enumerate(_labels(summary)):
            curve = summary[label].get("pass_curve") or []
            if len(curve) < 2:
                continue
            color = theme.series_color(i)
            ks = np.arange(1, len(curve) + 1)
            self.curves[label] = self.plot(np.log2(ks), np.asarray(curve, dtype=float),
                                           pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6,
                                           symbolBrush=color, name=source_title(label, summary[label]))
            self.ks = sorted(set(self.ks) | set(ks.tolist()))
        n = max(self.ks, default=1)
        log2_ticks(self, [k for k in self.ks if k in (1, 2, 4, 8, 16, 32, 64, n) or n <= 8])
        self.setYRange(-0.02, 1.02, padding=0)
        self.show_note(not self.curves)


class BudgetPlots(QWidget):
    """Accuracy and tokens against the thinking budget (budget forcing), a curve per model."""

    def __init__(self):
        super().__init__()
        note = "no thinking budgets in this evaluation: set eval.budgets (e.g. [8, 16, 32, 64])"
        self.accuracy = EvalPlot("Accuracy by thinking budget", note, "thinking budget (tokens)", "accuracy")
        self.tokens = EvalPlot("Tokens by thinking budget", note, "thinking budget (tokens)", "mean tokens",
                               percent=False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.accuracy)
        layout.addWidget(self.tokens)
        self.curves: dict[str, list] = {}

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.curves = {}
        for plot in (self.accuracy, self.tokens):
            plot.reset()
        for i, label in enumerate(_labels(summary)):
            points = summary[label].get("budgets") or []
            if not points:
                continue
            color, name = theme.series_color(i), source_title(label, summary[label])
            x = np.log2(np.array([p["budget"] for p in points], dtype=float))
            for plot in (self.accuracy, self.tokens):
                log2_ticks(plot, [p["budget"] for p in points])
            for plot, key in ((self.accuracy, "accuracy"), (self.tokens, "tokens")):
                plot.plot(x, np.array([p[key] for p in points], dtype=float), pen=pg.mkPen(color, width=2),
                          symbol="o", symbolSize=6, symbolBrush=color, name=name)
            self.curves[label] = points
        self.accuracy.setYRange(-0.02, 1.02, padding=0)
        for plot in (self.accuracy, self.tokens):
            plot.show_note(not self.curves)


LEVEL_METRICS = (("accuracy", "Accuracy", 0), ("tokens", "Tokens", 1), ("think_rate", "Think rate", 2))


class LevelBars(EvalPlot):
    """One metric by difficulty level, a bar per model side by side in each level's group."""

    def __init__(self, metric: str = "accuracy"):
        super().__init__("", "no difficulty levels in this evaluation's data", "difficulty level", "",
                         percent=False)
        self.legend.setColumnCount(2)  # beside the table, the chart is narrow
        self.metric = metric
        self.bars: dict[str, pg.BarGraphItem] = {}
        self._summary: dict[str, Any] = {}

    def set_metric(self, metric: str) -> None:
        self.metric = metric
        self.set_summary(self._summary)

    def set_summary(self, summary: dict[str, Any]) -> None:
        self._summary = summary
        self.reset()
        self.bars = {}
        title, index = next((t, i) for m, t, i in LEVEL_METRICS if m == self.metric)
        self.title = f"{title} by difficulty level"
        self.apply_theme(theme.current())
        self.getPlotItem().setLabel("left", title.lower())
        self.getPlotItem().getAxis("left").percent = self.metric != "tokens"
        levels, labels, values = level_table(summary)
        width = 0.8 / max(len(labels), 1)
        for i, label in enumerate(labels):
            heights = [values[label][lv][index] for lv in levels]
            if not any(isinstance(h, int | float) for h in heights):
                continue
            x = np.array(levels, dtype=float) - 0.4 + width * (i + 0.5)
            h = np.array([v if isinstance(v, int | float) else 0.0 for v in heights])
            color = theme.series_color(i)
            bar = pg.BarGraphItem(x=x, height=h, width=width * 0.9, brush=pg.mkBrush(color), pen=pg.mkPen(None))
            self.addItem(bar)
            self.legend.addItem(bar, source_title(label, summary[label]))
            self.bars[label] = bar
        self.getPlotItem().getAxis("bottom").setTicks([[(lv, str(lv)) for lv in levels]])
        if self.metric != "tokens":
            self.setYRange(0, 1.02, padding=0)
        else:
            self.getPlotItem().enableAutoRange(axis="y")
        self.show_note(not self.bars)
