"""Evaluations: their sources (one structured row each), their progress and summary, and the generations."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from engine.store.schema import _decode, insert_sources, source_row


class Evaluations:
    """RunStore's reads and writes of evaluations (see engine.store.core.RunStore)."""

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
    def create_evaluation(self, sources: list[str | Mapping[str, Any]], task: str, n: int,
                          settings: Mapping[str, Any], run_id: int | None = None) -> int:
        """Register an evaluation of `sources`: rows (kind, label, path, stage, step, run_id) or the texts a
        user typed ("run:3", "run:3:grpo:16", "base", a folder or hub id), made rows here once."""
        with self._write():
            eval_id = self.db["evaluations"].insert({
                "run_id": run_id, "created": time.time(), "status": "queued", "task": task, "n": n,
                "settings": json.dumps(dict(settings)), "summary": json.dumps({}), "progress": 0, "total": 0,
                "error": None, "finished": None}).last_pk
            insert_sources(self.db, eval_id, [source_row(s) if isinstance(s, str) else s for s in sources])
        return eval_id

    def set_eval_sources(self, eval_id: int, rows: list[Mapping[str, Any]]) -> None:
        """Replace the evaluation's sources (what a "run:ID" named turned out to cover, with unique labels)."""
        with self._write() as conn:
            conn.execute("DELETE FROM eval_sources WHERE eval_id = ?", [eval_id])
            insert_sources(self.db, eval_id, rows)

    def eval_sources(self, eval_id: int) -> list[dict[str, Any]]:
        return list(self.db["eval_sources"].rows_where("eval_id = ?", [eval_id], order_by="position"))

    def update_evaluation(self, eval_id: int, **fields: Any) -> None:
        for key in ("settings", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        self._update("evaluations", eval_id, fields)

    def get_evaluation(self, eval_id: int) -> dict[str, Any]:
        """The evaluation, its `source_rows` and their labels as `sources`; a dead process's reads as failed."""
        row = self._row("evaluations", eval_id)
        if row["status"] == "running" and not self.process_alive(row.get("pid"), row.get("pid_started")):
            self.update_evaluation(eval_id, status="failed", finished=time.time(),
                                   error="the evaluation process exited without recording an end")
            row = self._row("evaluations", eval_id)
        return self._with_sources([row])[0]

    def list_evaluations(self, run_id: int | None = None) -> list[dict[str, Any]]:
        where, args = ("run_id = ?", [run_id]) if run_id is not None else (None, None)
        return self._with_sources([_decode(r) for r in list(self.db["evaluations"].rows_where(where, args,
                                                                                              order_by="id"))])

    def _with_sources(self, evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [e["id"] for e in evals]
        by_eval: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            part = ids[start:start + 500]
            rows = self.db["eval_sources"].rows_where(f"eval_id IN ({', '.join('?' * len(part))})", part,
                                                      order_by="eval_id, position")
            for r in list(rows):
                by_eval[r["eval_id"]].append(r)
        for e in evals:
            e["source_rows"] = by_eval[e["id"]]
            e["sources"] = [r["label"] for r in by_eval[e["id"]]]
        return evals

    def _delete_evaluations_of(self, conn, run_id: int) -> None:
        """The run's evaluations (its eval stage's, and those of its weights alone or beside a model that is no
        run's, such as `ponder compare run:3 base`), their sources and generations; in the caller's transaction."""
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM evaluations WHERE run_id = ? OR (id IN (SELECT eval_id FROM eval_sources WHERE run_id = ?) "
            "AND id NOT IN (SELECT eval_id FROM eval_sources WHERE run_id IS NOT NULL AND run_id != ?))",
            [run_id, run_id, run_id]).fetchall()]
        for table, column in (("generations", "eval_id"), ("eval_sources", "eval_id"), ("evaluations", "id")):
            conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])

    def integrity_check(self) -> str:
        return self.db.conn.execute("PRAGMA integrity_check").fetchone()[0]


