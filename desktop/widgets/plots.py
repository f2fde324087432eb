"""Live charts: numpy buffers that take cheap appends, redrawn on the owner's timer.

Data never triggers a redraw: `append` writes into a buffer and marks the plot dirty;
the page's redraw timer calls `redraw()`, which touches only dirty plots. Curves use
peak downsampling and clip to the view, so long runs stay cheap to draw.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QPen

from desktop import theme


DENSE_POINTS = 2000  # more points than this: the curve is drawn with a 1-px pen
LEGEND_COLUMNS = 4  # at most: fewer where the chart is narrow
TITLE_POINTS = "10pt"
CHART_MARGIN = 16  # px each side of a chart's title: the plot's layout margins and the label's own
BOUNDARY_STAGGER = 0.14  # a stage boundary's label sits this much lower than the one before (no overprint)


def theme_chart(chart: pg.PlotWidget, t: theme.Theme, title: str, note: pg.TextItem, note_text: str,
                legend: pg.LegendItem | None) -> None:
    """A chart's colours from the theme: background, axes, title, its empty-chart note and legend."""
    item = chart.getPlotItem()
    if item is None:  # closed: pyqtgraph drops its plot item, the theme signal may still come
        return
    chart.setBackground(t.base)
    for axis in ("left", "bottom"):
        ax = item.getAxis(axis)
        ax.setPen(pg.mkPen(t.border))
        ax.setTextPen(pg.mkPen(t.muted))
    item.setTitle(title, color=t.text, size=TITLE_POINTS)
    note.setText(note_text, color=t.muted)
    if legend is not None:
        legend.setLabelTextColor(t.text)
        for _, text in legend.items:  # the setter above only colours labels added later
            text.setText(text.text, color=t.text)
    fit_to_width(chart, title, legend)


def fit_to_width(chart: pg.PlotWidget, title: str, legend: pg.LegendItem | None) -> None:
    """The chart's title and legend made to fit its width: the title elided (in full in its tooltip),
    the legend in as many columns as fit, the plot no wider than the chart. A title or legend row wider
    than the chart sets the plot's minimum width, and pyqtgraph then crops the right of the chart: the
    curves' end, the title's end and whole legend columns (the Monitor's 1440-px window showed no
    "level 3" entry); a plot once widened also never shrank back by itself."""
    item = chart.getPlotItem()
    if item is None:
        return
    room = chart.width() - 2 * CHART_MARGIN - item.getAxis("left").width()  # both sit over the plot area
    font = QFont(chart.font())
    font.setPointSizeF(float(TITLE_POINTS.removesuffix("pt")))
    shown = QFontMetrics(font).elidedText(title, Qt.TextElideMode.ElideRight, max(room, 40))
    if item.titleLabel.text != shown:
        item.setTitle(shown)  # the label keeps its colour and size
    # a plot shrinks back (when its y axis' labels narrow, say) only down to this: no wider than its chart
    item.setMaximumWidth(chart.width())
    # on the title's item: shown over the title, not wherever the pointer rests on the chart
    item.titleLabel.setToolTip(title if shown != title else "")
    if isinstance(legend, FittingLegend):
        legend.fit(room)


class FitsWidth:
    """For a pg.PlotWidget with a `title` and a `legend`: both fit its width (fit_to_width) whenever it
    resizes or its y axis widens or narrows with the data's tick labels. Call `keep_fitted` once built."""

    def keep_fitted(self) -> None:
        self.getPlotItem().getAxis("left").geometryChanged.connect(self.fit_width)
        self.fit_width()

    def fit_width(self) -> None:
        if "legend" in self.__dict__:  # not while pyqtgraph's constructor sizes the widget
            fit_to_width(self, self.title, self.legend)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.fit_width()  # first: the view then lays the plot out to fit
        super().resizeEvent(event)


