"""The Runs page: history, overlaid curves, specs, deletion."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QThreadPool

from tests.desktop.conftest import add_step, register_running


def _finished(store, name: str, steps: int, reward: float, status: str = "succeeded") -> int:
    run_id = register_running(store, name)
    for step in range(1, steps + 1):
        add_step(store, run_id, step, reward=reward * step / steps)
    store.update_run(run_id, status=status, finished=time.time())
    return run_id


def test_history_lists_runs_with_their_results(window):
    store = window.store
    a = _finished(store, "first", 3, 0.6)
    store.add_metrics(a, "eval", 0, {"eval/accuracy": 0.5, "eval/tokens": 40.0})  # the eval stage's summary
    b = _finished(store, "second", 2, 0.2, status="stopped")
    window.controller.refresh()
    page = window.runs
    assert page.table.rowCount() == 2
    rows = {page.table.item(r, 1).text(): r for r in range(2)}
    row = rows["first"]
    texts = [page.table.item(row, c).text() for c in range(page.table.columnCount())]
    assert texts[0] == str(a) and texts[2] == "succeeded" and texts[3] == "r1-zero"
    assert texts[5] == "0.6" and texts[6] == "25%" and texts[7] == "38" and texts[8] == "3"  # last GRPO step
    assert texts[9] == "50%"
    assert page.table.item(rows["second"], 2).text() == "stopped" and b
    assert not page.empty.isVisible()


def test_selected_runs_are_overlaid(window):
    store = window.store
    a = _finished(store, "first", 3, 0.6)
    b = _finished(store, "second", 5, 0.2)
    window.controller.refresh()
    page = window.runs
    page.select_ids([a, b])
    assert sorted(page.selected_ids()) == [a, b]
    assert set(page.overlay.series) == {str(a), str(b)}
    assert page.overlay.point_count(str(a)) == 3 and page.overlay.point_count(str(b)) == 5
    page.metric.setCurrentIndex(page.metric.findData("accuracy"))
    _, y = page.overlay.series[str(b)].data()
    assert list(y) == [0.25] * 5
    assert not page.monitor_button.isEnabled()  # one-run actions need one run
    assert page.delete_button.isEnabled()


def test_monitor_and_new_run_from_a_runs_spec(window):
    a = _finished(window.store, "reuse-me", 2, 0.5)
    window.controller.refresh()
    window.runs.select_ids([a])
    window.runs.monitor_button.click()
    assert window.current_page() == "monitor" and window.monitor.run_id == a
    window.runs.reuse_button.click()
    assert window.current_page() == "new_run"
    assert window.new_run.name_edit.text() == "reuse-me"
    assert window.new_run.spec_dict()["model"]["source"] == "builtin:tiny-random"


def test_show_spec_is_non_modal(window, qtbot):
    a = _finished(window.store, "spec", 1, 0.5)
    window.controller.refresh()
    window.runs.select_ids([a])
    window.runs.spec_button.click()
    dialogs = [d for d in window.runs.findChildren(__import__("PySide6.QtWidgets").QtWidgets.QDialog)
               if d.isVisible()]
    assert len(dialogs) == 1 and not dialogs[0].isModal()
    dialogs[0].close()


def test_delete_asks_and_removes(window, monkeypatch):
    store = window.store
    a = _finished(store, "keep", 1, 0.5)
    b = _finished(store, "drop", 1, 0.5)
    run_dir = Path(store.get_run(b)["run_dir"])
    window.controller.refresh()
    page = window.runs
    page.select_ids([b])
    monkeypatch.setattr(page, "confirm_delete", lambda names, n: (False, False))
    page.delete_button.click()
    assert {r["id"] for r in store.list_runs()} == {a, b}  # declined
    asked = []
    monkeypatch.setattr(page, "confirm_delete", lambda names, n: asked.append(names) or (True, True))
    page.delete_button.click()
    QThreadPool.globalInstance().waitForDone(10000)
    assert asked == [f"#{b} drop"]
    assert [r["id"] for r in store.list_runs()] == [a]
    assert page.table.rowCount() == 1 and not run_dir.exists()


def test_a_running_run_cannot_be_deleted(window):
    run_id = register_running(window.store, "busy")
    window.controller.refresh()
    window.runs.select_ids([run_id])
    window.runs.delete_button.click()
    assert window.banner.isVisible() and "stop it" in window.banner.current().message
    assert window.store.get_run(run_id)


def test_window_geometry_and_theme_are_remembered(window, qtbot):
    from desktop import theme
    from desktop.app import MainWindow

    stop_icon = window.monitor.stop_button.icon().cacheKey()
    dark = next(a for a in window.theme_actions.actions() if a.data() == "dark")
    dark.trigger()
    assert window.monitor.stop_button.icon().cacheKey() != stop_icon  # icons are redrawn for the dark theme
    assert theme.current().dark
    assert window.palette().color(window.palette().ColorRole.Window).name() == theme.DARK.window
    window.show_page("runs")
    window.close()
    from desktop.settings import settings

    assert settings().value("window/geometry") == window.saveGeometry()
    assert settings().value("theme") == "dark"
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.current_page() == "runs"
    theme.manager().apply("light")


def test_a_damaged_store_at_start_is_said_in_a_dialog_and_left_as_it_is(ponder_home, qtbot, capsys):
    """Started from a desktop menu nobody reads stderr: the reason the window cannot open is shown."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop.app import open_window

    ponder_home.mkdir(parents=True)
    store_file = ponder_home / "ponder.db"
    store_file.write_bytes(b"\x00garbage" * 100)
    seen = []

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append((box.windowTitle(), box.text()))
        box.accept()

    QTimer.singleShot(20, answer)
    assert open_window() is None
    assert seen and seen[0][0] == "Ponder cannot start"
    assert str(store_file) in seen[0][1] and "damaged" in seen[0][1]
    assert str(store_file) in capsys.readouterr().err
    assert store_file.read_bytes() == b"\x00garbage" * 100
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible()]
