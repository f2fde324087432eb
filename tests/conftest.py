"""Shared fixtures: a fresh Ponder home per test, a shared model cache, no leftover processes."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist (`make test`) the test processes share the cores: each gets its share of torch's
# threads (inherited by the workers it starts), so two training runs do not oversubscribe two cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))

import pytest  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tests.processes import running_children  # noqa: E402

# tqdm's monitor is a thread started by the first progress bar that lives to the end of the process;
# the leftover-thread check below would blame it on whichever test made the first bar.
tqdm.monitor_interval = 0

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "resources" / "specs"
# Converted models are shared by all tests (and kept between runs): converting the GGUF takes ~20 s.
os.environ.setdefault("PONDER_CACHE", str(ROOT / ".cache" / "ponder-models"))


@pytest.fixture(autouse=True)
def ponder_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "ponder-home"
    monkeypatch.setenv("PONDER_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail a test that leaves a child process (a worker) running."""
    yield
    left = running_children()
    for proc in left:
        proc.kill()
    assert not left, f"test left processes running: {list(left.values())}"


@pytest.fixture
def store(ponder_home):
    from engine.store import RunStore

    with RunStore() as s:
        yield s


def qt_leftovers(app) -> tuple[list[str], list[str], list]:
    """What a test left behind in `app`: shown top-level windows, active timers, and their widgets."""
    from PySide6.QtCore import QTimer

    shown, timers, leftover = [], [], []
    for widget in app.topLevelWidgets():
        active = [t for t in widget.findChildren(QTimer) if t.isActive()]
        if widget.isVisible():
            shown.append(f"{type(widget).__name__} {widget.objectName() or widget.windowTitle()!r}")
        timers += [f"{type(t.parent()).__name__}.{t.objectName() or 'QTimer'} ({t.interval()} ms)" for t in active]
        if widget.isVisible() or active:
            leftover.append(widget)
    timers += [f"QApplication.{t.objectName() or 'QTimer'}" for t in app.findChildren(QTimer) if t.isActive()]
    return shown, timers, leftover


@pytest.fixture(autouse=True)
def no_leftover_widgets_or_timers():
    """Fail a test that leaves a window open or a Qt timer running once its widgets are closed.

    pytest-qt closes the widgets a test registered (qtbot.addWidget) before fixtures are torn down
    (their deletion waits for the event loop); what is still shown, or any timer a closed widget
    left running, would go on firing in later tests (a Monitor page polling a store another test has
    closed). Leftovers are closed and deleted here, so one failure does not spread."""
    yield
    import sys

    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtCore import QCoreApplication, QEvent, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return
    shown, timers, leftover = qt_leftovers(app)
    for widget in leftover:
        for timer in widget.findChildren(QTimer):
            timer.stop()
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shown, f"test left windows open: {shown}"
    assert not timers, f"test left Qt timers running: {timers}"


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Fail a test that leaves a thread it started running (Python threads and Qt's thread pool)."""
    import threading

    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before]
    for thread in left:
        thread.join(timeout=5)
    left = [t.name for t in left if t.is_alive()]
    if "PySide6.QtCore" in __import__("sys").modules:
        from PySide6.QtCore import QThreadPool

        if not QThreadPool.globalInstance().waitForDone(5000):
            left.append(f"{QThreadPool.globalInstance().activeThreadCount()} in Qt's thread pool")
    assert not left, f"test left threads running: {left}"
