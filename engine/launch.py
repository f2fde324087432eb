"""Creating a run and starting its worker: shared by the CLI and the GUI. No torch here."""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
import sys
from pathlib import Path

from engine import paths
from engine.errors import PonderError
from engine.spec import RunSpec, save_spec
from engine.store import RunStore


class RunFolderError(PonderError):
    """A run's folder could not be made; the run was not registered."""


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "run"


def create_run(spec: RunSpec, store: RunStore, claimant: int | None = None) -> tuple[int, Path]:
    """Register a queued run and write RUN_DIR/spec.toml in one store transaction: both or neither.

    The run folder is new: one that exists already (a run of an older store) is never written into;
    the run takes the next id instead. `claimant`: the pid that will start the worker (see
    RunStore.claim_run); None for a run started by hand later (`ponder launch-command`).
    """
    base = (Path(spec.output_dir).expanduser() if spec.output_dir else paths.runs_dir()).resolve()

    def make_dir(run_id: int) -> Path | None:
        run_dir = base / f"{run_id:04d}-{_slug(spec.name)}"
        try:
            if base.exists() and not base.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder", str(base))
            base.mkdir(parents=True, exist_ok=True)
            try:
                run_dir.mkdir()
            except FileExistsError:
                return None
            try:
                save_spec(spec, run_dir / "spec.toml")
            except BaseException:
                shutil.rmtree(run_dir, ignore_errors=True)  # made just now, by us: the run is not registered
                raise
        except OSError as exc:
            where = exc.filename or run_dir
            raise RunFolderError(f"cannot create the run folder {run_dir}: {exc.strerror or exc} ({where}). "
                                 "Choose another output_dir in the spec, or fix that folder.") from exc
        return run_dir

    run_id = store.create_run(spec.name, spec.to_dict(), make_dir=make_dir, claimant=claimant)
    return run_id, Path(store.get_run(run_id)["run_dir"])


def worker_argv(run_dir: Path, store: RunStore, resume: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "engine.worker", str(run_dir), "--store", str(store.path)]
    return argv + ["--resume"] if resume else argv


def spawn_worker(run_dir: Path, store: RunStore, resume: bool = False,
                 run_id: int | None = None) -> subprocess.Popen:
    """Start the worker in its own session, so a Ctrl-C or a closed terminal does not kill it.

    With `run_id` (a run this process claimed), the claim passes to the worker's pid; if the worker
    cannot be started the run is recorded as failed rather than left queued."""
    try:
        with open(run_dir / "worker.log", "ab") as log:  # errors before the worker's own redirect land here too
            proc = subprocess.Popen(worker_argv(run_dir, store, resume), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, start_new_session=True)
    except OSError as exc:
        if run_id is not None:
            import time

            store.update_run(run_id, status="failed", error_message=f"could not start the worker: {exc}",
                             finished=time.time())
        raise
    if run_id is not None:
        store.hand_over(run_id, proc.pid)
    return proc
