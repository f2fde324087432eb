"""The Monitor page against store rows written the way the worker writes them."""

from __future__ import annotations

import time

import pytest

from tests.desktop.conftest import add_step, register_running


def test_charts_traces_log_and_timeline_follow_the_store(window, qtbot):
    store, monitor = window.store, window.monitor
    run_id = register_running(store, "followed")
    for step in (1, 2, 3):
        add_step(store, run_id, step, reward=0.1 * step)
    window.controller.refresh()
    window.show_run(run_id)
    assert window.current_page() == "monitor"
    charts = monitor.charts
    qtbot.waitUntil(lambda: charts["reward"].point_count("reward") == 3, timeout=3000)
    assert charts["reward"].point_count("rewards/accuracy/mean") == 3  # one curve per component
    assert charts["tokens"].point_count() == 3
    assert charts["accuracy"].point_count("accuracy") == 3 and charts["loss"].point_count("loss") == 3
    assert charts["kl"].point_count() == 0 and charts["kl"].note.isVisible()  # beta = 0: nothing logged
    assert monitor.traces.model.rowCount() == 6
    assert "step 3 done" in monitor.log.toPlainText()
    card = monitor.timeline.cards["grpo"]
    assert card.bar.value() == 3 and card.bar.maximum() == 10 and "ETA" in card.detail.text()
    assert monitor.stop_button.isEnabled()

    # new rows arrive: only they are read (WHERE id > ?), appended to the same buffers
    add_step(store, run_id, 4, reward=0.9)
    qtbot.waitUntil(lambda: charts["reward"].point_count("reward") == 4, timeout=3000)
    x, y = charts["reward"].series["reward"].data()
    assert list(x) == [1, 2, 3, 4] and y[-1] == 0.9
    assert monitor.traces.model.rowCount() == 8
    assert monitor.traces.model.trace(0)["step"] == 4  # newest first
    assert monitor.log.toPlainText().count("done") == 4
    monitor._on_redraw_timer_timeout(force=True)
    xs, _ = charts["reward"].curves["reward"].getData()
    assert len(xs) == 4


def test_stage_boundaries_are_marked(window, qtbot):
    store = window.store
    run_id = register_running(store)
    for step in (1, 2):
        add_step(store, run_id, step, stage="sft")
    add_step(store, run_id, 1, stage="grpo")
    window.show_run(run_id)
    reward = window.monitor.charts["reward"]
    qtbot.waitUntil(lambda: reward.point_count("reward") == 3, timeout=3000)
    x, _ = reward.series["reward"].data()
    assert list(x) == [1, 2, 3]  # steps restart per stage; the x axis runs on
    assert [label for _, label in reward._boundaries] == ["grpo"]


def test_trace_detail_folds_the_thinking(window, qtbot):
    store = window.store
    run_id = register_running(store)
    store.add_traces([{"run_id": run_id, "stage": "grpo", "step": 1, "prompt_id": "p",
                       "prompt": "What is 2 + 2?",
                       "completion": "two and two make four, SECRET-THOUGHT\n</think>\n<answer>4</answer>",
                       "think_tokens": 9, "answer_tokens": 5, "tokens": 14, "mode": "think", "correct": 1,
                       "reward": 1.5, "rewards": '{"accuracy": 1.0, "format": 1.0}', "difficulty": 1}])
    window.show_run(run_id)
    view = window.monitor.traces
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=3000)
    view.table.selectRow(0)
    text = view.detail.toPlainText()
    assert "SECRET-THOUGHT" not in text and "thinking folded (9 tokens)" in text
    assert "accuracy" in text and "What is 2 + 2?" in text
    view._on_detail_anchor_clicked(__import__("PySide6.QtCore").QtCore.QUrl("toggle-think"))
    assert "SECRET-THOUGHT" in view.detail.toPlainText()


def test_reopening_reattaches_to_the_running_run(window, qtbot):
    from desktop.app import MainWindow

    run_id = register_running(window.store, "long-run")
    add_step(window.store, run_id, 1)
    window.close()  # ask_leave_running -> "leave" (see the fixture)
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.monitor.run_id == run_id  # the newest active run is shown
    assert again.current_page() == "monitor"
    assert again.sidebar.item(1).text().endswith("(1)")
    assert "1 run is going" in again.sidebar.item(1).toolTip()
    qtbot.waitUntil(lambda: again.monitor.charts["reward"].point_count("reward") == 1, timeout=3000)


def test_closing_with_a_running_run_asks(window, monkeypatch):
    register_running(window.store)
    window.controller.refresh()
    window.ask_leave_running = lambda runs: "cancel"
    assert not window.close()
    asked = []
    window.ask_leave_running = lambda runs: asked.append(runs) or "leave"
    assert window.close()
    assert asked and asked[0][0]["status"] == "running"


