"""The run store: one SQLite file (WAL) that the worker writes and every reader polls.

It is the only channel between a worker and the GUI or CLI. Every table has an integer
`id` so readers poll with `WHERE id > ?`. Each process opens its own connection; writes
are short transactions, and a 30 s busy timeout makes concurrent writers wait, never fail
with "database is locked". No torch here: the GUI imports this module.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from engine import paths
from engine.errors import RunBusy, RunNotFound, StoreError
from engine.store.evals import Evaluations
from engine.store.files import _check_file, _create_store_file, _create_time, describe_store_error, process_alive
from engine.store.records import Records
from engine.store.schema import _SCHEMA, SCHEMA_VERSION, _decode, check_version, create_tables, ensure_schema

ACTIVE = ("queued", "running")
NO_ERROR = {"error_type": None, "error_message": None, "error_traceback": None}  # update_run(**NO_ERROR) clears
_NO_ERROR = ", ".join(f"{k} = NULL" for k in NO_ERROR)


def _new_store(conn: sqlite3.Connection) -> None:
    create_tables(sqlite_utils.Database(conn), {name: [] for name in _SCHEMA})
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class RunStore(Records, Evaluations):
    """A connection to the run store. Cheap to open; open one per process (or thread)."""

    busy_timeout_s = 30.0  # concurrent writers wait this long for each other
    # How this connection tells whether a recorded worker still runs; one place to replace it in a test.
    process_alive = staticmethod(process_alive)

    def __init__(self, path: str | Path | None = None):
        try:
            self.path = Path(path) if path else paths.store_path()
        except OSError as exc:
            raise StoreError(str(exc)) from exc
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                _create_store_file(self.path, _new_store)
            _check_file(self.path)
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise describe_store_error(self.path, exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            check_version(conn, self.path)  # a newer store is refused before anything is written to it
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self.db = sqlite_utils.Database(conn)
            # the version this connection upgraded the store from, None if it found it current
            self.upgraded_from = ensure_schema(self.db, self.path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, OSError | sqlite3.Error):
                raise describe_store_error(self.path, exc) from exc
            raise

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): what it reads stays true until it commits."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # an error may have ended it already
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        with self.db.conn:
            return self.db[table].insert(row).last_pk

    def _insert_all(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.db.conn:
                self.db[table].insert_all(rows, batch_size=500)

    def _update(self, table: str, pk: int, fields: dict[str, Any]) -> None:
        with self.db.conn:
            self.db[table].update(pk, fields)

    # ---- runs -------------------------------------------------------------------------------------
    def create_run(self, name: str, spec: Mapping[str, Any], run_dir: str | Path = "", status: str = "queued",
                   make_dir: Callable[[int], Path | None] | None = None, claimant: int | None = None) -> int:
        """Register a run; returns its id. Ids are never reused (AUTOINCREMENT).

        `make_dir(run_id)` creates the run's folder inside the same transaction, so registration and
        folder succeed or fail together; it returns None when that folder exists already (left by an
        older store), and the run takes the next id instead: an existing folder is never written into.
        `claimant` is the pid of the process that will start the worker (see claim_run).
        """
        row = {"name": name, "created": time.time(), "status": status, "spec": json.dumps(spec),
               "run_dir": str(run_dir), "finished": None}
        if claimant:
            row.update(pid=claimant, pid_started=_create_time(claimant))
        with self._write() as conn:
            for _ in range(100_000):  # one per existing folder in the way: ms each
                run_id = self.db["runs"].insert(row).last_pk
                if make_dir is None:
                    return run_id
                folder = make_dir(run_id)
                if folder is not None:
                    conn.execute("UPDATE runs SET run_dir = ? WHERE id = ?", [str(folder), run_id])
                    return run_id
                conn.execute("DELETE FROM runs WHERE id = ?", [run_id])  # the id stays used
            raise StoreError(f"found no free run folder name for {name!r}")

    def claim_run(self, run_id: int, claimant: int | None = None) -> dict[str, Any]:
        """Queue an ended run for a new worker in one transaction; RunBusy if it is queued or running.

        Every way of starting a worker for an existing run (`ponder resume`, the GUI) claims it here
        first, so of two at once exactly one gets it. A queued run whose claimant (the pid recorded by
        create_run, claim_run or hand_over) has died without starting a worker can be claimed again.
        """
        self.get_run(run_id)  # a dead worker's "running" run is recorded as failed first
        claimant = claimant or os.getpid()
        with self._write() as conn:
            run = self._row("runs", run_id)
            stale = run["status"] == "queued" and run.get("pid") and \
                not self.process_alive(run["pid"], run.get("pid_started"))
            if run["status"] in ACTIVE and not stale:
                how = "its worker is training" if run["status"] == "running" else \
                    "its worker is starting" if run.get("pid") else "it waits for the command that starts its worker"
                raise RunBusy(f"run {run_id} is already {run['status']} ({how}): one run has one worker. Follow "
                              f"it with `ponder show {run_id}`, or stop it with `ponder stop {run_id}` first.")
            conn.execute(f"UPDATE runs SET status = 'queued', {_NO_ERROR}, finished = NULL, pid = ?, "
                         "pid_started = ? WHERE id = ?", [claimant, _create_time(claimant), run_id])
            return self._row("runs", run_id)

    def hand_over(self, run_id: int, pid: int) -> None:
        """The claimant started process `pid` for a queued run: it holds the claim until the worker runs."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET pid = ?, pid_started = ? WHERE id = ? AND status = 'queued'",
                         [pid, _create_time(pid), run_id])

    def start_worker(self, run_id: int, pid: int, resume: bool = False) -> str | None:
        """The worker's own claim: the run becomes running with this pid; None if it did, else why not
        (nothing is written then). Refused while another live worker runs it, and, unless resuming, for a
        run that was started before (a second worker would redo it from the start)."""
        with self._write() as conn:
            run = self._row("runs", run_id)
            if run["status"] == "running" and run.get("pid") != pid and \
                    self.process_alive(run.get("pid"), run.get("pid_started")):
                return f"run {run_id} already has a live worker (pid {run['pid']})"
            if not resume and run["status"] != "queued":
                return f"run {run_id} was started before (it is {run['status']}): resume it instead"
            conn.execute(f"UPDATE runs SET status = 'running', pid = ?, pid_started = ?, {_NO_ERROR}, "
                         "finished = NULL WHERE id = ?", [pid, _create_time(pid), run_id])
            return None

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "spec" in fields and not isinstance(fields["spec"], str):
            fields["spec"] = json.dumps(fields["spec"])
        self._update("runs", run_id, fields)

    def _row(self, table: str, pk: int) -> dict[str, Any]:
        """One row by id, read to the end (sqlite-utils' `get` leaves its SELECT stepping until the
        generator is collected, and a traceback can keep it alive: see list_runs). KeyError if none."""
        rows = list(self.db[table].rows_where("id = ?", [pk]))
        if not rows:
            what = {"runs": "run", "evaluations": "evaluation"}.get(table, table[:-1])
            hint = " (`ponder runs` lists the runs)" if table == "runs" else ""
            raise RunNotFound(f"no {what} with id {pk} in the run store {self.path}{hint}")
        return _decode(rows[0])

    def get_run(self, run_id: int) -> dict[str, Any]:
        """The run, with a dead worker's run shown as failed (and recorded so)."""
        return self._check_alive(self._row("runs", run_id))

    def find_run_by_dir(self, run_dir: str | Path) -> dict[str, Any] | None:
        rows = list(self.db["runs"].rows_where("run_dir = ?", [str(run_dir)], order_by="id desc", limit=1))
        return _decode(rows[0]) if rows else None

    def list_runs(self) -> list[dict[str, Any]]:
        # read every row first: a write (a dead worker's run marked failed) while a SELECT is still
        # stepping would have to upgrade that stale read snapshot, which SQLite refuses at once with
        # "database is locked" (no busy wait) when another process has written since
        rows = list(self.db["runs"].rows_where(order_by="id"))
        return [self._check_alive(_decode(r)) for r in rows]

    def delete_run(self, run_id: int) -> None:
        """The run and everything recorded of it: its rows in every table, its evaluations (with their sources
        and generations); one transaction."""
        with self._write() as conn:
            self._delete_evaluations_of(conn, run_id)
            for table in ("metrics", "traces", "stages", "artifacts", "commands", "events", "pairs"):
                self.db.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.db.conn.execute("DELETE FROM runs WHERE id = ?", [run_id])

    def _check_alive(self, run: dict[str, Any]) -> dict[str, Any]:
        if run["status"] == "running" and not self.process_alive(run.get("pid"), run.get("pid_started")):
            # Re-read inside the check: the worker may have just recorded its end.
            fresh = self._row("runs", run["id"])
            if fresh["status"] == "running":
                error = (f"The worker (pid {run.get('pid')}) exited without recording an end: it was killed "
                         "or ran out of memory. See worker.log in the run folder.")
                self.update_run(run["id"], status="failed", error_message=error, finished=time.time())
                self.log_event(run["id"], "error", error)
                for stage in self.stages(run["id"]):
                    if stage["status"] == "running":
                        self.set_stage(run["id"], stage["stage"], status="failed", finished=time.time())
                fresh = self._row("runs", run["id"])
            return fresh
        return run

    # ---- stages -----------------------------------------------------------------------------------
    def set_stage(self, run_id: int, stage: str, **fields: Any) -> None:
        with self.db.conn:
            self.db.conn.execute("BEGIN IMMEDIATE")
            rows = list(self.db["stages"].rows_where("run_id = ? AND stage = ?", [run_id, stage], limit=1))
            if rows:
                self.db["stages"].update(rows[0]["id"], fields)
            else:
                self.db["stages"].insert({"run_id": run_id, "stage": stage, "status": "pending", **fields})

    def stages(self, run_id: int) -> list[dict[str, Any]]:
        return list(self.db["stages"].rows_where("run_id = ?", [run_id], order_by="id"))

