"""Starting, failing and stopping workers, with a stand-in worker process (tests/desktop/fake_worker.py)."""

from __future__ import annotations

from pathlib import Path

from desktop import runner
from engine.spec import spec_from_dict
from tests.desktop.conftest import fake_argv

SPEC = {"name": "fake", "model": {"source": "builtin:tiny-random"}}


def _start(window, monkeypatch, mode: str) -> int:
    monkeypatch.setattr(runner, "worker_argv", fake_argv(mode))
    return window.controller.start(spec_from_dict(SPEC))


def test_a_worker_that_dies_before_starting_shows_exit_code_and_log(window, qtbot, monkeypatch):
    run_id = _start(window, monkeypatch, "exit7")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=20000)
    notice = window.banner.current()
    assert "exited with code 7" in notice.message
    assert "fake worker exit7 starting" in notice.details  # the tail of worker.log
    run = window.store.get_run(run_id)
    assert run["status"] == "failed" and (Path(run["run_dir"]) / "worker.exit").read_text() == "7"


def test_a_worker_error_with_traceback(window, qtbot, monkeypatch):
    run_id = _start(window, monkeypatch, "crash")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=20000)
    notice = window.banner.current()
    assert notice.run_id == run_id and "ValueError: boom" in notice.message
    assert "Traceback" in notice.details and 'raise ValueError("boom")' in notice.details


def test_stop_is_obeyed(window, qtbot, monkeypatch):
    run_id = _start(window, monkeypatch, "obedient")
    qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "running", timeout=20000)
    window.show_run(run_id)
    qtbot.waitUntil(lambda: window.monitor.stop_button.isEnabled(), timeout=3000)
    window.monitor.stop_button.click()
    assert not window.monitor.stop_button.isEnabled()  # one stop request at a time
    qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "stopped", timeout=20000)
    run_dir = Path(window.store.get_run(run_id)["run_dir"])
    qtbot.waitUntil(lambda: (run_dir / "worker.exit").exists(), timeout=5000)
    assert (run_dir / "worker.exit").read_text() == "3"
    assert not window.banner.isVisible()


def test_stop_escalates_to_terminate_then_kill(window, qtbot, monkeypatch):
    window.controller.stop_grace_s = 0.5  # the fake worker ignores the stop command ...
    window.controller.kill_grace_s = 0.5  # ... and SIGTERM: only the kill ends it
    run_id = _start(window, monkeypatch, "stubborn")
    qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "running", timeout=20000)
    window.controller.stop(run_id)
    qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "stopped", timeout=20000)
    events = [e["message"] for e in window.store.events_since(run_id)]
    assert any("terminated" in m for m in events) and any("killed" in m for m in events)
    assert any("stopped by force" in m for m in events)
    run_dir = Path(window.store.get_run(run_id)["run_dir"])
    qtbot.waitUntil(lambda: (run_dir / "worker.exit").exists(), timeout=5000)
    assert (run_dir / "worker.exit").read_text() == "-9"
    assert not window.banner.isVisible()  # a forced stop is a stop, not a failure


def test_describe_failure_of_a_killed_worker(tmp_path):
    (tmp_path / "worker.log").write_text("loading\n" + "step\n" * 100 + "last words\n")
    (tmp_path / "worker.exit").write_text("-9")
    run = {"id": 4, "name": "big", "run_dir": str(tmp_path),
           "error_message": "The worker (pid 1) exited without recording an end: it was killed or ran out of memory."}
    message, details = runner.describe_failure(run)
    assert "SIGKILL" in message and "out of memory" in message
    assert details.rstrip().endswith("last words") and "loading" not in details  # only the tail


def test_supervise_records_a_program_that_cannot_start(tmp_path):
    from desktop.supervise import main

    assert main([str(tmp_path), "--", str(tmp_path / "no-such-program")]) == 0
    assert (tmp_path / "worker.exit").read_text() == "127"
    assert "could not start" in (tmp_path / "worker.log").read_text()


def test_the_same_error_is_shown_once(window):
    for _ in range(3):
        window.banner.show_error("the store is locked", "")
    window.banner.show_error("another problem", "")
    assert [n.message for n in window.banner.notices] == ["the store is locked", "another problem"]


def test_an_ended_run_is_announced_in_the_status_bar(window, qtbot, monkeypatch):
    run_id = _start(window, monkeypatch, "obedient")
    qtbot.waitUntil(lambda: window.store.get_run(run_id)["status"] == "running", timeout=20000)
    window.controller.stop(run_id)
    qtbot.waitUntil(lambda: "stopped" in window.statusBar().currentMessage(), timeout=20000)
    assert f"Run #{run_id}" in window.statusBar().currentMessage()