def test_a_failed_run_shows_the_banner_with_its_traceback(window, qtbot):
    store = window.store
    run_id = register_running(store, "doomed")
    window.controller.refresh()
    store.update_run(run_id, status="failed", finished=time.time(),
                     error_type="ValueError", error_message="ValueError: learning went wrong",
                     error_traceback="Traceback (most recent call last):\n  File x\nValueError: learning went wrong")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=3000)
    notice = window.banner.current()
    assert "learning went wrong" in notice.message and notice.run_id == run_id
    assert notice.details.startswith("Traceback")
    assert not window.banner.details.isVisible()
    window.banner.details_button.click()
    assert window.banner.details.isVisible() and "Traceback" in window.banner.details.toPlainText()
    window.banner.dismiss()
    assert not window.banner.isVisible()


def test_gui_exceptions_reach_the_banner(window, qtbot, monkeypatch):
    import sys
    import threading

    from desktop.app import install_excepthooks

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    install_excepthooks(window.banner)
    try:
        raise KeyError("from a slot")
    except KeyError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=2000)
    assert "KeyError" in window.banner.current().message

    def fail():
        raise RuntimeError("from a thread")

    t = threading.Thread(target=fail)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(window.banner.notices) == 2, timeout=2000)
    assert "from a thread" in window.banner.notices[1].message
    assert "+1 more" in window.banner.count.text()


def test_health_alerts_show_above_the_charts(window, qtbot):
    store = window.store
    run_id = register_running(store)
    add_step(store, run_id, 1)
    add_step(store, run_id, 2)
    store.log_event(run_id, "alert", "grpo: 80% of completions were cut off at 24 tokens. Raise "
                                     "grpo.max_completion_length.", "grpo", 2, code="truncated")
    window.show_run(run_id)
    monitor = window.monitor
    qtbot.waitUntil(lambda: monitor.alerts_label.isVisible(), timeout=3000)
    assert "cut off" in monitor.alerts_label.text() and "1 alert" in monitor.alerts_label.text()
    assert ("truncated" in [label for _, label in monitor.charts["reward"]._boundaries])
    window.show_run(None)
    assert not monitor.alerts_label.isVisible()


def test_each_poll_does_bounded_work(window, qtbot):
    """A long run is caught up over several ticks, never in one long stall of the GUI thread."""
    from desktop import monitor as monitor_module

    store = window.store
    run_id = register_running(store)
    n_steps = monitor_module.METRICS_PER_POLL // 4  # add_step writes 12 metrics a step: three ticks' worth
    for step in range(1, n_steps + 1):
        store.add_metrics(run_id, "grpo", step, {f"m{i}": float(i) for i in range(11)} | {"reward": 0.1})
    window.monitor.poll_timer.stop()
    window.monitor.show_run(run_id)  # one poll
    reward = window.monitor.charts["reward"]
    first = reward.point_count("reward")
    assert 0 < first < n_steps
    for _ in range(4):
        window.monitor._on_poll_timer_timeout()
    assert reward.point_count("reward") == n_steps


def test_switching_runs_clears_every_chart(window, qtbot):
    store = window.store
    first = register_running(store, "first")
    for step in (1, 2, 3):
        add_step(store, first, step)
    second = register_running(store, "second")
    window.show_run(first)
    tokens = window.monitor.charts["tokens"]
    qtbot.waitUntil(lambda: tokens.point_count() == 3, timeout=3000)
    window.monitor._on_redraw_timer_timeout(force=True)
    assert all(fill.isVisible() for fill in tokens.fills)
    window.show_run(second)
    assert tokens.point_count() == 0 and not any(fill.isVisible() for fill in tokens.fills)
    assert all(plot.point_count() == 0 for plot in window.monitor.charts.values())


def test_eta_follows_the_recent_pace(window, qtbot):
    store = window.store
    run_id = register_running(store)  # started 30 s ago, 10 steps in total
    for step in (1, 2, 3, 4):
        add_step(store, run_id, step)  # 2 s a step
    window.show_run(run_id)
    card = window.monitor.timeline.cards["grpo"]
    qtbot.waitUntil(lambda: "ETA 12s" in card.detail.text(), timeout=3000)  # 6 steps left x 2 s


