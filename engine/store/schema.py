"""The store's tables, its schema version (`PRAGMA user_version`) and the in-place upgrade of an older store.

Version 1 (stores without a version, user_version 0) packed facts into strings: a run's error as
"message\\n\\ntraceback", an alert event as "[code] message", an evaluation's sources as a JSON list of
labels ("run:3", "sft:PATH"). Version 2 holds them as fields: runs.error_type/error_message/error_traceback,
events.code, and one `eval_sources` row per source. Opening an older store upgrades it once, in one
transaction taken at once (BEGIN IMMEDIATE: of two processes opening it together, one upgrades and the
other finds it done), after a backup copy `FILE.v1.bak` beside it. A newer store is refused untouched.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.errors import StoreError

SCHEMA_VERSION = 2

_SCHEMA: dict[str, dict[str, Any]] = {
    "runs": {
        "id": int, "name": str, "created": float, "status": str, "spec": str, "run_dir": str,
        "pid": int, "pid_started": float, "finished": float,
        "error_type": str,  # the exception's class name; NULL when the error is not an exception (a dead worker)
        "error_message": str,  # what the user reads first
        "error_traceback": str,  # the worker's traceback, for the Details button
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
        "id": int, "run_id": int, "created": float, "status": str, "task": str, "n": int,
        "settings": str, "summary": str, "progress": int, "total": int, "error": str, "pid": int,
        "pid_started": float, "finished": float, "started": float,
    },
    # what an evaluation scores, in order; kind: base, sft, checkpoint, trained, run (a run's weights, to be
    # expanded to its checkpoints), model (a folder, file or hub id); label names its generations and summary
    "eval_sources": {
        "id": int, "eval_id": int, "position": int, "kind": str, "label": str, "path": str, "stage": str,
        "step": int, "run_id": int,
    },
    "artifacts": {"id": int, "run_id": int, "stage": str, "kind": str, "path": str, "meta": str, "created": float},
    "commands": {"id": int, "run_id": int, "command": str, "created": float, "handled": float},
    "events": {
        "id": int, "run_id": int, "time": float, "level": str, "message": str, "stage": str, "step": int,
        "code": str,  # a training-health alert's code (truncated, zero_spread, ...; see engine.health)
    },
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
    "eval_sources": [["eval_id", "position"]],
    "commands": [["run_id", "handled"]],
    "events": [["run_id", "id"]],
    "pairs": [["run_id", "id"]],
}
_JSON_COLUMNS = {"spec", "rewards", "meta", "settings", "summary"}
_SQL_TYPES = {int: "INTEGER", str: "TEXT", float: "FLOAT"}


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


def source_row(text: str, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The structured row of a source named as text (the command line's "run:3", "run:3:grpo:16", "base", a
    folder or hub id; version 1's "sft:PATH"); `info` is what an evaluation summary knew of it (role, stage,
    step, run_id), which wins over the text."""
    text = text.strip()
    row: dict[str, Any] = {"kind": "model", "label": text, "path": text, "stage": None, "step": None,
                           "run_id": None}
    parts = text.split(":")
    if parts[0] == "run" and len(parts) >= 2 and parts[1].isdigit():
        row.update(kind="run", path=None, run_id=int(parts[1]))
        if len(parts) > 2:
            row.update(kind="checkpoint", stage=parts[2] if len(parts) > 3 else None,
                       step=int(parts[-1]) if parts[-1].isdigit() else None)
    elif text.startswith("sft:"):
        row.update(kind="sft", path=text[4:])
    elif text == "base":
        row.update(kind="base", path=None)
    info = info or {}
    if info.get("role") in ("base", "sft", "checkpoint", "trained"):
        if row["kind"] == "model":  # an eval stage's label ("trained", "grpo step 16"), not a path
            row["path"] = None
        row["kind"] = info["role"]
    for key in ("stage", "step", "run_id"):
        if info.get(key) is not None:
            row[key] = info[key]
    return row


# ---- version and upgrade -------------------------------------------------------------------------

def check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The store's schema version (0 = version 1, made before versions); a StoreError, before anything is
    written, when newer code made it."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"the run store {path} has schema version {version}, made by a newer Ponder; this Ponder "
                         f"reads versions up to {SCHEMA_VERSION}. Ponder leaves it as it is: upgrade Ponder, or "
                         "pass --store with another file.")
    return version


