"""The run's records: metrics, traces, events (alerts with their code), preference pairs, artifacts, commands."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.store.schema import _decode


class Records:
    """RunStore's reads and writes of what a run records as it trains (see engine.store.core.RunStore)."""

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

    def run_summary(self, run_id: int) -> dict[str, Any]:
        """What a list of runs shows: the training curves' last step (GRPO's, else the last stage's) and the
        held-out accuracy of the eval stage, if it ran: {"stage", "step", "values", "eval_accuracy"}."""
        last = self.last_metrics(run_id, "grpo")
        if last["step"] is None:
            last = self.last_metrics(run_id)
        return {**last, "eval_accuracy": self.last_metrics(run_id, "eval")["values"].get("eval/accuracy")}

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
                  step: int | None = None, code: str | None = None) -> None:
        """One line of the run's log; `code` names a training-health alert (engine.health.Alert.code)."""
        self._insert("events", {"run_id": run_id, "time": time.time(), "level": level, "message": message,
                                "stage": stage, "step": step, "code": code})

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