def test_charts_redraw_one_per_tick_in_turn(window, qtbot):
    """New points for every chart: each timer tick redraws one chart (one chart's paint per window
    repaint), and after one tick per chart every chart shows them."""
    store, monitor = window.store, window.monitor
    run_id = register_running(store)
    window.show_run(run_id)
    monitor.redraw_timer.stop()  # the test ticks it by hand
    add_step(store, run_id, 1)
    qtbot.waitUntil(lambda: monitor.charts["reward"].point_count("reward") == 1, timeout=3000)
    dirty = [key for key, plot in monitor.charts.items() if plot.dirty]
    assert len(dirty) >= 6  # reward, accuracy, tokens, think-rate, loss, learning rate, ...
    for ticks in range(1, len(dirty) + 1):
        monitor._on_redraw_timer_timeout()
        assert sum(plot.dirty for plot in monitor.charts.values()) == len(dirty) - ticks
    xs, _ = monitor.charts["reward"].curves["reward"].getData()
    assert list(xs) == [1]


def test_a_dense_curve_is_drawn_with_a_thin_pen(qtbot):
    from desktop.widgets.plots import DENSE_POINTS, LivePlot

    plot = LivePlot("dense")
    plot.add_series("reward", width=2.0)
    plot.extend("reward", [(i, i % 7) for i in range(DENSE_POINTS)])
    plot.redraw()
    assert plot.curves["reward"].opts["pen"].widthF() == 2.0
    plot.append("reward", DENSE_POINTS, 1.0)
    plot.redraw()
    assert plot.curves["reward"].opts["pen"].widthF() == 1.0
    plot.close()


def test_think_rate_and_accuracy_by_difficulty_are_charted(window, qtbot):
    store = window.store
    run_id = register_running(store)
    for step in (1, 2, 3):
        add_step(store, run_id, step)
        store.add_metrics(run_id, "grpo", step, {"think_rate/d4": 0.9, "think_rate/d1": 0.1 * step,
                                                 "accuracy/d1": 0.8, "accuracy/d4": 0.2})
    store.add_metrics(run_id, "eval", 0, {"eval/accuracy/d1": 0.5})  # an evaluation summary: not a curve
    window.show_run(run_id)
    charts = window.monitor.charts
    qtbot.waitUntil(lambda: charts["think_rate"].point_count("think_rate/d4") == 3, timeout=3000)
    assert charts["think_rate"].point_count("think_rate") == 3  # the overall curve stays
    assert charts["think_rate"].point_count("think_rate/d1") == 3
    assert charts["accuracy"].point_count("accuracy/d1") == 3 and charts["accuracy"].point_count("accuracy/d4") == 3
    assert not any(name.startswith("eval/") for c in charts.values() for name in c.series)
    labels = [text.text for _, text in charts["think_rate"].legend.items]
    assert labels == ["all", "level 1", "level 4"]  # easy to hard, whatever order the levels arrived in
    _, y = charts["think_rate"].series["think_rate/d1"].data()
    assert list(y) == [0.1, 0.2, 0.30000000000000004]


def test_prefer_stage_shows_pairs_dpo_charts_and_a_sample_of_pairs(window, qtbot):
    store = window.store
    grpo_run = register_running(store)
    run_id = register_running(store, spec={"name": "adar1", "model": {"source": "builtin:tiny-random"},
                                           "stages": ["sft", "prefer", "eval"]})
    window.show_run(grpo_run)
    assert not window.monitor.charts["dpo_margin"].isVisibleTo(window.monitor)  # no prefer stage, no DPO charts
    assert window.monitor.charts["loss"].isVisibleTo(window.monitor)
    store.add_metrics(run_id, "prefer", 0, {"prefer/pairs": 7, "prefer/pairs/group": 5, "prefer/pairs/instance": 2,
                                            "prefer/pairs/d3": 4, "prefer/pairs/d1": 3,
                                            "prefer/accuracy/think": 0.5, "prefer/tokens/think": 40.0,
                                            "prefer/accuracy/no_think": 0.25, "prefer/tokens/no_think": 9.0,
                                            "prefer/preferred/long": 2, "prefer/preferred/short": 3})
    for side, reward in (("chosen", 1.0), ("rejected", -1.0)):  # a pair, as the stage writes it
        store.add_traces([{"run_id": run_id, "stage": "prefer", "step": 0, "prompt_id": "p", "prompt": "What is 2+2?",
                           "completion": "</think>\n<answer>4</answer>", "tokens": 9, "think_tokens": 2,
                           "answer_tokens": 7, "mode": "no_think", "correct": int(reward > 0), "reward": reward,
                           "rewards": {"pair": reward}, "difficulty": 1}])
    for step in (1, 2):
        store.add_metrics(run_id, "prefer", step, {"loss": 0.69, "rewards/margins": 0.1 * step,
                                                   "rewards/accuracies": 0.5 * step, "rewards/chosen": 0.01})
    window.show_run(run_id)
    monitor = window.monitor
    assert monitor.charts["dpo_margin"].isVisibleTo(monitor) and monitor.charts["dpo_accuracy"].isVisibleTo(monitor)
    qtbot.waitUntil(lambda: monitor.charts["dpo_margin"].point_count("rewards/margins") == 2, timeout=3000)
    assert monitor.charts["dpo_accuracy"].point_count("rewards/accuracies") == 2
    assert monitor.charts["reward"].point_count() == 0  # DPO's implicit rewards are not GRPO reward components
    text = monitor.pairs_label.text()
    assert monitor.pairs_label.isVisibleTo(monitor)
    assert "Preference pairs: 7" in text and "group level 5, instance level 2" in text
    assert text.index("level 1: 3") < text.index("level 3: 4")  # easy to hard
    assert "think 50%" in text and "long preferred on 2" in text
    assert monitor.traces.model.rowCount() == 2


