"""End to end with a real worker on the tiny model: fill the form, start, watch, stop, find it in Runs,
export it.

About a minute on 2 CPU cores: the worker loads torch and the tiny model (~20 s), then trains
a few seconds a step until the Stop button asks it to end with a checkpoint.

The test runs in a Python process of its own (it starts itself again with pytest) so that its last
check, that the GUI process never imported the ML stack, is about the GUI alone: in a whole-suite run
the engine tests have already imported torch into the pytest process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

from desktop.widgets import model_picker

ML_STACK = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


OWN_PROCESS = "PONDER_TEST_OWN_PROCESS"


def test_start_watch_stop_list_and_export_a_real_run(request, tmp_path):
    if os.environ.get(OWN_PROCESS) != request.node.nodeid:
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
            cwd=request.config.rootpath, env={**os.environ, OWN_PROCESS: request.node.nodeid},
            capture_output=True, text=True, timeout=600)
        assert child.returncode == 0, child.stdout[-20_000:] + child.stderr[-5_000:]
        assert "1 passed" in child.stdout
        return
    assert [m for m in ML_STACK if m in sys.modules] == []  # nothing loaded it before the GUI started
    gui_flow(request.getfixturevalue("window"), request.getfixturevalue("qtbot"), tmp_path)


def gui_flow(window, qtbot, tmp_path: Path) -> None:
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
    # think-rate and accuracy by difficulty: a thin curve per level beside the overall one
    for key in ("think_rate", "accuracy"):
        levels = [name for name in charts[key].series if name.startswith(f"{key}/d")]
        assert levels and sum(charts[key].point_count(name) for name in levels) >= 2, charts[key].series
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

    # ---- export its checkpoint with the real engine command ------------------------------------------
    table.selectRow(row)
    window.runs.export_button.click()
    export = window.export
    assert window.current_page() == "export" and export.run_combo.currentData() == run_id
    assert export.weights.currentData().startswith("grpo:")  # a stopped run: its stop checkpoint
    export.out_edit.setText(str(tmp_path / "gui-e2e-export"))
    export.export_button.click()
    qtbot.waitUntil(lambda: export.proc is None, timeout=120_000)
    assert export.exported == tmp_path / "gui-e2e-export", export.status.text()
    assert (export.exported / "adapter_config.json").is_file() and (export.exported / "spec.toml").is_file()
    assert "gui-e2e" in export.card.toPlainText()  # the model card, read from the folder

    # ---- and the GUI process never loaded the ML stack -------------------------------------------------
    assert [m for m in ML_STACK if m in sys.modules] == []
