"""A store written by the schema-1 code (tests/data/store-v1.db, made by tests/data/make_store_v1.py) opens
with this code: upgraded in place once, after a backup, keeping every row; a newer store is refused untouched."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import StoreError
from engine.store import SCHEMA_VERSION, RunStore, backup_path
from tests.conftest import ROOT

V1 = ROOT / "tests" / "data" / "store-v1.db"
# columns version 2 replaced by fields (checked separately below)
DROPPED = {"runs": {"error"}, "evaluations": {"sources"}}


def _raw(path: Path) -> dict[str, dict[int, dict]]:
    """Every row of every table, by id, read with plain sqlite3."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%'")]
    out = {t: {r["id"]: dict(r) for r in conn.execute(f"SELECT * FROM [{t}]")} for t in tables}
    conn.close()
    return out


@pytest.fixture
def old_store(tmp_path) -> Path:
    path = tmp_path / "ponder.db"
    shutil.copy(V1, path)
    return path


def test_the_test_data_is_a_version_1_store():
    conn = sqlite3.connect(f"file:{V1}?mode=ro&immutable=1", uri=True)  # no -wal/-shm beside the test data
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0  # made before versions
    columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    conn.close()
    assert "error" in columns and "error_message" not in columns


def test_an_old_store_keeps_every_row_and_value(old_store):
    before = _raw(old_store)
    assert all(before[t] for t in ("runs", "metrics", "traces", "events", "evaluations", "generations",
                                   "artifacts", "stages", "commands"))  # the test data has rows in each
    with RunStore(old_store) as store:
        assert store.upgraded_from == 1
        assert store.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.integrity_check() == "ok"
    after = _raw(old_store)
    for table, rows in before.items():
        assert after[table].keys() == rows.keys(), table
        for row_id, row in rows.items():
            kept = {k: v for k, v in row.items() if k not in DROPPED.get(table, set())}
            if table == "events":
                kept.pop("message")  # an alert's "[code] " moved to its code column (checked below)
            new = after[table][row_id]
            assert {k: new[k] for k in kept} == kept, (table, row_id)
    assert not {c for t, cs in DROPPED.items() for c in cs if c in next(iter(after[t].values()))}


def test_the_upgrade_reads_back_through_the_store(old_store):
    with RunStore(old_store) as store:
        runs = store.list_runs()
        assert [(r["id"], r["name"], r["status"]) for r in runs] == \
            [(1, "v1-ok", "succeeded"), (2, "v1-failed", "failed"), (3, "v1-died", "failed")]
        assert runs[0]["spec"]["stages"] == ["sft", "grpo", "eval"]
        assert store.last_metrics(1, "grpo") == {"stage": "grpo", "step": 2, "values": {
            "loss": 0.5, "reward": 0.5, "rewards/format/mean": 0.5}}
        traces = store.traces_since(1)
        assert len(traces) == 6 and traces[0]["rewards"] == {"format": 0.5, "accuracy": 1.0}
        assert [a["kind"] for a in store.artifacts(1)] == ["checkpoint", "adapter", "adapter"]
        assert store.artifacts(1, "checkpoint")[0]["meta"] == {"step": 2}
        assert len(store.generations(1)) == 8
        assert store.get_evaluation(1)["summary"]["trained"]["accuracy"] == 1.0
        assert store.create_run("new", {}) == 4  # ids go on after the old ones


def test_new_fields_are_filled_from_the_old_strings(old_store):
    with RunStore(old_store) as store:
        ok, failed, died = store.list_runs()
        assert (ok["error_type"], ok["error_message"], ok["error_traceback"]) == (None, None, None)
        assert failed["error_type"] == "ValueError"
        assert failed["error_message"] == "ValueError: the learning rate became NaN"  # the message alone
        assert failed["error_traceback"].startswith("Traceback (most recent call last):")
        assert failed["error_traceback"].rstrip().endswith("ValueError: the learning rate became NaN")
        assert died["error_type"] is None and died["error_traceback"] is None
        assert died["error_message"] == "The worker exited with code 1 before it started the run."

        events = store.events_since(1)
        alerts = [(e["code"], e["message"]) for e in events if e["level"] == "alert"]
        assert alerts == [("truncated", "80% of completions were cut off at 24 tokens. Raise "
                                        "grpo.max_completion_length."),
                          ("zero_spread", "every completion of a prompt got the same reward.")]
        assert [e["code"] for e in events if e["level"] == "info"] == [None]

        stage_eval = store.get_evaluation(1)
        assert stage_eval["sources"] == ["base", "sft", "grpo step 2", "trained"]
        assert [(r["kind"], r["path"], r["stage"], r["step"], r["run_id"]) for r in stage_eval["source_rows"]] == [
            ("base", None, None, None, None), ("sft", None, None, None, 1), ("checkpoint", None, "grpo", 2, 1),
            ("trained", None, None, None, 1)]
        named = store.get_evaluation(2)
        assert [(r["kind"], r["label"], r["path"], r["run_id"]) for r in named["source_rows"]] == [
            ("run", "run:1", None, 1), ("sft", "sft:/runs/0001-v1-ok/sft/final", "/runs/0001-v1-ok/sft/final", None)]
        assert named["error"] == "ValueError: source 'x': no such model"  # an evaluation's error stays as it was


