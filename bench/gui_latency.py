"""GUI responsiveness under a fast writer: event-loop lag of the main window on the monitor page,
and the redraw time of a chart holding 100k points.

    QT_QPA_PLATFORM=offscreen python bench/gui_latency.py [--seconds 10] [--json OUT]

A synthetic writer process (bench/synthetic_writer.py) appends 20 steps/s, each 15 metrics
and 64 traces, to the store while the real MainWindow follows that run on its monitor page.
A 5 ms precise QTimer notes when it actually fires: its lag (interval minus 5 ms) is how long
the GUI thread was busy. The same is measured with the run finished (idle), side by side.
The monitor's poll and redraw ticks are timed too. Targets: p99 lag <= 30 ms; a 100k-point
chart redraws (setData and a synchronous repaint) in <= 16 ms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import child_env, emit, median, percentile, scratch_home  # noqa: E402

TICK_MS = 5
TARGET_LAG_MS, TARGET_REDRAW_MS = 30, 16


def lag_ms(app, seconds: float) -> list[float]:
    """Intervals of a 5 ms timer, minus 5 ms, while the event loop runs for `seconds`."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    stamps: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    loop.exec()
    timer.stop()
    return [max(0.0, (b - a) * 1000 - TICK_MS) for a, b in zip(stamps, stamps[1:], strict=False)]


def summary(values: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values, default=None),
            "n": len(values)}


def redraw_ms(app, points: int, repeats: int, width: float = 2.0) -> list[float]:
    """setData of a `points`-point series plus a synchronous repaint of the chart, in ms.

    The series is added as the monitor adds its curves (`add_series`, pen width 2 by default)."""
    import numpy as np

    from desktop.widgets.plots import LivePlot

    plot = LivePlot("bench: 100k points")
    plot.resize(480, 300)
    plot.show()
    app.processEvents()  # exposed: from now on a repaint paints
    plot.add_series("reward", "reward", width=width)
    rng = np.random.default_rng(0)
    xs = np.arange(points, dtype=float)
    plot.extend("reward", np.column_stack([xs, np.cumsum(rng.normal(size=points))]).tolist())
    plot.redraw(force=True)
    plot.viewport().repaint()  # first paint: caches, fonts
    out = []
    before = len(PAINTS)
    for i in range(repeats):
        plot.append("reward", points + i, float(rng.normal()))  # new data, as a live run brings
        t0 = time.perf_counter()
        plot.redraw()
        plot.viewport().repaint()
        out.append((time.perf_counter() - t0) * 1000)
    assert len(PAINTS) - before == repeats, "the chart did not paint on each repaint: the figure is void"
    plot.close()
    return out


PAINTS: list[float] = []  # ms of every chart paint (pyqtgraph GraphicsView.paintEvent)


def time_chart_paints() -> None:
    import pyqtgraph as pg

    original = pg.GraphicsView.paintEvent

    def paint_event(self, event):
        t0 = time.perf_counter()
        original(self, event)
        PAINTS.append((time.perf_counter() - t0) * 1000)

    pg.GraphicsView.paintEvent = paint_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the writer writes")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    scratch_home("gui")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QApplication.instance() or QApplication([])

    from desktop import monitor as monitor_module
    from desktop import theme
    from desktop.app import MainWindow
    from engine.launch import create_run
    from engine.spec import spec_from_dict
    from engine.store import RunStore

    # time the monitor's own ticks: wrap the slots before the page connects them
    ticks: dict[str, list[float]] = {"poll": [], "redraw": []}
    for name, key in (("_on_poll_timer_timeout", "poll"), ("_on_redraw_timer_timeout", "redraw")):
        original = getattr(monitor_module.MonitorPage, name)

        def timed(self, *a, _original=original, _key=key, **kw):
            t0 = time.perf_counter()
            try:
                return _original(self, *a, **kw)
            finally:
                ticks[_key].append((time.perf_counter() - t0) * 1000)

        setattr(monitor_module.MonitorPage, name, timed)
    time_chart_paints()

    theme.manager().apply("light")
    store = RunStore()
    spec = spec_from_dict({"name": "bench-gui", "model": {"source": "builtin:tiny-random"}})
    run_id, _ = create_run(spec, store)
    writer = subprocess.Popen([sys.executable, str(Path(__file__).with_name("synthetic_writer.py")),
                               str(store.path), str(run_id), "--seconds", str(args.seconds)],
                              stdout=subprocess.PIPE, text=True, env=child_env())
    end = time.time() + 60
    while store.get_run(run_id)["status"] != "running" and time.time() < end:
        time.sleep(0.05)

    window = MainWindow(store)
    window.resize(1440, 900)
    window.show()
    window.show_run(run_id)
    window.show_page("monitor")
    for key in ticks:
        ticks[key].clear()
    PAINTS.clear()
    busy = lag_ms(app, max(1.0, args.seconds - 1.0))  # while the writer writes
    busy_ticks = {k: list(v) for k, v in ticks.items()}
    busy_paints = list(PAINTS)
    writer_out, _ = writer.communicate(timeout=120)
    written = store.db.conn.execute("SELECT max(id) FROM traces").fetchone()[0] or 0
    behind_at_end = written - window.monitor._after["traces"]
    for key in ticks:
        ticks[key].clear()
    idle = lag_ms(app, 3.0)  # the run finished: only the timers tick
    window.close()
    for timer in (window.monitor.poll_timer, window.monitor.redraw_timer, window.controller._timer):
        timer.stop()  # nothing else paints while one chart is timed
    redraw = redraw_ms(app, args.points, repeats=30)
    redraw_thin = redraw_ms(app, args.points, repeats=30, width=1.0)
    store.close()

    busy_s, idle_s = summary(busy), summary(idle)
    emit({
        "benchmark": "gui_latency", "writer": writer_out.strip(),
        "lag_ms_while_writing": busy_s, "lag_ms_idle": idle_s,
        "monitor_poll_ms": summary(busy_ticks["poll"]), "monitor_redraw_ms": summary(busy_ticks["redraw"]),
        "chart_paint_ms_while_writing": {**summary(busy_paints), "total_s": sum(busy_paints) / 1000},
        "traces_behind_when_writer_stopped": behind_at_end,
        "redraw_100k_ms": {"median": median(redraw), "p90": percentile(redraw, 90), "points": args.points,
                           "pen_width": 2.0},
        # the same series added with a 1-px pen: LivePlot draws a dense curve (> DENSE_POINTS)
        # with 1 px anyway, so the two should match; before that switch 2 px cost twice the time
        "redraw_100k_ms_pen_width_1": {"median": median(redraw_thin), "p90": percentile(redraw_thin, 90)},
        "target": f"p99 lag <= {TARGET_LAG_MS} ms; redraw <= {TARGET_REDRAW_MS} ms",
    }, args.json)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: with the slots and paintEvent wrapped above, PySide 6.12 can die in
    # it ("none_dealloc") after the figures are out; the app itself exits cleanly (checked without them).
    os._exit(code)
