"""The Compare page following a 5,000-generation comparison: the GUI thread's cost per poll tick.

    QT_QPA_PLATFORM=offscreen python bench/compare_poll.py [--generations 5000] [--per-tick 50] [--json OUT]

A real store and the real ComparePage (shown, 1440x900). An evaluation of two sources is
"running": before each tick `--per-tick` generations (half per source) are written to the store,
as engine.evaluate writes them, and its progress moves; then the page's poll slot runs and the
event loop paints what it changed. A tick's cost is that slot plus those paints, on the GUI
thread (the store writes are the evaluator's and not counted); a repaint of the whole page is
timed on top, as an upper bound. Also measured: opening the finished
comparison (all rows in one poll) and a tick that brings nothing. Target: <= 16 ms per tick.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import emit, median, percentile, scratch_home  # noqa: E402

TARGET_MS = 16.0
SOURCES = ("builtin:tiny-random", "run:1")


def generation(eval_id: int, source: str, index: int) -> dict:
    correct = (index * 7 + len(source)) % 3 == 0
    tokens = 40 + index % 90
    return {"eval_id": eval_id, "source": source, "prompt_id": f"p{index:05d}",
            "prompt": f"What is {index} + {index % 17}? Think step by step, then answer.",
            "completion": f"I add {index} and {index % 17}.\n</think>\n<answer>{index + index % 17}</answer>",
            "tokens": tokens, "think_tokens": tokens - 8, "answer_tokens": 8, "mode": "think",
            "correct": int(correct), "reward": None, "difficulty": 1 + index % 5, "sample": 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=5000)
    parser.add_argument("--per-tick", type=int, default=50, help="generations the evaluator writes between polls")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    scratch_home("compare")
    import psutil
    from PySide6.QtCore import QEvent, QObject, QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QApplication.instance() or QApplication([])

    from desktop import theme
    from desktop.compare import ComparePage
    from desktop.runner import RunController
    from engine.store import RunStore

    theme.manager().apply("light")
    store = RunStore()
    me = psutil.Process()
    prompts = args.generations // len(SOURCES)
    eval_id = store.create_evaluation(list(SOURCES), "builtin:arithmetic", prompts, {"num_samples": 1})
    store.update_evaluation(eval_id, status="running", pid=me.pid, pid_started=me.create_time(),
                            total=args.generations, progress=0, started=time.time())
    controller = RunController(store)
    controller._timer.stop()  # the page's own poll is measured, by hand
    page = ComparePage(controller)
    page.timer.stop()
    page.resize(1440, 900)
    page.show()
    page.show_evaluation(eval_id)
    app.processEvents()
    page.repaint()

    class PaintCounter(QObject):
        """Counts the problems table's paints: the per-tick figure includes painting the new rows."""
        paints = 0

        def eventFilter(self, _obj, event):  # noqa: N802 (Qt override)
            if event.type() == QEvent.Type.Paint:
                PaintCounter.paints += 1
            return False

    counter = PaintCounter()
    page.pairs.viewport().installEventFilter(counter)

    slot_ms: list[float] = []
    painted_in_tick = 0

    def tick(full_repaint: list[float] | None = None) -> float:
        """The poll slot, then the paint of what it changed (the event loop's update requests)."""
        nonlocal painted_in_tick
        t0 = time.perf_counter()
        page._on_timer_timeout()
        t1 = time.perf_counter()
        before = PaintCounter.paints
        app.processEvents()
        t2 = time.perf_counter()
        painted_in_tick += PaintCounter.paints > before
        slot_ms.append((t1 - t0) * 1000)
        if full_repaint is not None:  # an upper bound: the whole page painted again
            page.repaint()
            full_repaint.append((time.perf_counter() - t2) * 1000)
        return (t2 - t0) * 1000

    written, ticks, repaint_ms = 0, [], []
    while written < args.generations:
        batch = []
        for _ in range(args.per_tick // len(SOURCES)):
            index = written // len(SOURCES)
            batch += [generation(eval_id, source, index) for source in SOURCES]
            written += len(SOURCES)
        store.add_generations(batch)
        store.update_evaluation(eval_id, progress=written)
        ticks.append(tick(repaint_ms))
    polls, painted = list(slot_ms), painted_in_tick
    rows = page.pairs.model().rowCount()  # reported: a table that shows fewer rows would void the figure
    idle = [tick() for _ in range(50)]
    store.update_evaluation(eval_id, status="succeeded", finished=time.time())
    tick()
    opened = []
    for _ in range(5):  # a finished comparison opened: every row in one poll
        t0 = time.perf_counter()
        page.show_evaluation(eval_id)
        page.repaint()
        opened.append((time.perf_counter() - t0) * 1000)
    page.close()
    controller.deleteLater()
    store.close()

    last = ticks[-len(ticks) // 10:]  # the last tenth: the table holds nearly all rows
    result = {"generations": args.generations, "per_tick": args.per_tick, "ticks": len(ticks),
              "problems": prompts, "rows_shown": rows, "ticks_that_painted_the_table": painted,
              "tick_ms": {"median": median(ticks), "p99": percentile(ticks, 99), "max": max(ticks)},
              "slot_only_ms": {"median": median(polls), "p99": percentile(polls, 99)},
              "whole_page_repaint_ms": {"median": median(repaint_ms), "p99": percentile(repaint_ms, 99)},
              "tick_ms_last_tenth": {"median": median(last), "p99": percentile(last, 99)},
              "idle_tick_ms": {"median": median(idle), "p99": percentile(idle, 99)},
              "open_finished_ms": {"median": median(opened), "max": max(opened)},
              "target_ms": TARGET_MS}
    print(f"Compare poll, {args.generations} generations in {len(ticks)} ticks of {args.per_tick}: "
          f"median {result['tick_ms']['median']:.2f} ms, p99 {result['tick_ms']['p99']:.2f} ms per tick "
          f"(last tenth: median {result['tick_ms_last_tenth']['median']:.2f} ms; the slot alone "
          f"{result['slot_only_ms']['median']:.2f} ms; repainting the whole page on top "
          f"{result['whole_page_repaint_ms']['median']:.1f} ms); idle tick "
          f"{result['idle_tick_ms']['median']:.2f} ms; opening the finished comparison "
          f"{result['open_finished_ms']['median']:.1f} ms (target per tick <= {TARGET_MS:.0f} ms)")
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