def test_a_backup_of_the_old_file_is_taken_first(old_store):
    original = _raw(old_store)
    with RunStore(old_store):
        pass
    backup = backup_path(old_store, 1)
    assert backup.name == "ponder.db.v1.bak" and backup.parent == old_store.parent
    conn = sqlite3.connect(backup)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    assert _raw(backup) == original  # the store as it was, row for row


def test_reopening_an_upgraded_store_changes_nothing(old_store):
    with RunStore(old_store):
        pass
    upgraded = old_store.read_bytes()
    with RunStore(old_store) as store:
        assert store.upgraded_from is None
        assert len(store.list_runs()) == 3
    assert old_store.read_bytes() == upgraded
    assert sorted(p.name for p in old_store.parent.iterdir() if ".bak" in p.name) == ["ponder.db.v1.bak"]


def test_a_store_from_a_newer_ponder_is_refused_and_left_byte_identical(old_store):
    conn = sqlite3.connect(old_store)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    for leftover in old_store.parent.glob("ponder.db-*"):
        leftover.unlink()
    original = old_store.read_bytes()
    with pytest.raises(StoreError) as err:
        RunStore(old_store)
    text = str(err.value)
    assert str(old_store) in text and f"version {SCHEMA_VERSION + 1}" in text and f"up to {SCHEMA_VERSION}" in text
    assert old_store.read_bytes() == original
    assert [p.name for p in old_store.parent.iterdir()] == ["ponder.db"]  # no backup, no journal left


def test_a_newer_store_is_refused_by_the_cli_in_one_line(old_store):
    conn = sqlite3.connect(old_store)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    original = old_store.read_bytes()
    out = subprocess.run([sys.executable, "-m", "engine.cli", "--store", str(old_store), "runs"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "newer Ponder" in out.stdout + out.stderr and "Traceback" not in out.stdout + out.stderr
    assert old_store.read_bytes() == original


OPEN_AT = """
import sys, time
from engine.store import RunStore
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
store = RunStore(sys.argv[1])
print(store.upgraded_from, len(store.list_runs()))
"""


def test_two_processes_opening_an_old_store_at_once_upgrade_it_once(old_store):
    start = time.time() + 2.0  # both are past their imports by then, and open within a millisecond
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, str(old_store), str(start)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["1 3", "None 3"]  # one upgraded, the other found it done
    assert sorted(p.name for p in old_store.parent.iterdir() if ".bak" in p.name) == ["ponder.db.v1.bak"]
    with RunStore(old_store) as store:
        assert store.upgraded_from is None and store.integrity_check() == "ok"
        assert [r["error_type"] for r in store.list_runs()] == [None, "ValueError", None]


def test_a_failed_upgrade_leaves_the_old_store_as_it_was(old_store):
    conn = sqlite3.connect(old_store)  # a row the upgrade cannot copy: runs_rebuilt would clash with it
    conn.execute("CREATE TABLE runs_rebuilt (id INTEGER)")
    conn.commit()
    conn.close()
    before = _raw(old_store)
    with pytest.raises(StoreError):
        RunStore(old_store)
    assert _raw(old_store) == before
    conn = sqlite3.connect(old_store)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


def test_a_backup_that_cannot_be_written_stops_the_upgrade_and_says_so(old_store):
    (old_store.parent / ".ponder.db.v1.bak.tmp").mkdir()  # in the way of the backup copy
    before = _raw(old_store)
    with pytest.raises(StoreError, match=r"ponder.db.v1.bak could not be written .* left as it is"):
        RunStore(old_store)
    assert _raw(old_store) == before
    assert not backup_path(old_store, 1).exists()


def test_a_store_an_older_ponder_opened_again_is_upgraded_again(tmp_path):
    path = tmp_path / "ponder.db"
    with RunStore(path) as store:
        run_id = store.create_run("r", {}, "")
    conn = sqlite3.connect(path)  # what version-1 code does to it: adds its columns back and writes them
    conn.execute("ALTER TABLE runs ADD COLUMN error TEXT")
    conn.execute("ALTER TABLE evaluations ADD COLUMN sources TEXT")
    conn.execute("UPDATE runs SET status = 'failed', error = ? WHERE id = ?",
                 ["KeyError: 'x'\n\nTraceback (most recent call last):\nKeyError: 'x'\n", run_id])
    conn.execute("INSERT INTO evaluations (status, sources, summary) VALUES ('queued', '[\"run:1\", \"base\"]', '{}')")
    conn.commit()
    conn.close()
    with RunStore(path) as store:
        assert store.upgraded_from == SCHEMA_VERSION
        run = store.get_run(run_id)
        assert (run["error_type"], run["error_message"]) == ("KeyError", "KeyError: 'x'") and "error" not in run
        assert [(r["kind"], r["run_id"]) for r in store.list_evaluations()[0]["source_rows"]] == [
            ("run", 1), ("base", None)]
    assert backup_path(path, SCHEMA_VERSION).exists()