def missing(db: sqlite_utils.Database) -> dict[str, list[str]]:
    """Tables (all their columns) and columns that an older store lacks."""
    existing = set(db.table_names())
    out = {}
    for name, columns in _SCHEMA.items():
        have = set(db[name].columns_dict) if name in existing else set()
        if columns.keys() - have:
            out[name] = [c for c in columns if c not in have]
    return out


_LEGACY = {"runs": "error", "evaluations": "sources"}  # version 1's packed columns


def _outdated(db: sqlite_utils.Database) -> bool:
    """Older than this code, lacking a table or column, or carrying a version-1 column again (an older Ponder
    opened it since and added it back)."""
    version = db.conn.execute("PRAGMA user_version").fetchone()[0]
    legacy = any(column in db[table].columns_dict for table, column in _LEGACY.items() if db[table].exists())
    return version < SCHEMA_VERSION or legacy or bool(missing(db)) or not _autoincrement(db)


def ensure_schema(db: sqlite_utils.Database, path: Path) -> int | None:
    """Bring the store to SCHEMA_VERSION; returns the version it upgraded from, None if it had nothing to do
    (the store is current, or another process upgraded it while this one waited for the lock)."""
    existing = set(db.table_names())
    if existing and "runs" not in existing:
        raise StoreError(f"{path} is an SQLite file but not a Ponder run store (its tables: "
                         f"{', '.join(sorted(existing))}): pass --store with another file.")
    if not _outdated(db):
        return None
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")  # waits for a process upgrading it now; then sees its upgrade
    try:
        old = check_version(conn, path)
        if not _outdated(db):
            conn.execute("ROLLBACK")
            return None
        if existing:
            _backup(path, old or 1)
        _upgrade(db)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return old or 1


def backup_path(path: Path, version: int) -> Path:
    return path.with_name(f"{path.name}.v{version}.bak")


def _backup(path: Path, version: int) -> Path:
    """A copy of the store as it is (its last commit, WAL included), under a name that is free: an older
    backup is never replaced. The caller holds the write lock, so no commit lands while it copies."""
    target, n = backup_path(path, version), 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.v{version}.{n}.bak"), n + 1
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        src, dst = sqlite3.connect(str(path)), sqlite3.connect(str(tmp))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        tmp.rename(target)
    except (OSError, sqlite3.Error) as exc:
        if tmp.is_file():
            tmp.unlink()
        raise StoreError(f"the run store {path} is from an older Ponder and is upgraded after a backup copy, "
                         f"but {target} could not be written ({exc}); the store is left as it is: free some "
                         "space or make its folder writable, then try again.") from exc
    return target


_ALERT = re.compile(r"^(?P<prefix>[\w-]+: )?\[(?P<code>[a-z_]+)\] (?P<rest>.*)$", re.DOTALL)


def split_error(error: str) -> dict[str, Any]:
    """Version 1's "message\\n\\ntraceback" as fields; the type is the traceback's last line's class."""
    message, _, trace = error.partition("\n\n")
    trace = trace.strip("\n") or None
    kind = None
    if trace:
        last = trace.strip().splitlines()[-1]
        found = re.match(r"^([A-Za-z_][\w.]*)(:|$)", last)
        kind = found.group(1).rsplit(".", 1)[-1] if found else None
    return {"error_type": kind, "error_message": message, "error_traceback": trace and trace + "\n"}