def test_reward_chart_plots_weighted_contributions_that_add_up_to_the_total(window, qtbot):
    """Each component's curve is weight x its batch mean, labelled `format x0.25`; they sum to the total."""
    store, monitor = window.store, window.monitor
    run_id = register_running(store, spec={"name": "weighted", "model": {"source": "builtin:tiny-random"},
                                           "rewards": {"preset": "r1-zero", "weights": {"format": 0.25}},
                                           "grpo": {"max_steps": 10, "batch_size": 8, "num_generations": 4}})
    means = [(0.5, 0.8), (0.25, 1.0), (1.0, 0.0)]  # (accuracy, format) per step
    for step, (acc, fmt) in enumerate(means, start=1):
        store.add_metrics(run_id, "grpo", step, {"reward": acc * 1.0 + fmt * 0.25,
                                                 "rewards/accuracy/mean": acc, "rewards/format/mean": fmt})
    window.controller.refresh()
    window.show_run(run_id)
    reward = monitor.charts["reward"]
    qtbot.waitUntil(lambda: reward.point_count("reward") == 3, timeout=3000)
    _, acc_y = reward.series["rewards/accuracy/mean"].data()
    _, fmt_y = reward.series["rewards/format/mean"].data()
    _, total = reward.series["reward"].data()
    assert list(acc_y) == [a for a, _ in means] and list(fmt_y) == [0.25 * f for _, f in means]
    assert [a + f for a, f in zip(acc_y, fmt_y, strict=True)] == pytest.approx(list(total))
    legend = [label.text for _, label in reward.legend.items]
    assert legend == ["total", "accuracy x1", "format x0.25"]


def test_every_chart_fits_its_cell_with_its_whole_title_and_legend(window, qtbot):
    """At the default window size each chart lays out inside its cell: a long title is elided (and given in
    full as the tooltip), the legend wraps into fewer columns, and no entry is cropped off the right."""
    store = window.store
    run_id = register_running(store, spec={"name": "fit", "model": {"source": "builtin:tiny-random"},
                                           "rewards": {"preset": "autothink"}})
    for step in (1, 2, 3):
        add_step(store, run_id, step, reward=-0.5 * step)
        store.add_metrics(run_id, "grpo", step, {"rewards/think_mode/mean": -0.5, "rewards/format/mean": 0.25,
                                                 **{f"{k}/d{d}": 0.2 * d for k in ("think_rate", "accuracy")
                                                    for d in (1, 2, 3, 4)}})
    window.show_run(run_id)
    charts = window.monitor.charts
    qtbot.waitUntil(lambda: charts["accuracy"].point_count("accuracy/d4") == 3, timeout=3000)
    window.monitor.run_charts.redraw(force=True)
    qtbot.wait(200)  # the posted layout requests
    assert [t.text for _, t in charts["accuracy"].legend.items] == ["all", "level 1", "level 2", "level 3",
                                                                     "level 4"]
    for key, chart in charts.items():
        if not chart.isVisible():
            continue
        item = chart.getPlotItem()
        width = chart.width()
        assert item.geometry().width() <= width + 0.5, key
        title = item.titleLabel.item
        assert title.mapRectToScene(title.boundingRect()).right() <= width, (key, item.titleLabel.text)
        shown = item.titleLabel.text
        assert shown == chart.title or (shown.endswith("…") and item.titleLabel.toolTip() == chart.title), key
        for _, label in chart.legend.items if chart.legend is not None else ():
            right = label.item.mapRectToScene(label.item.boundingRect()).right()
            assert right <= width, (key, label.text, right, width)
    assert charts["reward"].getPlotItem().titleLabel.text.endswith("…")  # 290 px do not hold its title
