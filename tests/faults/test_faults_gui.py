"""The GUI and the store under faults: the GUI killed while its worker runs, and several writers at once.

The GUI process is the real main window, offscreen. Workers the GUI starts are detached
(desktop.supervise, its own session): they outlive the window on purpose, so these tests
kill whatever is left themselves (stop_run_processes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from tests.faults.conftest import (
    ROOT,
    fault_spec,
    kill_quietly,
    start,
    stop_run_processes,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints")

# A GUI process that starts one run the way the New run page does (RunController.start), then idles.
GUI_DRIVER = """
import json, sys
from PySide6.QtWidgets import QApplication
from desktop.app import MainWindow
from engine.spec import spec_from_dict

app = QApplication([sys.argv[0]])
window = MainWindow()
window.show()
run_id = window.controller.start(spec_from_dict(json.loads(sys.argv[1])))
sys.stdout.write(f"started {run_id}\\n")
sys.stdout.flush()
app.exec()
"""


def _window(qtbot):
    from desktop.app import MainWindow

    window = MainWindow()
    window.ask_leave_running = lambda runs: "leave"  # closing at teardown must not wait on a dialog
    qtbot.addWidget(window)
    window.resize(1440, 900)
    window.show()
    return window


def _x(plot, name: str) -> list[float]:
    return [float(x) for x in plot.series[name].data()[0]]


def test_gui_killed_while_its_worker_runs_then_a_new_gui_reattaches(store, qtbot, qsettings_tmp, tmp_path):
    steps = 5
    spec = fault_spec(**{"name": "outlives-the-gui", "grpo.max_steps": steps, "grpo.save_steps": 100})
    env = worker_env(XDG_CONFIG_HOME=str(tmp_path / "gui-config"), QT_QPA_PLATFORM="offscreen")
    gui_log = open(tmp_path / "gui.log", "w")  # noqa: SIM115 (closed in finally)
    gui = subprocess.Popen([sys.executable, "-c", GUI_DRIVER, json.dumps(spec.to_dict())], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=gui_log, text=True)
    try:
        line = gui.stdout.readline()
        assert line.startswith("started "), line + (tmp_path / "gui.log").read_text()
        run_id = int(line.split()[1])
        wait_for(lambda: store.last_metrics(run_id)["step"], what="the first step")

        # ---- the GUI dies (SIGKILL: no closeEvent, no "leave running?" question) ---------------------
        os.kill(gui.pid, signal.SIGKILL)
        gui.wait(timeout=30)
        run = store.get_run(run_id)
        assert run["status"] == "running", run.get("error_message")  # the worker, in its own session, goes on
        assert store.last_metrics(run_id)["step"] < steps

        # ---- a new GUI re-attaches to the running job and ends up with its whole history ----------------
        window = _window(qtbot)
        assert window.current_page() == "monitor"  # a run is going: the window opens on it
        assert window.monitor.run_id == run_id
        charts, traces = window.monitor.charts, window.monitor.traces.model
        qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "succeeded", timeout=300_000)
        qtbot.waitUntil(lambda: charts["reward"].point_count("reward") == steps, timeout=10_000)
        assert _x(charts["reward"], "reward") == [float(s) for s in range(1, steps + 1)]
        assert charts["tokens"].point_count() == steps
        qtbot.waitUntil(lambda: traces.rowCount() == steps * spec.grpo.batch_size, timeout=10_000)
        assert "worker started" in window.monitor.log.toPlainText()
        run_dir = window.store.get_run(run_id)["run_dir"]
        wait_for(lambda: os.path.exists(os.path.join(run_dir, "worker.exit")), timeout=30, what="worker.exit")
        with open(os.path.join(run_dir, "worker.exit")) as f:
            assert f.read() == "0"  # desktop.supervise outlived the GUI too and recorded the exit
    finally:
        kill_quietly(gui.pid)
        gui.wait(timeout=30)
        gui_log.close()
        stop_run_processes(store)


def test_two_workers_write_at_once_while_the_gui_polls(store, qtbot, qsettings_tmp):
    steps = 3
    window = _window(qtbot)
    runs = {}
    for name in ("first", "second"):
        run_id, run_dir, proc = start(store, fault_spec(**{"name": name, "grpo.max_steps": steps,
                                                           "grpo.save_steps": 100}))
        runs[run_id] = (run_dir, proc)
    first, second = runs
    window.show_run(first)
    try:
        # the monitor flips between the two runs while they train: each show_run reloads from id 0
        flips = iter(range(10_000))
        def flip() -> None:
            if next(flips) % 8 == 0:  # every 2 s
                window.show_run(second if window.monitor.run_id == first else first)

        window.monitor.poll_timer.timeout.connect(flip)
        qtbot.waitUntil(lambda: all(p.poll() is not None for _, p in runs.values()), timeout=400_000)
    finally:
        for _, proc in runs.values():
            kill_quietly(proc.pid)
            proc.wait(timeout=30)
    for run_id, (run_dir, proc) in runs.items():
        log = (run_dir / "worker.log").read_text(errors="replace")
        assert proc.returncode == 0, log[-3000:]
        assert "database is locked" not in log
        assert store.get_run(run_id)["status"] == "succeeded"
        rows = Counter((m["step"], m["name"]) for m in store.metrics_since(run_id))
        assert sorted({step for step, _ in rows}) == list(range(1, steps + 1))
        assert max(rows.values()) == 1
        assert len(store.traces_since(run_id)) == steps * 4  # every completion of every step
    assert store.integrity_check() == "ok"

    # ---- what the monitor shows of each run is what the store holds --------------------------------------
    for run_id in (first, second, first):
        window.show_run(run_id)
        charts = window.monitor.charts
        qtbot.waitUntil(lambda: charts["reward"].point_count("reward") == steps, timeout=10_000)
        assert window.monitor.traces.model.rowCount() == len(store.traces_since(run_id))
        assert window.monitor._after["metrics"] == store.metrics_since(run_id)[-1]["id"]


# Writes `steps` steps (15 metrics, 64 traces, progress) as fast as it can through RunStore.
FAST_WRITER = textwrap.dedent("""
    import json, sys, time
    from engine.store import RunStore
    store_path, run_id, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with RunStore(store_path) as store:
        store.update_run(run_id, status="running")
        for step in range(1, steps + 1):
            store.add_metrics(run_id, "grpo", step, {f"m{i}": step + i for i in range(14)} | {"reward": step})
            store.add_traces([{"run_id": run_id, "stage": "grpo", "step": step, "prompt_id": str(k),
                               "prompt": "What is 1 + 1?", "completion": "<answer>2</answer>", "tokens": 5,
                               "think_tokens": 0, "answer_tokens": 5, "mode": "no_think", "correct": 1,
                               "reward": 1.0, "rewards": json.dumps({"accuracy": 1.0}), "difficulty": 1}
                              for k in range(64)])
            store.set_stage(run_id, "grpo", status="running", progress=step, total_steps=steps)
        store.update_run(run_id, status="succeeded", finished=time.time())
