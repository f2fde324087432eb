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

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "stopped")
ACTIVE = ("queued", "running")
STAGES = ("sft", "judge", "prefer", "grpo", "eval")

_SCHEMA: dict[str, dict[str, Any]] = {
    "runs": {
        "id": int, "name": str, "created": float, "status": str, "spec": str, "run_dir": str,
        "pid": int, "pid_started": float, "error": str, "finished": float,
    },
    "stages": {
        "id": int, "run_id": int, "stage": str, "status": str, "started": float, "finished": float,
        "progress": int, "total_steps": int,
    },
    "metrics": {"id": int, "run_id": int, "stage": str, "step": int, "name": str, "value": float, "time": float},
    "traces": {
        "id": int, "run_id": int, "stage": str, "step": int, "prompt_id": str, "prompt": str,
        "completion": str, "think_tokens": int, "answer_tokens": int, "tokens": int, "mode": str,
        "correct": int, "reward": float, "rewards": str, "difficulty": int,
    },
    "generations": {
        "id": int, "eval_id": int, "source": str, "prompt_id": str, "prompt": str, "completion": str,
        "tokens": int, "think_tokens": int, "answer_tokens": int, "mode": str, "correct": int,
        "reward": float, "difficulty": int, "sample": int,
        "budget": int,  # the thinking budget it was generated under (budget forcing); NULL = none
        "key": str,  # what was generated: source, settings, prompts (see engine.evaluate.generation_key)
    },
    "evaluations": {
        "id": int, "run_id": int, "created": float, "status": str, "sources": str, "task": str, "n": int,
        "settings": str, "summary": str, "progress": int, "total": int, "error": str, "pid": int,
        "pid_started": float, "finished": float, "started": float,
    },
    "artifacts": {"id": int, "run_id": int, "stage": str, "kind": str, "path": str, "meta": str, "created": float},
    "commands": {"id": int, "run_id": int, "command": str, "created": float, "handled": float},
    "events": {"id": int, "run_id": int, "time": float, "level": str, "message": str, "stage": str, "step": int},
    # the prefer stage's preference pairs; level = which rule of AdaR1's bi-level rule made it (group/instance)
    "pairs": {
        "id": int, "run_id": int, "stage": str, "prompt_id": str, "prompt": str, "difficulty": int, "level": str,
        "preferred": str, "chosen": str, "rejected": str, "chosen_mode": str, "rejected_mode": str,
        "chosen_tokens": int, "rejected_tokens": int, "chosen_correct": int, "rejected_correct": int,
    },
}
_INDEXES = {
    "metrics": [["run_id", "id"], ["run_id", "stage", "step"]],
    "traces": [["run_id", "id"]],
    "stages": [["run_id", "stage"]],
    "generations": [["eval_id", "id"], ["key"]],
    "artifacts": [["run_id"]],
    "evaluations": [["run_id"]],
    "commands": [["run_id", "handled"]],
    "events": [["run_id", "id"]],
    "pairs": [["run_id", "id"]],
}
_JSON_COLUMNS = {"spec", "rewards", "meta", "sources", "settings", "summary"}


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with its JSON columns decoded. A column that does not decode reads as None and its
    problem is kept under "damaged", so one bad row never hides the others."""
    out = dict(row)
    for key in _JSON_COLUMNS & out.keys():
        if isinstance(out[key], str) and out[key]:
            try:
                out[key] = json.loads(out[key])
            except ValueError as exc:
                out[key] = None
                out.setdefault("damaged", []).append(f"its {key} in the run store is not valid JSON ({exc})")
    return out


_SQLITE_HEADER = b"SQLite format 3\x00"


def describe_store_error(path: str | Path, exc: BaseException) -> StoreError:
    """A store error a user can act on, naming the file. Ponder never deletes or overwrites a store."""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, StoreError):
        return exc
    path = Path(path)
    unwritable = path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError) or unwritable:
        return StoreError(f"the run store {path} cannot be written ({text}): Ponder writes to it on every command; "
                          "check the permissions of the file and its folder, or pass --store with another file.")
    if "locked" in low or "busy" in low:
        return StoreError(f"the run store {path} is locked by another process ({text}): wait for it, or close "
                          "the program holding it (another Ponder, or a database browser), then try again.")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return damaged_store(path, text)
    return StoreError(f"cannot use the run store {path}: {text}")


def damaged_store(path: str | Path, what: str) -> StoreError:
    return StoreError(f"the run store {path} is damaged: {what}. Ponder leaves it as it is: move it aside "
                      f"(for example rename it to {Path(path).name}.damaged) to start a new, empty store, or put "
                      "back a copy you trust; `sqlite3 FILE .recover` may save what is left in it.")


def _check_file(path: Path) -> None:
    """Refuse a store file that is plainly not a whole SQLite database (cheap: reads its header only)."""
    if path.is_dir():
        raise StoreError(f"the run store {path} is a folder, not a file: pass --store with a file name, "
                         "or move the folder aside.")
    if not path.is_file():
        raise StoreError(f"the run store {path} is not a regular file: pass --store with a file name.")
    with open(path, "rb") as f:
        head = f.read(100)
    size = path.stat().st_size
    if size == 0:
        raise damaged_store(path, "the file is empty (0 bytes)")
    if not head.startswith(_SQLITE_HEADER) or len(head) < 100:
        raise damaged_store(path, "the file is not an SQLite database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    header_valid = head[24:28] == head[92:96]  # else the page count in the header is stale (old writers)
    wal = path.with_name(path.name + "-wal")
    writer_live = wal.exists() and wal.stat().st_size > 0  # a checkpoint in progress may extend the file
    if header_valid and pages and size < pages * page_size and not writer_live:
        raise damaged_store(path, f"the file is truncated ({size} bytes of {pages * page_size})")


def _create_store_file(path: Path, setup: Callable[[sqlite3.Connection], None]) -> None:
    """Create a new store with its schema under a temporary name, then link it into place: another
    process never sees a half-made (empty) store, and an existing file is never replaced."""
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)  # our own pid's leftover from a crash, never the store
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        setup(conn)
    finally:
        conn.close()
    try:
        os.link(tmp, path)  # fails if the store appeared meanwhile: then that one is used
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: a rename, if the name is still free
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def process_alive(pid: int | None, started: float | None) -> bool:
    """True if `pid` is a live (non-zombie) process that started at `started` (guards against pid reuse)."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class RunStore:
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
                every_table = {name: [] for name in _SCHEMA}
                _create_store_file(self.path, lambda conn: _create_tables(sqlite_utils.Database(conn), every_table))
            _check_file(self.path)
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise describe_store_error(self.path, exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self.db = sqlite_utils.Database(conn)
            self._ensure_schema()
        except (OSError, sqlite3.Error) as exc:
            conn.close()
            raise describe_store_error(self.path, exc) from exc

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _missing(self) -> dict[str, list[str]]:
        """Tables (all their columns) and columns that an older store lacks."""
        existing = set(self.db.table_names())
        out = {}
        for name, columns in _SCHEMA.items():
            have = set(self.db[name].columns_dict) if name in existing else set()
            if columns.keys() - have:
                out[name] = [c for c in columns if c not in have]
        return out

    def _ensure_schema(self) -> None:
        existing = set(self.db.table_names())
        if existing and "runs" not in existing:
            raise StoreError(f"{self.path} is an SQLite file but not a Ponder run store (its tables: "
                             f"{', '.join(sorted(existing))}): pass --store with another file.")
        if not self._missing() and _autoincrement(self.db):
            return
        with self.db.conn:  # one transaction: a second process sees all tables or none
            self.db.conn.execute("BEGIN IMMEDIATE")
            _create_tables(self.db, self._missing())  # again: another process may have just added them
            if not _autoincrement(self.db):
                _rebuild_runs_with_autoincrement(self.db)

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
               "run_dir": str(run_dir), "error": None, "finished": None}
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
            conn.execute("UPDATE runs SET status = 'queued', error = NULL, finished = NULL, pid = ?, "
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
            conn.execute("UPDATE runs SET status = 'running', pid = ?, pid_started = ?, error = NULL, "
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
        with self.db.conn:
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
                self.update_run(run["id"], status="failed", error=error, finished=time.time())
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

    # ---- metrics, traces, events ------------------------------------------------------------------
    def add_metrics(self, run_id: int, stage: str, step: int, values: Mapping[str, float]) -> None:
        now = time.time()
        self._insert_all("metrics", ({"run_id": run_id, "stage": stage, "step": step, "name": k,
                                      "value": float(v), "time": now} for k, v in values.items()))

    def metrics_since(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.db["metrics"].rows_where("run_id = ? AND id > ?", [run_id, after_id],
                                                  order_by="id", limit=limit))

    def last_metrics(self, run_id: int, stage: str | None = None) -> dict[str, Any]:
        """The latest step's metrics of the run (or of one stage): {"stage", "step", "values": {name: value}}."""
        where, args = "run_id = ?", [run_id]
        if stage:
            where, args = where + " AND stage = ?", args + [stage]
        last = list(self.db["metrics"].rows_where(where, args, order_by="id desc", limit=1))
        if not last:
            return {"stage": stage, "step": None, "values": {}}
        stage, step = last[0]["stage"], last[0]["step"]
        rows = list(self.db["metrics"].rows_where("run_id = ? AND stage = ? AND step = ?",
                                                  [run_id, stage, step]))
        return {"stage": stage, "step": step, "values": {r["name"]: r["value"] for r in rows}}

    def add_traces(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._insert_all("traces", (dict(r) for r in rows))

    def traces_since(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        rows = list(self.db["traces"].rows_where("run_id = ? AND id > ?", [run_id, after_id], order_by="id",
                                                 limit=limit))
        return [_decode(r) for r in rows]

    def forget_after(self, run_id: int, stage: str, step: int) -> None:
        """Drop a stage's metrics and traces past `step`: a resumed run redoes those steps."""
        with self.db.conn:
            for table in ("metrics", "traces"):
                self.db.conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND stage = ? AND step > ?",
                                     [run_id, stage, step])

    def log_event(self, run_id: int, level: str, message: str, stage: str | None = None,
                  step: int | None = None) -> None:
        self._insert("events", {"run_id": run_id, "time": time.time(), "level": level, "message": message,
                                "stage": stage, "step": step})

    def last_event_id(self, run_id: int) -> int:
        row = self.db.conn.execute("SELECT MAX(id) FROM events WHERE run_id = ?", [run_id]).fetchone()
        return row[0] or 0

    def events_since(self, run_id: int, after_id: int = 0) -> list[dict[str, Any]]:
        return list(self.db["events"].rows_where("run_id = ? AND id > ?", [run_id, after_id], order_by="id"))

    # ---- preference pairs (the prefer stage) -------------------------------------------------------
    def replace_pairs(self, run_id: int, stage: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """The stage's pairs, replacing any it wrote before (a resumed stage rebuilds the same pairs)."""
        with self.db.conn:
            self.db.conn.execute("DELETE FROM pairs WHERE run_id = ? AND stage = ?", [run_id, stage])
        self._insert_all("pairs", ({**r, "run_id": run_id, "stage": stage} for r in rows))

    def pairs(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.db["pairs"].rows_where("run_id = ? AND id > ?", [run_id, after_id], order_by="id",
                                                limit=limit))

    # ---- artifacts --------------------------------------------------------------------------------
    def add_artifact(self, run_id: int, kind: str, path: str | Path, meta: Mapping[str, Any] | None = None,
                     stage: str | None = None) -> int:
        return self._insert("artifacts", {"run_id": run_id, "stage": stage, "kind": kind, "path": str(path),
                                          "meta": json.dumps(dict(meta or {})), "created": time.time()})

    def artifacts(self, run_id: int | None, kind: str | None = None) -> list[dict[str, Any]]:
        """A run's artifacts, oldest first; every run's (one query) with run_id None."""
        where, args = ("run_id = ?", [run_id]) if run_id is not None else ("1", [])
        if kind:
            where, args = where + " AND kind = ?", args + [kind]
        return [_decode(r) for r in list(self.db["artifacts"].rows_where(where, args, order_by="id"))]

    # ---- commands ---------------------------------------------------------------------------------
    def send_command(self, run_id: int, command: str) -> None:
        self._insert("commands", {"run_id": run_id, "command": command, "created": time.time(), "handled": None})

    def take_command(self, run_id: int, command: str) -> bool:
        """Mark the oldest unhandled `command` for the run handled; True if there was one."""
        with self.db.conn:
            self.db.conn.execute("BEGIN IMMEDIATE")
            row = self.db.conn.execute(
                "SELECT id FROM commands WHERE run_id = ? AND command = ? AND handled IS NULL ORDER BY id LIMIT 1",
                [run_id, command]).fetchone()
            if row is None:
                return False
            self.db.conn.execute("UPDATE commands SET handled = ? WHERE id = ?", [time.time(), row[0]])
            return True

    # ---- generations (evaluation and comparison outputs) ------------------------------------------
    def add_generations(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._insert_all("generations", (dict(r) for r in rows))

    def generations(self, eval_id: int, after_id: int = 0) -> list[dict[str, Any]]:
        return list(self.db["generations"].rows_where("eval_id = ? AND id > ?", [eval_id, after_id],
                                                      order_by="id"))

    def reusable_generations(self, key: str, count: int, exclude_eval: int | None = None) -> list[dict[str, Any]]:
        """The generations of the newest other evaluation that holds all `count` rows generated under `key`
        (the same source, settings and prompts), or [] when none does."""
        rows = self.db.conn.execute(
            "SELECT eval_id, COUNT(*) FROM generations WHERE key = ? AND eval_id IS NOT ? GROUP BY eval_id "
            "ORDER BY eval_id DESC", [key, exclude_eval]).fetchall()
        for eval_id, n in rows:
            if n == count:
                return list(self.db["generations"].rows_where("eval_id = ? AND key = ?", [eval_id, key],
                                                              order_by="id"))
        return []

    # ---- evaluations (a set of sources evaluated on the same prompts) -----------------------------
    def create_evaluation(self, sources: list[str], task: str, n: int, settings: Mapping[str, Any],
                          run_id: int | None = None) -> int:
        return self._insert("evaluations", {
            "run_id": run_id, "created": time.time(), "status": "queued", "sources": json.dumps(list(sources)),
            "task": task, "n": n, "settings": json.dumps(dict(settings)), "summary": json.dumps({}),
            "progress": 0, "total": 0, "error": None, "finished": None})

    def update_evaluation(self, eval_id: int, **fields: Any) -> None:
        for key in ("sources", "settings", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        self._update("evaluations", eval_id, fields)

    def get_evaluation(self, eval_id: int) -> dict[str, Any]:
        row = self._row("evaluations", eval_id)
        if row["status"] == "running" and not self.process_alive(row.get("pid"), row.get("pid_started")):
            self.update_evaluation(eval_id, status="failed", finished=time.time(),
                                   error="the evaluation process exited without recording an end")
            row = self._row("evaluations", eval_id)
        return row

    def list_evaluations(self, run_id: int | None = None) -> list[dict[str, Any]]:
        where, args = ("run_id = ?", [run_id]) if run_id is not None else (None, None)
        return [_decode(r) for r in list(self.db["evaluations"].rows_where(where, args, order_by="id"))]

    def integrity_check(self) -> str:
        return self.db.conn.execute("PRAGMA integrity_check").fetchone()[0]


def _create_time(pid: int | None) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


def _create_tables(db: sqlite_utils.Database, missing: dict[str, list[str]]) -> None:
    """The tables and columns that are missing (runs with AUTOINCREMENT ids); a store from older code gets
    the new columns (NULL in old rows), never loses one."""
    for name, columns in missing.items():
        table = db[name]
        if not table.exists() and name == "runs":
            db.conn.execute(_runs_sql("runs", [(c, _SQL_TYPES[t]) for c, t in _SCHEMA[name].items()]))
        elif not table.exists():
            table.create(_SCHEMA[name], pk="id")
        else:
            for column in columns:
                table.add_column(column, _SCHEMA[name][column])
        for cols in _INDEXES.get(name, []):
            table.create_index(cols, if_not_exists=True)


_SQL_TYPES = {int: "INTEGER", str: "TEXT", float: "FLOAT"}


def _runs_sql(table: str, columns: list[tuple[str, str]]) -> str:
    body = ", ".join("[id] INTEGER PRIMARY KEY AUTOINCREMENT" if c == "id" else f"[{c}] {t}" for c, t in columns)
    return f"CREATE TABLE [{table}] ({body})"


def _autoincrement(db: sqlite_utils.Database) -> bool:
    row = db.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
    return bool(row) and "AUTOINCREMENT" in row[0].upper()


def _rebuild_runs_with_autoincrement(db: sqlite_utils.Database) -> None:
    """A store made before ids were AUTOINCREMENT: copy `runs` into one that is, inside the caller's
    transaction (all rows kept, with their ids; the sequence continues after the largest)."""
    columns = [(r[1], r[2] or "TEXT") for r in db.conn.execute("PRAGMA table_info(runs)")]
    names = ", ".join(f"[{c}]" for c, _ in columns)
    db.conn.execute(_runs_sql("runs_autoincrement", columns))
    db.conn.execute(f"INSERT INTO runs_autoincrement ({names}) SELECT {names} FROM runs ORDER BY id")
    db.conn.execute("DROP TABLE runs")
    db.conn.execute("ALTER TABLE runs_autoincrement RENAME TO runs")