def _upgrade(db: sqlite_utils.Database) -> None:
    """Version 1 to 2 inside the caller's transaction: new tables and columns, then the packed strings
    split into them once, and the old columns dropped (sqlite-utils' transform)."""
    conn = db.conn
    create_tables(db, missing(db))
    if _LEGACY["runs"] in db["runs"].columns_dict:
        for run_id, error in conn.execute("SELECT id, error FROM runs WHERE error IS NOT NULL").fetchall():
            fields = split_error(error)
            conn.execute("UPDATE runs SET error_type = ?, error_message = ?, error_traceback = ? WHERE id = ?",
                         [fields["error_type"], fields["error_message"], fields["error_traceback"], run_id])
        _rebuild_runs(db, drop={"error"})
    for event_id, message in conn.execute("SELECT id, message FROM events WHERE code IS NULL AND message "
                                          "LIKE '%[%] %'").fetchall():
        found = _ALERT.match(message or "")
        if found:
            conn.execute("UPDATE events SET code = ?, message = ? WHERE id = ?",
                         [found["code"], (found["prefix"] or "") + found["rest"], event_id])
    if _LEGACY["evaluations"] in db["evaluations"].columns_dict:
        for eval_id, sources, summary in conn.execute("SELECT id, sources, summary FROM evaluations").fetchall():
            insert_sources(db, eval_id, _old_sources(sources, summary))
        db["evaluations"].transform(drop={"sources"})  # nested in this transaction (a savepoint)
    create_tables(db, {})  # the indexes again (a transform rebuilt its table)
    if not _autoincrement(db):
        _rebuild_runs(db)


def _old_sources(sources: str | None, summary: str | None) -> list[dict[str, Any]]:
    """Version 1's JSON list of labels as rows, each completed by what the summary recorded of it."""
    try:
        info = json.loads(summary) if summary else {}
    except ValueError:
        info = {}
    try:
        labels = json.loads(sources) if sources else []
    except ValueError:
        return [{"kind": "model", "label": sources, "path": sources}]  # kept as it was, never lost
    if not isinstance(labels, list):
        labels = [labels]
    info = info if isinstance(info, dict) else {}
    return [source_row(str(lb), info.get(lb) if isinstance(info.get(lb), dict) else None) for lb in labels]


def insert_sources(db: sqlite_utils.Database, eval_id: int, rows: list[Mapping[str, Any]]) -> None:
    for position, row in enumerate(rows):
        db.conn.execute("INSERT INTO eval_sources (eval_id, position, kind, label, path, stage, step, run_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [eval_id, position, row.get("kind"), row.get("label"), row.get("path"), row.get("stage"),
                         row.get("step"), row.get("run_id")])


def create_tables(db: sqlite_utils.Database, absent: dict[str, list[str]]) -> None:
    """The tables and columns that are missing (runs with AUTOINCREMENT ids), and every table's indexes; a
    store from older code gets the new columns (NULL in old rows), never loses one."""
    for name, columns in absent.items():
        table = db[name]
        if not table.exists() and name == "runs":
            db.conn.execute(_runs_sql("runs", [(c, _SQL_TYPES[t]) for c, t in _SCHEMA[name].items()]))
        elif not table.exists():
            table.create(_SCHEMA[name], pk="id")
        else:
            for column in columns:
                table.add_column(column, _SCHEMA[name][column])
    for name, indexes in _INDEXES.items():
        if name in absent or db[name].exists():
            for cols in indexes:
                db[name].create_index(cols, if_not_exists=True)


def _runs_sql(table: str, columns: list[tuple[str, str]]) -> str:
    body = ", ".join("[id] INTEGER PRIMARY KEY AUTOINCREMENT" if c == "id" else f"[{c}] {t}" for c, t in columns)
    return f"CREATE TABLE [{table}] ({body})"


def _autoincrement(db: sqlite_utils.Database) -> bool:
    row = db.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
    return bool(row) and "AUTOINCREMENT" in row[0].upper()


def _rebuild_runs(db: sqlite_utils.Database, drop: set[str] = frozenset()) -> None:
    """Copy `runs` into a table with AUTOINCREMENT ids and without the `drop` columns, inside the caller's
    transaction: all rows kept with their ids, and the id sequence goes on where it was (ids of deleted runs
    stay used)."""
    columns = [(r[1], r[2] or "TEXT") for r in db.conn.execute("PRAGMA table_info(runs)") if r[1] not in drop]
    names = ", ".join(f"[{c}]" for c, _ in columns)
    seq = 0
    if "sqlite_sequence" in db.table_names():
        found = db.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()
        seq = found[0] if found else 0
    db.conn.execute(_runs_sql("runs_rebuilt", columns))
    db.conn.execute(f"INSERT INTO runs_rebuilt ({names}) SELECT {names} FROM runs ORDER BY id")
    db.conn.execute("DROP TABLE runs")
    db.conn.execute("ALTER TABLE runs_rebuilt RENAME TO runs")
    if seq:
        db.conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'runs'", [seq])
