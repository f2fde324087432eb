"""The run store: one SQLite file (WAL) that the worker writes and every reader polls.

It is the only channel between a worker and the GUI or CLI. Every table has an integer
`id` so readers poll with `WHERE id > ?`. Each process opens its own connection; writes
are short transactions, and a 30 s busy timeout makes concurrent writers wait, never fail
with "database is locked". No torch here: the GUI imports this module.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from engine import paths

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
    },
    "evaluations": {
        "id": int, "run_id": int, "created": float, "status": str, "sources": str, "task": str, "n": int,
        "settings": str, "summary": str, "progress": int, "total": int, "error": str, "pid": int,
        "pid_started": float, "finished": float,
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
    "generations": [["eval_id", "id"]],
    "artifacts": [["run_id"]],
    "evaluations": [["run_id"]],
    "commands": [["run_id", "handled"]],
    "events": [["run_id", "id"]],
    "pairs": [["run_id", "id"]],
}
_JSON_COLUMNS = {"spec", "rewards", "meta", "sources", "settings", "summary"}


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON_COLUMNS & out.keys():
        if isinstance(out[key], str) and out[key]:
            out[key] = json.loads(out[key])
    return out


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

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else paths.store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self.db = sqlite_utils.Database(conn)
        self._ensure_schema()

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_schema(self) -> None:
        existing = set(self.db.table_names())
        if existing >= _SCHEMA.keys():
            return
        with self.db.conn:  # one transaction: a second process sees all tables or none
            self.db.conn.execute("BEGIN IMMEDIATE")
            for name, columns in _SCHEMA.items():
                table = self.db[name]
                if not table.exists():
                    table.create(columns, pk="id")
                    for cols in _INDEXES.get(name, []):
                        table.create_index(cols, if_not_exists=True)

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
    def create_run(self, name: str, spec: Mapping[str, Any], run_dir: str | Path, status: str = "queued") -> int:
        row = {"name": name, "created": time.time(), "status": status, "spec": json.dumps(spec),
               "run_dir": str(run_dir), "error": None, "finished": None}
        return self._insert("runs", row)

    def update_run(self, run_id: int, **fields: Any) -> None:
        if "spec" in fields and not isinstance(fields["spec"], str):
            fields["spec"] = json.dumps(fields["spec"])
        self._update("runs", run_id, fields)

    def _row(self, table: str, pk: int) -> dict[str, Any]:
        """One row by id, read to the end (sqlite-utils' `get` leaves its SELECT stepping until the
        generator is collected, and a traceback can keep it alive: see list_runs). KeyError if none."""
        rows = list(self.db[table].rows_where("id = ?", [pk]))
        if not rows:
            raise KeyError(f"no {table[:-1]} with id {pk} in {self.path}")
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
        if run["status"] == "running" and not process_alive(run.get("pid"), run.get("pid_started")):
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

    def artifacts(self, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        where, args = "run_id = ?", [run_id]
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
        if row["status"] == "running" and not process_alive(row.get("pid"), row.get("pid_started")):
            self.update_evaluation(eval_id, status="failed", finished=time.time(),
                                   error="the evaluation process exited without recording an end")
            row = self._row("evaluations", eval_id)
        return row

    def list_evaluations(self, run_id: int | None = None) -> list[dict[str, Any]]:
        where, args = ("run_id = ?", [run_id]) if run_id is not None else (None, None)
        return [_decode(r) for r in list(self.db["evaluations"].rows_where(where, args, order_by="id"))]

    def integrity_check(self) -> str:
        return self.db.conn.execute("PRAGMA integrity_check").fetchone()[0]
