"""Starting, watching and stopping workers, for every page of the app.

A worker is started detached through desktop.supervise (desktop/launch.py), so it
keeps running when the window closes; the run store is the only channel to it. The
controller polls the store every second: it notices runs that end, explains a worker that
died without recording an error (exit code and the tail of worker.log), and escalates a
stop that is not obeyed in time: the "stop" command first, then terminate, then kill,
each step on a QTimer, never blocking the GUI thread.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QObject, QTimer, Signal

from desktop.launch import start_supervised
from desktop.supervise import EXIT_FILE
from engine.errors import RunBusy
from engine.launch import create_run, worker_argv
from engine.spec import RunSpec
from engine.store import ACTIVE, NO_ERROR, RunStore, process_alive

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40


class RunController(QObject):
    """The GUI's side of the process boundary: one per window, shared by the pages."""

    sig_runs_changed = Signal(list)
    """The list of runs changed (a run was added, deleted, renamed or changed status); the
    argument is `RunStore.list_runs()`."""
    sig_run_started = Signal(int)
    """This window started (or resumed) the worker of the run with this id."""
    sig_run_ended = Signal(int, str)
    """A run that was queued or running ended; arguments: run id, final status."""
    sig_run_failed = Signal(int, str, str)
    """A run failed; arguments: run id, message, details (traceback or exit code and log tail)."""
    sig_start_failed = Signal(str, str)
    """A worker could not be started at all; arguments: message, details."""

    def __init__(self, store: RunStore, parent: QObject | None = None, poll_ms: int = 1000):
        super().__init__(parent)
        self.store = store
        self.stop_grace_s: float | None = None  # None: from the run's step time (see _stop_grace)
        self.kill_grace_s = 10.0
        self.runs: list[dict[str, Any]] = []
        self._status: dict[int, str] = {}
        self._signature: tuple = ()
        self._supervisors: dict[int, int] = {}  # run id -> pid of its desktop.supervise (runs started here)
        self._forced: set[int] = set()  # runs this window terminated or killed
        self._stopping: set[int] = set()
        self._pending_failure: dict[int, int] = {}  # run id -> polls waited for the exit code
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._on_timer_poll)
        self._timer.start()
        self.refresh()

    # ---- starting ---------------------------------------------------------------------------------
    def start(self, spec: RunSpec) -> int:
        """Register the run, write its spec and start its worker; returns the run id."""
        run_id, run_dir = create_run(spec, self.store, claimant=os.getpid())
        self._launch(run_id, run_dir, resume=False)
        return run_id

    def resume(self, run_id: int) -> None:
        """Claim the run (one atomic store transaction, refused if it is queued or running anywhere) and
        start its worker from the last checkpoint."""
        try:
            run = self.store.claim_run(run_id, claimant=os.getpid())
        except RunBusy as exc:
            self.refresh()
            self.sig_start_failed.emit(f"Run {run_id} was not resumed.", str(exc))
            return
        self.store.log_event(run_id, "info", "resuming from the last checkpoint")
        self._launch(run_id, Path(run["run_dir"]), resume=True)

    def _launch(self, run_id: int, run_dir: Path, resume: bool) -> None:
        (run_dir / EXIT_FILE).unlink(missing_ok=True)  # a new attempt: forget how the last one ended
        argv = worker_argv(run_dir, self.store, resume=resume)
        pid = start_supervised(run_dir, argv)
        if pid is None:
            message = f"Could not start the worker for run {run_id}."
            error = f"{message}\n\nCommand: {' '.join(argv)}"
            self.store.update_run(run_id, status="failed", error_message=error, finished=time.time())
            self.sig_start_failed.emit(message, error)
            self.refresh()
            return
        self._supervisors[run_id] = pid
        self.store.hand_over(run_id, pid)  # the supervisor holds the claim until its worker runs
        self._forced.discard(run_id)
        self._stopping.discard(run_id)
        self.refresh()
        self.sig_run_started.emit(run_id)

    # ---- stopping ---------------------------------------------------------------------------------
    def stop(self, run_id: int) -> None:
        """Ask the worker to stop with a checkpoint; terminate, then kill, if it does not in time."""
        if run_id in self._stopping:
            return
        self._stopping.add(run_id)
        self.store.send_command(run_id, "stop")
        self.store.log_event(run_id, "info", "stop requested: the worker saves a checkpoint after this step")
        grace = self._stop_grace(run_id)
        QTimer.singleShot(int(grace * 1000), self, partial(self._escalate, run_id, signal.SIGTERM))

    def is_stopping(self, run_id: int) -> bool:
        return run_id in self._stopping

    def _stop_grace(self, run_id: int) -> float:
        """Seconds the worker gets to finish its step and save: twice a step, plus time to save."""
        if self.stop_grace_s is not None:
            return self.stop_grace_s
        step_time = self.store.last_metrics(run_id)["values"].get("step_time")
        return 30.0 + 2 * step_time if step_time else 30.0

    def _escalate(self, run_id: int, sig: int) -> None:
        try:
            run = self.store.get_run(run_id)
        except KeyError:
            return
        procs = self._worker_processes(run)
        if run["status"] not in ACTIVE or not procs:
            return
        self._forced.add(run_id)
        verb = "terminated" if sig == signal.SIGTERM else "killed"
        self.store.log_event(run_id, "warning", f"the worker did not stop in time; {verb} it")
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        if sig == signal.SIGTERM:
            kill = partial(self._escalate, run_id, signal.SIGKILL)
            QTimer.singleShot(int(self.kill_grace_s * 1000), self, kill)

    def _worker_processes(self, run: dict[str, Any]) -> list[psutil.Process]:
        """The live worker process of a run: from the store, or the child of our supervisor."""
        if process_alive(run.get("pid"), run.get("pid_started")):
            return [psutil.Process(run["pid"])]
        sup = self._supervisors.get(run["id"])
        try:
            return [p for p in psutil.Process(sup).children() if p.is_running()] if sup else []
        except psutil.NoSuchProcess:
            return []

    # ---- watching ---------------------------------------------------------------------------------
    def active_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] in ACTIVE]

    def refresh(self) -> None:
        self._on_timer_poll()

    def _on_timer_poll(self) -> None:
        runs = self.store.list_runs()  # also marks runs whose worker died as failed
        for run in runs:
            if run["status"] == "queued" and self._exit_code(run) is not None:
                run.update(self._record_early_death(run))
        for run in runs:
            before = self._status.get(run["id"])
            if before in ACTIVE and run["status"] not in ACTIVE:
                if run["id"] in self._forced and run["status"] == "failed" and not _has_traceback(run):
                    run.update(self._record_forced_stop(run))
                if run["status"] == "failed" and self._exit_pending(run):
                    continue  # report it on a later poll, once the exit code is on disk
                self._stopping.discard(run["id"])
                self.sig_run_ended.emit(run["id"], run["status"])
                if run["status"] == "failed":
                    message, details = describe_failure(run)
                    self.sig_run_failed.emit(run["id"], message, details)
            self._status[run["id"]] = run["status"]
        for gone in set(self._status) - {r["id"] for r in runs}:
            del self._status[gone]
        self.runs = runs
        signature = tuple((r["id"], r["name"], r["status"], r["finished"]) for r in runs)
        if signature != self._signature:
            self._signature = signature
            self.sig_runs_changed.emit(runs)

    def _exit_code(self, run: dict[str, Any]) -> int | None:
        return read_exit_code(run.get("run_dir"))

    def _exit_pending(self, run: dict[str, Any]) -> bool:
        """True while our supervisor has not yet written a dead worker's exit code (a few polls at most)."""
        sup = self._supervisors.get(run["id"])
        if sup is None or self._exit_code(run) is not None:
            return False
        waited = self._pending_failure.get(run["id"], 0)
        if waited >= 5:
            return False
        self._pending_failure[run["id"]] = waited + 1
        return True

    def _record_early_death(self, run: dict[str, Any]) -> dict[str, Any]:
        """The worker exited before it registered (bad environment, import error): record it as failed."""
        code = self._exit_code(run)
        error = f"The worker exited with code {code} before it started the run."
        self.store.update_run(run["id"], status="failed", error_message=error, finished=time.time())
        self.store.log_event(run["id"], "error", error)
        return {"status": "failed", "error_message": error, "finished": time.time()}

    def _record_forced_stop(self, run: dict[str, Any]) -> dict[str, Any]:
        """A worker we terminated or killed ended a stop request: the run is stopped, not failed."""
        now = time.time()
        self.store.update_run(run["id"], status="stopped", **NO_ERROR, finished=now)
        for stage in self.store.stages(run["id"]):
            if stage["status"] in ("running", "failed"):
                self.store.set_stage(run["id"], stage["stage"], status="stopped", finished=now)
        self.store.log_event(run["id"], "warning", "stopped by force: the last saved checkpoint is kept")
        self._forced.discard(run["id"])
        return {"status": "stopped", **NO_ERROR, "finished": now}


