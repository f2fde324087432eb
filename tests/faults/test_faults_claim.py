"""One run, one worker, and following a run from the command line: real `ponder` processes on the tiny model."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter

from engine.launch import create_run
from tests.conftest import ROOT
from tests.faults.conftest import fault_spec, kill_quietly, wait_for, worker_env


def _ponder(store, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "--store", str(store.path), *args], cwd=ROOT,
                            env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Output:
    """A process's stdout, read as it comes (a thread per pipe), so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(proc.stderr, self.err), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(pipe, into):
        for line in pipe:
            into.append(line)

    def text(self) -> str:
        for t in self._threads:
            t.join(timeout=10)
        return "".join(self.lines) + "".join(self.err)


def _rows(store, run_id):
    return [(m["stage"], m["step"], m["name"]) for m in store.metrics_since(run_id)]


def test_two_resumes_at_once_start_one_worker_and_follow_only_the_new_attempt(store):
    spec = fault_spec(**{"grpo.max_steps": 2, "grpo.save_steps": 1})
    run_id, run_dir = create_run(spec, store)
    store.update_run(run_id, status="stopped", finished=time.time())  # an earlier attempt that ended
    store.log_event(run_id, "info", "an earlier attempt's event")
    store.log_event(run_id, "info", "run stopped")
    procs = [_ponder(store, "resume", str(run_id)) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            kill_quietly(p.pid)
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    winner, loser = (outs[0], outs[1]) if procs[0].returncode == 0 else (outs[1], outs[0])
    assert f"run {run_id} is already" in loser[1] and "one run has one worker" in loser[1], loser
    for out, err in outs:
        assert "Traceback" not in out + err
    assert f"run {run_id} succeeded" in winner[0] and "grpo step 2/2" in winner[0], winner
    assert "an earlier attempt's event" not in winner[0] and "[info] run stopped" not in winner[0]
    assert store.get_run(run_id)["status"] == "succeeded"
    assert max(Counter(_rows(store, run_id)).values()) == 1  # one metric row per step
    assert len(store.traces_since(run_id)) == 2 * spec.grpo.batch_size  # not doubled
    assert len(store.artifacts(run_id, "adapter")) == 1
    steps = [a["meta"].get("step") for a in store.artifacts(run_id, "checkpoint")]
    assert len(steps) == len(set(steps)) == 2
    started = [e for e in store.events_since(run_id) if e["message"].startswith("worker started")]
    assert len(started) == 1


def test_ctrl_c_stops_a_run_twice_leaves_it_running_and_resume_follows_it(store):
    spec = fault_spec(**{"grpo.max_steps": 200, "grpo.save_steps": 1000})  # never ends by itself here
    spec_file = store.path.parent / "long.toml"
    from engine.spec import save_spec

    save_spec(spec, spec_file)
    worker_pid = None
    proc = _ponder(store, "run", str(spec_file))
    out = Output(proc)
    try:
        # ---- `ponder run`, then Ctrl-C twice: the command line leaves, the worker trains on
        run_id = wait_for(lambda: (store.list_runs() or [{}])[0].get("id"), 60, "the run")
        wait_for(lambda: store.last_metrics(run_id)["step"], 240, "the first step")
        worker_pid = store.get_run(run_id)["pid"]
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: any("stopping:" in line for line in out.lines), 10, "the stop message")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        text = out.text()
        assert "Traceback" not in text and f"left run {run_id} running" in text, text
        run = wait_for(lambda: (r := store.get_run(run_id))["status"] not in ("queued", "running") and r, 240,
                       "the worker's stop")  # the first Ctrl-C's stop request, obeyed after the CLI left
        assert run["status"] == "stopped" and run["pid"] == worker_pid
        stopped_at = store.last_metrics(run_id)["step"]
        wait_for(lambda: not _alive(worker_pid), 60, "the worker's exit")

        # ---- `ponder resume`: the new attempt's progress only, then one Ctrl-C stops it with a checkpoint
        old_events = {e["message"] for e in store.events_since(run_id)}
        proc = _ponder(store, "resume", str(run_id))
        out = Output(proc)
        wait_for(lambda: any(f"grpo step {s}/" in line for line in out.lines for s in
                             range(stopped_at + 1, stopped_at + 50)), 240, "a new step's line")
        worker_pid = store.get_run(run_id)["pid"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=240) == 3
        text = out.text()
        assert "Traceback" not in text and "stopping:" in text and f"run {run_id} stopped" in text, text
        replayed = [m for m in old_events if f"] {m}\n" in text and m.startswith("worker started")]
        assert not replayed, replayed
        assert "[info] resuming from the last checkpoint" in text
        assert store.get_run(run_id)["status"] == "stopped"
    finally:
        kill_quietly(proc.pid)
        kill_quietly(worker_pid)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_two_workers_of_a_launch_command_run_started_at_once_train_it_once(store):
    """`ponder launch-command` registers the run for a worker started by hand: its command run twice at
    once gives one worker; the other exits 4 and writes nothing."""
    spec = fault_spec(**{"grpo.max_steps": 2, "grpo.save_steps": 100})
    run_id, run_dir = create_run(spec, store)  # as prepare_launch does: queued, no claimant
    argv = [sys.executable, "-m", "engine.worker", str(run_dir), "--store", str(store.path)]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=worker_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        codes = sorted(p.wait(timeout=300) for p in procs)
    finally:
        for p in procs:
            kill_quietly(p.pid)
    assert codes == [0, 4]
    assert store.get_run(run_id)["status"] == "succeeded"
    assert max(Counter(_rows(store, run_id)).values()) == 1
    assert len(store.artifacts(run_id, "adapter")) == 1
    assert len([e for e in store.events_since(run_id) if e["message"].startswith("worker started")]) == 1
    assert "already has a live worker" in (run_dir / "worker.log").read_text()
