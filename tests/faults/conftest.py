"""Fault tests: real worker processes on the tiny model, broken on purpose. Shared helpers and fixtures.

Every knob of the spec is shrunk (2 completions per prompt, 12 new tokens, 16 prompts) so
a step takes about a second on 2 quiet CPU cores; the worker's start (torch, the model)
costs the most.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, SPECS


def fault_spec(**changes):
    """The smoke spec, shrunk further; `changes` as RunSpec.replace takes them."""
    from engine.spec import load_spec

    base = {
        "grpo.num_generations": 2,  # the fewest GRPO allows: halves generation and loss cost
        "grpo.batch_size": 4,  # 2 prompts x 2 completions per step
        "grpo.max_completion_length": 12,  # the tiny model babbles: longer only costs time
        "data.train_size": 16,
        "data.eval_size": 4,
        "rewards.custom_file": "",  # r1-zero's accuracy + format only, unless a test brings its own
    }
    return load_spec(SPECS / "smoke.toml").replace(**{**base, **changes})


def start(store, spec):
    """Register the run and start its worker (own session, like the CLI); returns (run id, run dir, Popen)."""
    from engine.launch import create_run, spawn_worker

    run_id, run_dir = create_run(spec, store)
    return run_id, run_dir, spawn_worker(run_dir, store)


def wait_for(predicate, timeout: float = 240, what: str = "condition", poll: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def first_line(error: str | None) -> str:
    return (error or "").split("\n\n", 1)[0]


def checkpoint_steps(store, run_id: int) -> set[int]:
    return {a["meta"].get("step") for a in store.artifacts(run_id, "checkpoint")}


def kill_quietly(pid: int | None) -> None:
    """SIGKILL one process we started (by pid), if it still runs."""
    if not pid:
        return
    try:
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE:
            proc.kill()
            proc.wait(10)
    except psutil.NoSuchProcess:
        pass


@pytest.fixture
def small_fs(tmp_path):
    """A small file system to fill: tmpfs mounted under tmp_path (needs root: skipped without it).

    Yields (mount point, fill) where fill(leave_bytes) fills it up to `leave_bytes` free.
    """
    mount = tmp_path / "small-fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    filler = mount / "filler"

    def fill(leave_bytes: int) -> None:
        filler.unlink(missing_ok=True)
        free = shutil.disk_usage(mount).free
        with open(filler, "wb") as f:  # written, not fallocated: tmpfs counts the pages as used
            chunk = b"\0" * (1 << 20)
            left = max(0, free - leave_bytes)
            while left > 0:
                left -= f.write(chunk[: min(left, len(chunk))])

    try:
        yield mount, fill
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def qsettings_tmp(tmp_path):
    """The GUI's QSettings go to a fresh folder, never to the user's config."""
    from PySide6.QtCore import QSettings

    folder = tmp_path / "settings"
    folder.mkdir()
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


def worker_env(**extra) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def stop_run_processes(store) -> None:
    """Kill whatever still runs for a run of this store: detached workers and their supervisors escape
    the leftover-process check of tests/conftest.py. Found by the run folder in their command line
    (each test's run folders are unique), killed by pid."""
    dirs = [run["run_dir"] for run in store.list_runs() if run.get("run_dir")]
    if not dirs:
        return
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(d in cmdline for d in dirs):
            kill_quietly(proc.pid)


def stage_process(worker_pid: int, timeout: float = 240) -> psutil.Process:
    """The process that runs the worker's current stage (forked by the worker's fork server, named ponder-STAGE)."""
    def find():
        for child in psutil.Process(worker_pid).children(recursive=True):
            try:
                if child.name().startswith("ponder-"):
                    return child
            except psutil.Error:
                pass
        return None

    return wait_for(find, timeout, what=f"the stage process of worker {worker_pid}", poll=0.05)


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
