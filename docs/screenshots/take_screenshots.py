"""Screenshots of every page of the real window, for docs/screenshots/.

    PONDER_HOME=/path/with/runs xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python docs/screenshots/take_screenshots.py [OUT_DIR]

The Ponder home should hold a few runs (one running, one failed, one stopped, one finished
with an evaluation) and a comparison; each shot waits for the window to settle first.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QScrollArea

from desktop import theme
from desktop.app import MainWindow, install_excepthooks
from desktop.settings import APP, ORG

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)


def run_steps(steps: list) -> None:
    """Run (delay_ms, action) steps one after another on the event loop, each after its delay."""
    if not steps:
        return
    delay, action = steps.pop(0)

    def go():
        action()
        run_steps(steps)
    QTimer.singleShot(delay, go)


def main() -> int:
    QApplication.setOrganizationName(ORG)
    QApplication.setApplicationName(APP)
    app = QApplication(sys.argv[:1])
    theme.manager().apply("light")
    window = MainWindow()
    window.ask_leave_running = lambda runs: "leave"  # quitting must not wait for an answer about live runs
    install_excepthooks(window.banner)
    window.resize(1440, 900)
    window.show()
    runs = {r["name"]: r for r in window.store.list_runs()}
    steps = []

    def shot(name: str):
        def take():
            window.monitor._on_redraw_timer_timeout(force=True)
            window.grab().save(str(OUT / f"{name}.png"))
        return take

    def new_run_top():
        window.show_page("new_run")
        data = {"source": "builtin:arithmetic", "train_size": 200, "eval_size": 50,
                "difficulty_mix": {"1": 0.5, "2": 0.3, "3": 0.2}}
        window.new_run.set_spec_dict({"name": "arith-r1-zero", "data": data, "rewards": {"preset": "concise"},
                                      "model": {"source": "bundled:smollm2-135m-instruct"},
                                      "stages": ["grpo", "eval"]})

    def new_run_invalid():
        page = window.new_run
        page.stages.widget("grpo.num_generations").setValue(6)
        page.validate()
        scroll = page.findChild(QScrollArea)
        bar = scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    def new_run_file():
        page = window.new_run
        page.stages.widget("grpo.num_generations").setValue(4)
        page.findChild(QScrollArea).verticalScrollBar().setValue(0)
        page.data.file_radio.setChecked(True)
        page.data.path_edit.setText(str(Path(__file__).parent / "sample_data.jsonl"))

    def monitor_live():
        live = next((r for r in runs.values() if r["status"] == "running"), None)
        window.show_run((live or next(iter(runs.values())))["id"])

    def select_trace():
        window.monitor.traces.table.selectRow(0)

    def monitor_failed():
        failed = next((r for r in runs.values() if r["status"] == "failed"), None)
        if failed:
            window.show_run(failed["id"])
            window.monitor._on_details_button_clicked()
            window.banner.details_button.setChecked(True)

    def runs_page():
        window.banner.dismiss()
        window.show_page("runs")
        window.runs.select_ids([r["id"] for r in runs.values() if r["status"] in ("succeeded", "stopped",
                                                                                    "running")])

    def compare_page():
        window.show_page("compare")
        window.compare.pairs.setCurrentCell(0, 0)

    def export_page():
        import tempfile

        window.show_page("export")
        done = next((r for r in runs.values() if r["status"] == "succeeded"), None)
        if done:
            window.export.select_run(done["id"])
            window.export.out_edit.setText(str(Path(tempfile.mkdtemp()) / f"{done['name']}-export"))
            window.export.start()

    def dark():
        theme.manager().apply("dark")
        monitor_live()

    steps = [(1500, new_run_top), (1500, shot("new_run")), (300, new_run_invalid),
             (800, shot("new_run_invalid")), (300, new_run_file), (6000, shot("new_run_data_file")),
             (300, monitor_live), (2500, select_trace), (800, shot("monitor")),
             (300, monitor_failed), (2000, shot("monitor_failed")), (300, runs_page), (1500, shot("runs")),
             (300, compare_page), (2000, shot("compare")), (300, export_page), (25000, shot("export")),
             (300, dark), (2500, select_trace),
             (800, shot("monitor_dark")), (300, app.quit)]

    run_steps(steps)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
