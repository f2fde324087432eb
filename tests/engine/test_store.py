"""The run store: schema, polling by id, commands, dead workers, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys

from engine.store import RunStore


def test_runs_metrics_traces_poll_by_id(store):
    run_id = store.create_run("r", {"a": 1}, "/tmp/r")
    store.add_metrics(run_id, "grpo", 1, {"reward": 0.5, "loss": 1.0})
    first = store.metrics_since(run_id)
    assert {m["name"] for m in first} == {"reward", "loss"}
    store.add_metrics(run_id, "grpo", 2, {"reward": 0.7})
    newer = store.metrics_since(run_id, after_id=max(m["id"] for m in first))
    assert [(m["step"], m["name"], m["value"]) for m in newer] == [(2, "reward", 0.7)]
    assert store.last_metrics(run_id)["values"] == {"reward": 0.7}
    store.add_traces([{"run_id": run_id, "stage": "grpo", "step": 1, "completion": "x", "rewards": {"a": 1.0}}])
    assert store.traces_since(run_id)[0]["rewards"] == {"a": 1.0}
    assert store.get_run(run_id)["spec"] == {"a": 1}


def test_commands_are_taken_once(store):
    run_id = store.create_run("r", {}, "/tmp/r")
    assert not store.take_command(run_id, "stop")
    store.send_command(run_id, "stop")
    assert store.take_command(run_id, "stop")
    assert not store.take_command(run_id, "stop")


def test_dead_worker_reads_as_failed(store):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    import psutil

    run_id = store.create_run("r", {}, "/tmp/r", status="running")
    store.update_run(run_id, pid=proc.pid, pid_started=psutil.Process(proc.pid).create_time())
    store.set_stage(run_id, "grpo", status="running")
    assert store.get_run(run_id)["status"] == "running"
    proc.kill()
    proc.wait()
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "without recording an end" in run["error_message"]
    assert store.stages(run_id)[0]["status"] == "failed"
    assert store.integrity_check() == "ok"


def test_listing_runs_while_another_process_writes_marks_dead_runs_without_a_lock_error(store, monkeypatch):
    """list_runs records dead workers' runs as failed while another connection keeps writing.

    Writing while one's own SELECT is still stepping means upgrading a stale read snapshot, which
    SQLite refuses at once ("database is locked", no busy wait); the GUI then kept that snapshot
    and saw no new rows. The other writer here commits from inside the liveness check, between the
    listing's read and its first write: the worst moment."""
    import psutil

    other = RunStore(store.path)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    ids = [store.create_run(f"r{i}", {}, "", status="running") for i in range(3)]
    for run_id in ids:
        store.update_run(run_id, pid=proc.pid, pid_started=started)
    check = store.process_alive

    def check_while_another_process_writes(pid, pid_started):
        other.log_event(ids[0], "info", "written by another process")
        return check(pid, pid_started)

    # On this connection only: a module-wide patch would reach every other store in the process.
    monkeypatch.setattr(store, "process_alive", check_while_another_process_writes)
    assert [r["status"] for r in store.list_runs()] == ["failed"] * 3
    assert len([e for e in store.events_since(ids[0]) if e["message"] == "written by another process"]) >= 3
    other.close()


def _writer(path: str, run_id: int, n: int) -> None:
    with RunStore(path) as s:
        for step in range(n):
            s.add_metrics(run_id, "grpo", step, {f"m{i}": float(i) for i in range(15)})
            s.add_traces([{"run_id": run_id, "stage": "grpo", "step": step, "completion": "c" * 200}] * 8)


def test_two_writers_and_a_reader_never_lock(store):
    a = store.create_run("a", {}, "/a")
    b = store.create_run("b", {}, "/b")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.path), rid, 60)) for rid in (a, b)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs):  # the GUI's poll, meanwhile
        seen = max(seen, len(store.metrics_since(a)))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    for rid in (a, b):
        assert len(store.metrics_since(rid)) == 60 * 15
        assert len(store.traces_since(rid)) == 60 * 8
