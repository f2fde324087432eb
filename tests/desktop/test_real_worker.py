"""End to end with a real worker on the tiny model: fill the form, start, watch, stop, find it in Runs.

About a minute on 2 CPU cores: the worker loads torch and the tiny model (~20 s), then trains
a few seconds a step until the Stop button asks it to end with a checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt

from desktop.widgets import model_picker

ML_STACK = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def test_start_watch_stop_and_list_a_real_run(window, qtbot):
    page = window.new_run
    window.show_page("new_run")
    # ---- fill the form: everything shrunk so a step takes seconds -------------------------------
    page.name_edit.setText("gui-e2e")
    page.model.combo.setCurrentIndex(page.model.combo.findData(model_picker.TINY))
    page.data.task.setCurrentIndex(page.data.task.findData("arithmetic"))
    page.data.train_size.setValue(32)
    page.data.eval_size.setValue(8)
    presets = page.rewards.presets
    presets.setCurrentRow(next(i for i in range(presets.count())
                               if presets.item(i).data(Qt.ItemDataRole.UserRole) == "r1-zero"))
    page.stages.widget("grpo.max_steps").setValue(200)  # never reached: the test stops it
    page.stages.widget("grpo.learning_rate").setText("1e-3")
    page.stages.widget("grpo.num_generations").setValue(4)
    page.stages.widget("grpo.batch_size").setValue(8)
    page.stages.widget("grpo.max_completion_length").setValue(16)
    page.stages.widget("grpo.save_steps").setValue(100)
    assert page.validate(), page.errors
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)

    # ---- the monitor follows the new run -------------------------------------------------------------
    assert window.current_page() == "monitor"
    run_id = window.monitor.run_id
    run = window.store.get_run(run_id)
    assert run["name"] == "gui-e2e" and (Path(run["run_dir"]) / "spec.toml").is_file()
    charts = window.monitor.charts
    qtbot.waitUntil(lambda: charts["reward"].point_count("reward") >= 2, timeout=150_000)
    assert charts["tokens"].point_count() >= 2 and charts["learning_rate"].point_count("learning_rate") >= 2
    assert charts["reward"].point_count("rewards/accuracy/mean") >= 2
    assert window.monitor.traces.model.rowCount() >= 8
    assert "worker started" in window.monitor.log.toPlainText()
    assert window.store.get_run(run_id)["status"] == "running"
    assert window.monitor.timeline.cards["grpo"].bar.value() >= 2

    # ---- stop: the worker saves a checkpoint and exits by itself (no terminate needed) --------------
    qtbot.mouseClick(window.monitor.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "stopped", timeout=90_000)
    run_dir = Path(run["run_dir"])
    qtbot.waitUntil(lambda: (run_dir / "worker.exit").exists(), timeout=10_000)
    assert (run_dir / "worker.exit").read_text() == "3"  # the worker's own "stopped" exit code
    assert not any("terminated" in e["message"] for e in window.store.events_since(run_id))
    assert window.store.artifacts(run_id, "checkpoint")
    assert not window.banner.isVisible()

    # ---- the Runs page lists it ----------------------------------------------------------------------
    window.controller.refresh()
    window.show_page("runs")
    table = window.runs.table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == str(run_id))
    assert table.item(row, 1).text() == "gui-e2e" and table.item(row, 2).text() == "stopped"
    assert table.item(row, 5).text() != ""  # a final reward

    # ---- and the GUI process never loaded the ML stack -------------------------------------------------
    assert [m for m in ML_STACK if m in sys.modules] == []