""")


def test_two_fast_writers_and_the_gui_never_hit_a_lock_and_lose_no_rows(store, qtbot, qsettings_tmp):
    """The same as above, as hard as the store can be driven: no pauses between transactions."""
    steps = 300
    window = _window(qtbot)
    ids = [store.create_run(name, {"stages": ["grpo"]}, "") for name in ("fast-a", "fast-b")]
    writers = [subprocess.Popen([sys.executable, "-c", FAST_WRITER, str(store.path), str(i), str(steps)],
                                cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for i in ids]
    window.show_run(ids[0])
    try:
        qtbot.waitUntil(lambda: all(w.poll() is not None for w in writers), timeout=120_000)
    finally:
        for w in writers:
            kill_quietly(w.pid)
    for w in writers:
        _, err = w.communicate(timeout=30)
        assert w.returncode == 0, err
        assert "locked" not in err
    for run_id in ids:
        assert len(store.metrics_since(run_id)) == steps * 15
        assert len(store.traces_since(run_id)) == steps * 64
    charts = window.monitor.charts
    qtbot.waitUntil(lambda: charts["reward"].point_count("reward") == steps, timeout=30_000)
    assert _x(charts["reward"], "reward") == [float(s) for s in range(1, steps + 1)]
    assert store.integrity_check() == "ok"
