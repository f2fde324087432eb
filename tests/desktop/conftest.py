"""GUI fixtures: settings in a temporary folder, the main window, and no worker left running.

Workers are started detached (they outlive the window on purpose), so the parent's
leftover-process check cannot see them: `window` checks every run's worker itself.
"""

from __future__ import annotations

import json
import os
import sys
import time

import psutil
import pytest
from PySide6.QtCore import QSettings

from tests.conftest import ROOT


def pytest_collection_modifyitems(items):
    # The offscreen platform warns on every shown window that it cannot propagate size hints: a
    # limitation of the headless plugin, not of the app. Every other Qt warning still fails a test.
    for item in items:
        if "tests/desktop" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.qt_log_ignore(r"This plugin does not support propagateSizeHints"))


@pytest.fixture(autouse=True)
def qsettings_tmp(tmp_path):
    """QSettings go to a fresh folder per test, never to the user's config."""
    folder = tmp_path / "settings"
    folder.mkdir()
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def light_theme(qapp):
    from desktop import theme

    theme.manager().apply("light")
    yield


def _alive(pid: int | None) -> psutil.Process | None:
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except psutil.NoSuchProcess:
        return None


@pytest.fixture
def window(qtbot, ponder_home):
    """The main window on a fresh store; fails the test if a worker it started is left running."""
    from desktop.app import MainWindow

    win = MainWindow()
    win.ask_leave_running = lambda runs: "leave"  # tests decide about running workers themselves
    qtbot.addWidget(win)
    win.resize(1440, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    left = []
    for run in win.store.list_runs():
        proc = _alive(run.get("pid"))
        if proc is not None and proc.pid != os.getpid() and run["status"] in ("queued", "running"):
            left.append(proc)
    for pid in win.controller._supervisors.values():
        proc = _alive(pid)
        if proc is None:
            continue
        try:  # a supervisor records its worker's end, then exits: on a loaded machine that takes a moment
            proc.wait(timeout=15)
        except psutil.TimeoutExpired:
            left += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"test left workers running: {[p.pid for p in left]}"


@pytest.fixture
def new_run_page(qtbot, store):
    """The New run page on a fresh store, shown at a working size."""
    from desktop.new_run import NewRunPage
    from desktop.runner import RunController

    controller = RunController(store)
    page = NewRunPage(controller)
    qtbot.addWidget(page)
    page.resize(1300, 900)
    page.show()
    yield page
    controller._timer.stop()


def register_running(store, name: str = "fake", spec: dict | None = None, pid: int | None = None) -> int:
    """A run in the store that looks like a live worker (this test process, by default) is running it."""
    from engine.launch import create_run
    from engine.spec import spec_from_dict

    spec = spec_from_dict(spec or {"name": name, "model": {"source": "builtin:tiny-random"},
                                   "grpo": {"max_steps": 10, "batch_size": 8, "num_generations": 4}})
    run_id, _ = create_run(spec, store)
    proc = psutil.Process(pid or os.getpid())
    store.update_run(run_id, status="running", pid=proc.pid, pid_started=proc.create_time())
    store.set_stage(run_id, "grpo", status="running", started=time.time() - 30, total_steps=10, progress=0)
    return run_id


def add_step(store, run_id: int, step: int, stage: str = "grpo", reward: float = 0.5) -> None:
    """One step's metrics and two traces, as the worker writes them."""
    store.add_metrics(run_id, stage, step, {
        "reward": reward, "rewards/accuracy/mean": reward / 2, "rewards/format/mean": 1.0, "accuracy": 0.25,
        "tokens/think": 30.0, "tokens/answer": 8.0, "tokens/completion": 38.0, "think_rate": 0.75,
        "loss": 0.1,
        "learning_rate": 1e-5, "tokens_per_s": 120.0, "step_time": 2.0})
    store.set_stage(run_id, stage, progress=step)
    store.add_traces([{
        "run_id": run_id, "stage": stage, "step": step, "prompt_id": f"p{step}",
        "prompt": f"What is {step} + 1?", "completion": f"I add one.\n</think>\n<answer>{step + c}</answer>",
        "think_tokens": 4, "answer_tokens": 5,
        "tokens": 9, "mode": "think", "correct": int(c == 1), "reward": 1.5 if c == 1 else 0.5,
        "rewards": json.dumps({"accuracy": float(c == 1), "format": 1.0}), "difficulty": 1} for c in (1, 2)])
    store.log_event(run_id, "info", f"step {step} done", stage, step)


FAKE_WORKER = ROOT / "tests" / "desktop" / "fake_worker.py"


def fake_argv(mode: str):
    """A `worker_argv` replacement that runs tests/desktop/fake_worker.py in `mode`."""
    def argv(run_dir, store, resume=False):
        return [sys.executable, str(FAKE_WORKER), mode, str(run_dir), str(store.path)]

    return argv


def wait_for(predicate, timeout: float = 10.0, qtbot=None) -> None:
    if qtbot is not None:
        qtbot.waitUntil(predicate, timeout=int(timeout * 1000))
        return
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")

