"""The Monitor's grid of live charts: which metric goes to which chart, and how each is drawn.

The reward chart shows what drives the total: each component's weighted contribution
(weight x the step's batch mean, legend `format x0.5`), so the contributions add up to
the total curve wherever no component skipped a sample (TRL's rule, see
engine.rewards.weights.weighted_total). Weights come from the run's spec, resolved once.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QGridLayout, QWidget

from desktop import theme
from desktop.widgets.plots import LivePlot, StackedPlot
from engine.rewards.weights import WeightError, resolve_weights

# chart key -> (title, {metric name: series label}, options); "rewards/<name>/mean" is routed by prefix
CHARTS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "reward": ("Reward (total and weighted components)", {"reward": "total"}, {"legend": True}),
    "accuracy": ("Accuracy (all and by difficulty)", {"accuracy": "all"}, {"y_range": (0, 1), "legend": True}),
    "tokens": ("Tokens: thinking + answer", {}, {}),
    "think_rate": ("Think rate (all and by difficulty)", {"think_rate": "all"},
                   {"y_range": (0, 1), "legend": True}),
    "kl": ("KL to the reference", {"kl": "KL"}, {"empty_note": "not logged: KL weight (beta) is 0"}),
    "loss": ("Loss", {"loss": "loss"}, {}),
    "learning_rate": ("Learning rate", {"learning_rate": "lr"}, {}),
    "tokens_per_s": ("Throughput (tokens/s)", {"tokens_per_s": "tokens/s"}, {}),
    # the prefer stage's DPO: implicit reward of chosen minus rejected, and how often chosen is ahead
    "dpo_margin": ("DPO reward margin (chosen - rejected)", {"rewards/margins": "margin"},
                   {"empty_note": "logged by the prefer stage"}),
    "dpo_accuracy": ("DPO reward accuracy (chosen ahead)", {"rewards/accuracies": "accuracy"},
                     {"y_range": (0, 1), "empty_note": "logged by the prefer stage"}),
}
BY_LEVEL = ("accuracy/d", "think_rate/d")  # per difficulty level: thin curves beside the overall one
PREFER_CHARTS = ("dpo_margin", "dpo_accuracy")  # shown only for a run with a prefer stage
COLUMNS = 4


def run_reward_weights(spec: dict[str, Any] | None) -> dict[str, float]:
    """Component -> weight of a run's spec (as stored in the run row); empty if it does not resolve."""
    r = (spec or {}).get("rewards") or {}
    try:
        return resolve_weights(str(r.get("preset", "r1-zero")), r.get("weights") or {},
                               r.get("custom_file") or "")
    except (WeightError, TypeError, AttributeError):
        return {}


def contribution(weights: dict[str, float], component: str, mean: float) -> tuple[str, float]:
    """The reward chart's (legend label, y) of a component's batch mean: `format x0.5`, weight x mean.

    A component the weights do not name (a run whose spec no longer resolves) counts at weight 1,
    the builder's default for a custom function."""
    weight = weights.get(component, 1.0)
    return f"{component} x{weight:g}", weight * mean


class RunCharts(QWidget):
    """The chart grid; `add` routes one metric point, the owner's timer calls `redraw_next`."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.charts: dict[str, LivePlot] = {}
        self.reward_weights: dict[str, float] = {}
        self._next_chart = 0
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(8)
        for i, (key, (chart_title, series, options)) in enumerate(CHARTS.items()):
            if key == "tokens":
                plot = StackedPlot(chart_title, ("tokens/think", "thinking"), ("tokens/answer", "answer"))
            else:
                plot = LivePlot(chart_title, **options)
            self.charts[key] = plot
            grid.addWidget(plot, i // COLUMNS, i % COLUMNS)
            plot.setVisible(key not in PREFER_CHARTS)
        self._add_fixed_series()

    def _add_fixed_series(self) -> None:
        for key, (_, series, _) in CHARTS.items():
            for name, label in series.items():
                self.charts[key].add_series(name, label, width=2.5 if name == "reward" else 2.0)

    def reset(self, reward_weights: dict[str, float], stages=()) -> None:
        """Empty every chart for another run, whose rewards have these weights and which runs these stages
        (the DPO charts are shown only for a run with a prefer stage)."""
        self.reward_weights = dict(reward_weights)
        for key, plot in self.charts.items():
            plot.clear_data()
            if key in PREFER_CHARTS:
                plot.setVisible("prefer" in stages)
        self._add_fixed_series()

    def add_boundary(self, x: float, label: str) -> None:
        for plot in self.charts.values():
            plot.add_boundary(x, label)

    def set_empty_note(self, note: str) -> None:
        for key, plot in self.charts.items():
            if key != "kl":
                plot.set_empty_note(note)

    def add(self, name: str, x: float, value: float) -> None:
        """One metric point at x, on the chart it belongs to (none if no chart shows it)."""
        if name.startswith("rewards/") and name.endswith("/mean"):
            label, y = contribution(self.reward_weights, name[len("rewards/"):-len("/mean")], value)
            self.charts["reward"].add_series(name, label, width=1.5)
            self.charts["reward"].append(name, x, y)
        elif name in ("tokens/think", "tokens/answer"):
            self.charts["tokens"].append(name, x, value)
        elif name.startswith(BY_LEVEL) and name.rsplit("/d", 1)[-1].isdigit():  # accuracy/d3, think_rate/d1
            key, level = name.rsplit("/d", 1)
            plot = self.charts[key]
            if name not in plot.series:  # levels arrive in any order; the legend lists them easy to hard
                plot.add_series(name, f"level {level}", width=1.2, color=theme.level_color(int(level)))
                plot.sort_legend(key=lambda n: int(n.rsplit("/d", 1)[1]) if "/d" in n else 0)
            plot.append(name, x, value)
        else:
            for key, (_, series, _) in CHARTS.items():
                if name in series:
                    self.charts[key].append(name, x, value)

    def redraw(self, force: bool = False) -> None:
        """All charts at once when forced, else the next chart in turn that has new points.

        One chart a call keeps each window repaint to one chart's paint (a few ms): eight charts
        repainted together stall the GUI thread for ~50 ms on a 2-core machine (bench/gui_latency.py)."""
        plots = list(self.charts.values())
        if force:
            for plot in plots:
                plot.redraw(True)
            return
        for _ in range(len(plots)):
            plot = plots[self._next_chart % len(plots)]
            self._next_chart += 1
            if plot.dirty:
                plot.redraw()
                return