# ---- describing failures ----------------------------------------------------------------------------

def _has_traceback(run: dict[str, Any]) -> bool:
    return bool((run.get("error_traceback") or "").strip())


def read_exit_code(run_dir: str | Path | None) -> int | None:
    if not run_dir:
        return None
    try:
        return int((Path(run_dir) / EXIT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> str:
    """The last lines of a log file (reads only its end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no worker.log)"
    return "\n".join(text.splitlines()[-lines:]) or "(worker.log is empty)"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "its exit code is unknown (it was not started by this window, or is still exiting)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often: out of memory)" if -code == signal.SIGKILL else ""
        return f"it was killed by {name}{hint}"
    return f"it exited with code {code}"


def describe_failure(run: dict[str, Any]) -> tuple[str, str]:
    """(message, details) of a failed run.

    The worker records its error's message and traceback; a worker that died without recording them
    is described by its exit code and the tail of RUN_DIR/worker.log.
    """
    error, trace = run.get("error_message") or "", run.get("error_traceback") or ""
    if trace.strip():
        return f"Run {run['id']} ({run['name']}) failed: {error.strip()}", trace.rstrip()
    run_dir = Path(run.get("run_dir") or ".")
    how = describe_exit(read_exit_code(run_dir))
    message = f"Run {run['id']} ({run['name']}) failed: the worker stopped without recording an error; {how}."
    details = (f"{error}\n\n" if error else "") + f"Last lines of {run_dir / 'worker.log'}:\n\n" + \
        log_tail(run_dir / "worker.log")
    return message, details
