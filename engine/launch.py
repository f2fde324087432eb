"""Creating a run and starting its worker: shared by the CLI and the GUI. No torch here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from engine import paths
from engine.spec import RunSpec, save_spec
from engine.store import RunStore


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "run"


def create_run(spec: RunSpec, store: RunStore) -> tuple[int, Path]:
    """Register a queued run and write RUN_DIR/spec.toml; returns (run id, run folder)."""
    run_id = store.create_run(spec.name, spec.to_dict(), "")
    base = Path(spec.output_dir).expanduser() if spec.output_dir else paths.runs_dir()
    run_dir = (base / f"{run_id:04d}-{_slug(spec.name)}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_spec(spec, run_dir / "spec.toml")
    store.update_run(run_id, run_dir=str(run_dir))
    return run_id, run_dir


def worker_argv(run_dir: Path, store: RunStore, resume: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "engine.worker", str(run_dir), "--store", str(store.path)]
    return argv + ["--resume"] if resume else argv


def spawn_worker(run_dir: Path, store: RunStore, resume: bool = False) -> subprocess.Popen:
    """Start the worker in its own session, so a Ctrl-C or a closed terminal does not kill it."""
    with open(run_dir / "worker.log", "ab") as log:  # errors before the worker's own redirect land here too
        return subprocess.Popen(worker_argv(run_dir, store, resume), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
