"""Screenshots of a run's evaluation views (Runs page > Evaluation) and its Monitor, for docs/.

    PONDER_HOME=/path/with/a/run xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python docs/screenshots/take_eval_shots.py RUN_ID [OUT_DIR]

The run should have an evaluation of its checkpoints with thinking budgets
(`ponder eval run:RUN_ID --checkpoints all --budgets 8,16,32`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from desktop import theme
from desktop.app import MainWindow, install_excepthooks
from desktop.settings import APP, ORG
from take_screenshots import run_steps  # this folder is on sys.path when the script runs

RUN_ID = int(sys.argv[1])
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent.parent)


def main() -> int:
    QApplication.setOrganizationName(ORG)
    QApplication.setApplicationName(APP)
    app = QApplication(sys.argv[:1])
    theme.manager().apply("light")
    window = MainWindow()
    window.ask_leave_running = lambda runs: "leave"
    install_excepthooks(window.banner)
    window.resize(1440, 900)
    window.show()

    def shot(name: str):
        return lambda: window.grab().save(str(OUT / f"{name}.png"))

    def runs_eval():
        window.show_page("runs")
        window.runs.select_ids([RUN_ID])
        window.runs.bottom_tabs.setCurrentWidget(window.runs.evaluation)

    def tab(index: int):
        return lambda: window.runs.evaluation.views.setCurrentIndex(index)

    def monitor():
        window.show_run(RUN_ID)
        window.monitor._on_redraw_timer_timeout(force=True)

    steps = [(1500, runs_eval), (2500, shot("eval-frontier")), (300, tab(2)), (1200, shot("eval-budget")),
             (300, tab(3)), (1200, shot("eval-by-difficulty")), (300, monitor), (3000, shot("monitor-result")),
             (300, app.quit)]

    run_steps(steps)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