class FittingLegend(pg.LegendItem):
    """A legend in as many columns as its room holds, at most `columns` (`fit` says the room; entries added
    later refit it)."""

    def __init__(self, columns: int, **kwargs):
        super().__init__(colCount=columns, **kwargs)
        self.setMinimumWidth(0)  # not its entries' width: the plot would keep that when it shrinks
        self.max_columns = columns
        self.room: float | None = None

    def fit(self, room: float) -> None:
        self.room = room
        self._refit()

    def addItem(self, item, name) -> None:  # noqa: N802 (pyqtgraph override)
        super().addItem(item, name)
        self._refit()

    def _refit(self) -> None:
        if self.room is None or not self.items:
            return
        # k columns are k (sample, label) pairs with a spacing between each two of the 2k cells
        spacing = self.layout.horizontalSpacing()
        entry = max(sample.boundingRect().width() + label.item.boundingRect().width() for sample, label in self.items)
        self.setColumnCount(max(1, min(self.max_columns, int((self.room + spacing) // (entry + 2 * spacing)))))


class Series:
    """One curve's points; grows by doubling, so appends are amortised O(1)."""

    def __init__(self, capacity: int = 256):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n and x == self.x[self.n - 1]:  # the same step again (a resumed run redoes it): replace
            self.y[self.n - 1] = y
            return
        if self.n == len(self.x):
            self.x, self.y = np.resize(self.x, 2 * self.n), np.resize(self.y, 2 * self.n)
        self.x[self.n], self.y[self.n] = x, y
        self.n += 1

    def extend(self, points: np.ndarray) -> None:
        """Append many (x, y) rows at once."""
        need = self.n + len(points)
        if need > len(self.x):
            size = max(need, 2 * len(self.x))
            self.x, self.y = np.resize(self.x, size), np.resize(self.y, size)
        self.x[self.n:need], self.y[self.n:need] = points[:, 0], points[:, 1]
        self.n = need

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]


class StepAxis(pg.AxisItem):
    """An x axis of training steps: whole numbers only (no 1.5 between step 1 and step 2)."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph override)
        levels = super().tickValues(minVal, maxVal, size)
        whole = [(spacing, [v for v in values if float(v).is_integer()])
                 for spacing, values in levels if spacing >= 1]
        return [level for level in whole if level[1]] or levels


class LivePlot(FitsWidth, pg.PlotWidget):
    """A chart of one or more live series, with stage boundaries and an empty-state note."""

    def __init__(self, title: str, empty_note: str = "waiting for the first step",
                 y_range: tuple | None = None, legend: bool = False, log_y: bool = False):
        super().__init__(axisItems={"bottom": StepAxis("bottom")})
        self.title = title
        self.series: dict[str, Series] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._boundaries: list[tuple[pg.InfiniteLine, str]] = []
        self._dirty = False
        self._pens: dict[str, tuple[QPen, QPen]] = {}  # (as added, 1 px)
        self._thin: set[str] = set()  # series drawn with their 1-px pen now
        self._empty_note = empty_note
        self.setMinimumHeight(150)
        self.setMenuEnabled(False)
        self.getPlotItem().setTitle(title)
        self.getPlotItem().showGrid(x=True, y=True, alpha=0.15)
        self.getPlotItem().hideButtons()
        self.setMouseEnabled(x=True, y=False)
        if log_y:
            self.getPlotItem().setLogMode(y=True)
        if y_range is not None:
            self.setYRange(*y_range, padding=0.05)
            self.getPlotItem().enableAutoRange(axis="y", enable=False)
        self.legend = None
        if legend:  # in its own row under the x axis, so it never covers a curve
            self.legend = FittingLegend(LEGEND_COLUMNS, labelTextSize="8pt", horSpacing=10, verSpacing=-6)
            self.getPlotItem().layout.addItem(self.legend, 4, 1)
            self.getPlotItem().legend = self.legend  # plot(name=...) curves join it
        self.note = pg.TextItem(empty_note, anchor=(0.5, 0.5))
        self.note.setParentItem(self.getPlotItem().vb)
        self.getPlotItem().vb.sigResized.connect(self._place_note)
        self.apply_theme(theme.current())
        theme.manager().sig_changed.connect(self.apply_theme)
        self.keep_fitted()

    # ---- data -------------------------------------------------------------------------------------
    def add_series(self, name: str, label: str | None = None, color: str | None = None, width: float = 2.0,
                   dash: bool = False) -> None:
        if name in self.series:
            return
        color = color or theme.series_color(len(self.series))
        style = Qt.PenStyle.DashLine if dash else Qt.PenStyle.SolidLine
        pen = pg.mkPen(color, width=width, style=style)
        curve = self.plot(pen=pen, name=label or name)
        # a long curve is drawn as a dense zig-zag (peak downsampling): a wide antialiased pen costs
        # twice the paint time there and looks the same as a 1-px one (bench/gui_latency.py)
        self._pens[name] = (pen, pg.mkPen(color, width=1, style=style))
        curve.setDownsampling(auto=True, method="peak")
        curve.setClipToView(True)
        self.series[name] = Series()
        self.curves[name] = curve

    def sort_legend(self, key) -> None:
        """Legend entries in `key` order of their series names (series added as data arrives come in any order)."""
        if self.legend is None:
            return
        self.legend.clear()
        for name in sorted(self.curves, key=key):
            self.legend.addItem(self.curves[name], self.curves[name].name())

    def append(self, name: str, x: float, y: float) -> None:
        if not math.isfinite(y):
            return
        if name not in self.series:
            self.add_series(name)
        self.series[name].append(x, y)
        self._dirty = True

    def extend(self, name: str, points: list[tuple[float, float]]) -> None:
        """Append many points at once (a finished run's whole curve)."""
        if name not in self.series:
            self.add_series(name)
        arr = np.asarray(points, dtype=float).reshape(-1, 2)
        self.series[name].extend(arr[np.isfinite(arr[:, 1])])
        self._dirty = True

    def point_count(self, name: str | None = None) -> int:
        if name is not None:
            return self.series[name].n if name in self.series else 0
        return sum(s.n for s in self.series.values())

    def clear_data(self) -> None:
        for name in list(self.series):
            self.removeItem(self.curves[name])
            if self.legend is not None:
                self.legend.removeItem(self.curves[name])
        self.series.clear()
        self.curves.clear()
        self._pens.clear()
        self._thin.clear()
        for line, _ in self._boundaries:
            self.removeItem(line)
        self._boundaries.clear()
        self.getPlotItem().enableAutoRange(axis="x")  # forget the last run's view
        self._dirty = True

    def add_boundary(self, x: float, label: str, color: str | None = None, position: float = 0.92) -> None:
        """A dashed vertical line where a stage starts (or, in `color`, where an alert fired).

        Two stages starting at the same x share one line ("judge · grpo"); consecutive stage labels alternate
        in height, so stages only a few steps apart do not print over each other."""
        stage = color is None
        color = color or theme.current().muted
        for i, (old, text) in enumerate(self._boundaries):
            if stage and old.value() == x and getattr(old, "is_stage", False):
                merged = f"{text} · {label}"
                old.label.setFormat(merged)
                old.setToolTip(merged)
                self._boundaries[i] = (old, merged)
                return
        if stage:
            position -= BOUNDARY_STAGGER * (sum(getattr(b, "is_stage", False) for b, _ in self._boundaries) % 2)
        line = pg.InfiniteLine(pos=x, angle=90, movable=False, label=label,
                               labelOpts={"position": position, "color": color})
        line.setPen(pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine))
        line.setToolTip(label)
        line.is_stage = stage
        self.addItem(line, ignoreBounds=True)
        self._boundaries.append((line, label))

    @property
    def dirty(self) -> bool:
        """New points since the last redraw."""
        return self._dirty

    def redraw(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._dirty = False
        for name, series in self.series.items():
            curve = self.curves[name]
            dense = series.n > DENSE_POINTS
            if dense != (name in self._thin):
                curve.setPen(self._pens[name][dense])
                (self._thin.add if dense else self._thin.discard)(name)
            curve.setData(*series.data())
        self.note.setVisible(self.point_count() == 0)

    # ---- looks ------------------------------------------------------------------------------------
    def set_empty_note(self, text: str) -> None:
        self._empty_note = text
        self.note.setText(text, color=theme.current().muted)

    def _place_note(self) -> None:
        rect = self.getPlotItem().vb.boundingRect()
        self.note.setPos(rect.center())

    def apply_theme(self, t: theme.Theme) -> None:
        theme_chart(self, t, self.title, self.note, self._empty_note, self.legend)


class StackedPlot(LivePlot):
    """Two quantities stacked per step (thinking and answer tokens): filled bands, the total on top."""

    def __init__(self, title: str, lower: tuple[str, str], upper: tuple[str, str], **kwargs):
        super().__init__(title, legend=True, **kwargs)
        (self.lower, lower_label), (self.upper, upper_label) = lower, upper
        self._x, self._v, self._n = np.empty(256), np.zeros((256, 2)), 0  # (N,), (N, 2): lower, upper
        c0, c1 = theme.series_color(0), theme.series_color(1)
        self.base_curve = self.plot(pen=pg.mkPen(c0, width=1))
        self.low_curve = self.plot(pen=pg.mkPen(c0, width=1.5), name=lower_label)
        self.top_curve = self.plot(pen=pg.mkPen(c1, width=1.5), name=upper_label)
        for curve in (self.base_curve, self.low_curve, self.top_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self.fills = [pg.FillBetweenItem(self.base_curve, self.low_curve, brush=pg.mkBrush(c0 + "90")),
                      pg.FillBetweenItem(self.low_curve, self.top_curve, brush=pg.mkBrush(c1 + "90"))]
        for fill in self.fills:
            self.addItem(fill)

    def append(self, name: str, x: float, y: float) -> None:
        if name not in (self.lower, self.upper) or not math.isfinite(y):
            return
        if not self._n or self._x[self._n - 1] != x:  # a new step: a new row of zeros
            if self._n == len(self._x):
                self._x = np.resize(self._x, 2 * self._n)
                self._v = np.concatenate([self._v, np.zeros_like(self._v)])
            self._x[self._n], self._v[self._n] = x, 0.0
            self._n += 1
        self._v[self._n - 1, 0 if name == self.lower else 1] = y
        self._dirty = True

    def point_count(self, name: str | None = None) -> int:
        return self._n

    def clear_data(self) -> None:
        self._n = 0
        super().clear_data()

    def redraw(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._dirty = False
        x, v = self._x[: self._n], self._v[: self._n]
        self.base_curve.setData(x, np.zeros_like(x))
        self.low_curve.setData(x, v[:, 0])
        self.top_curve.setData(x, v[:, 0] + v[:, 1])
        for fill in self.fills:  # a fill keeps its old shape when its curves empty: hide it
            fill.setVisible(self._n > 0)
        self.note.setVisible(self._n == 0)
