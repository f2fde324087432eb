"""The store file and run folders under bad conditions: damaged, read-only, locked or old stores, a
PONDER_HOME that is a file, a run that cannot be decoded, a run folder that cannot be made, and the
claim that gives a run one worker (real processes racing)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils

from engine.errors import HomeError, RunBusy, StoreError
from engine.launch import RunFolderError, create_run
from engine.spec import load_spec
from engine.store import _SCHEMA, RunStore
from tests.conftest import ROOT, SPECS


def _spec(**changes):
    return load_spec(SPECS / "smoke.toml").replace(**changes)


# ---- ids and folders ---------------------------------------------------------------------------

def test_run_ids_are_never_reused_after_a_delete(store):
    first = store.create_run("a", {}, "")
    second = store.create_run("b", {}, "")
    store.delete_run(second)
    assert store.create_run("c", {}, "") == second + 1  # rowid alone would hand out `second` again
    assert first < second


def test_a_store_made_by_older_code_keeps_its_runs_and_stops_reusing_ids(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)  # what the store's code made before ids were AUTOINCREMENT
    for name, columns in _SCHEMA.items():
        old[name].create(columns, pk="id")
    for i in (1, 2, 3):
        old["runs"].insert({"id": i, "name": f"r{i}", "status": "succeeded", "spec": json.dumps({"i": i}),
                            "run_dir": f"/runs/{i}", "created": 1.0})
    old["metrics"].insert({"run_id": 2, "stage": "grpo", "step": 1, "name": "reward", "value": 0.5})
    old.conn.close()
    with RunStore(path) as store:
        assert [(r["id"], r["name"], r["spec"]) for r in store.list_runs()] == \
            [(1, "r1", {"i": 1}), (2, "r2", {"i": 2}), (3, "r3", {"i": 3})]
        assert store.last_metrics(2)["values"] == {"reward": 0.5}
        store.delete_run(3)
        assert store.create_run("new", {}, "") == 4
    with RunStore(path) as store:  # the upgrade happens once; reopening changes nothing
        assert [r["id"] for r in store.list_runs()] == [1, 2, 4]


def test_a_recreated_store_never_writes_into_an_old_run_folder(ponder_home):
    with RunStore() as store:
        _, old_dir = create_run(_spec(name="same"), store)
    old_spec = (old_dir / "spec.toml").read_bytes()
    (old_dir / "worker.log").write_text("the old run's log\n")
    for leftover in ponder_home.glob("ponder.db*"):
        leftover.unlink()  # the user deleted the store; the run folders stay
    with RunStore() as store:
        run_id, new_dir = create_run(_spec(name="same", seed=7), store)
        assert new_dir != old_dir and new_dir.exists()
        assert store.get_run(run_id)["run_dir"] == str(new_dir)
    assert (old_dir / "spec.toml").read_bytes() == old_spec
    assert (old_dir / "worker.log").read_text() == "the old run's log\n"


def test_a_run_whose_folder_cannot_be_made_is_not_registered(store, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunFolderError, match="a-file"):
        create_run(_spec(output_dir=str(blocker)), store)
    assert store.list_runs() == []  # not left "queued" for ever
    with pytest.raises(RunFolderError):
        create_run(_spec(output_dir=str(blocker / "below")), store)
    assert store.list_runs() == []
    run_id, run_dir = create_run(_spec(output_dir=str(tmp_path / "fine")), store)  # the store still works
    assert (run_dir / "spec.toml").is_file() and [r["id"] for r in store.list_runs()] == [run_id]


# ---- damaged, read-only, locked -----------------------------------------------------------------

def _truncated(path: Path) -> None:
    with RunStore(path) as store:
        run_id = store.create_run("r", {}, "")
        for step in range(300):
            store.add_metrics(run_id, "grpo", step, {f"m{i}": float(i) for i in range(20)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b""), "empty"),  # 0 bytes: a truncated file, not a new store
    (lambda p: p.write_bytes(b"this is no database\n" * 50), "not an SQLite database"),
    (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200), "damaged"),  # a header, then garbage
    (_truncated, "truncated"),
])
def test_a_damaged_store_gets_a_clear_error_and_is_left_as_it_is(tmp_path, make, words):
    path = tmp_path / "ponder.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        RunStore(path).close()
    message = str(err.value)
    assert str(path) in message and words in message and "move it aside" in message
    assert path.read_bytes() == before  # never replaced, repaired or deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ponder.db"]


def test_another_sqlite_file_is_not_taken_for_a_store(tmp_path):
    path = tmp_path / "other.db"
    sqlite_utils.Database(path)["songs"].insert({"title": "x"})
    with pytest.raises(StoreError, match="not a Ponder run store"):
        RunStore(path)
    assert sqlite_utils.Database(path).table_names() == ["songs"]


def test_a_ponder_home_that_is_a_file_is_said_so(tmp_path, monkeypatch):
    home = tmp_path / "home-file"
    home.write_text("x")
    monkeypatch.setenv("PONDER_HOME", str(home))
    with pytest.raises(HomeError, match="PONDER_HOME .*home-file.* is a file"):
        RunStore()
    assert home.read_text() == "x"


@pytest.fixture
def read_only_view(tmp_path):
    """(folder, the same folder mounted read-only): needs root and bind mounts, skipped without."""
    folder, view = tmp_path / "rw", tmp_path / "ro"
    folder.mkdir()
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield folder, view
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


def test_a_read_only_store_gets_a_clear_error(read_only_view):
    folder, view = read_only_view
    with RunStore(folder / "ponder.db") as store:
        store.create_run("r", {}, "")
    with pytest.raises(StoreError, match=r"ro/ponder.db cannot be written"):
        RunStore(view / "ponder.db").close()


def test_a_locked_store_gets_a_clear_error_from_the_command_line(store, monkeypatch, capsys):
    from engine import cli

    run_id = store.create_run("r", {}, "", status="running")
    holder = sqlite3.connect(str(store.path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    holder.execute("UPDATE runs SET name = 'held' WHERE id = ?", [run_id])
    monkeypatch.setattr(RunStore, "busy_timeout_s", 0.2)  # instead of waiting 30 s
    try:
        code = cli.main(["--store", str(store.path), "stop", str(run_id)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert f"the run store {store.path} is locked by another process" in err and "Traceback" not in err


def test_a_run_with_an_undecodable_spec_does_not_hide_the_others(store, capsys):
    from engine import cli

    ids = [store.create_run(f"r{i}", {"rewards": {"preset": "r1-zero"}}, f"/runs/{i}", status="stopped")
           for i in range(3)]
    store.db.conn.execute("UPDATE runs SET spec = '{broken' WHERE id = ?", [ids[1]])
    runs = store.list_runs()
    assert [r["id"] for r in runs] == ids
    assert runs[1]["spec"] is None and "spec in the run store is not valid JSON" in runs[1]["damaged"][0]
    assert runs[0]["spec"] == {"rewards": {"preset": "r1-zero"}}
    assert cli.main(["--store", str(store.path), "runs"]) == 0
    out = capsys.readouterr().out
    assert all(f"r{i}" in out for i in range(3)) and "not valid JSON" in out
    assert cli.main(["--store", str(store.path), "show", str(ids[1])]) == 0
    assert "not valid JSON" in capsys.readouterr().out


# ---- one run, one worker --------------------------------------------------------------------------

_CLAIM = """
import sys, time
from engine.errors import RunBusy
from engine.store import RunStore
path, run_id, at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with RunStore(path) as store:
    time.sleep(max(0.0, at - time.time()))  # everyone at once
    try:
        store.claim_run(run_id)
        print("claimed", flush=True)
    except RunBusy as exc:
        print("refused", exc, flush=True)
    # a claimant that has died leaves a stale claim, which may be taken over (by design): the claimants
    # live until every process has tried
    time.sleep(max(0.0, at + 20.0 - time.time()))
"""


def test_of_many_processes_claiming_a_run_at_once_exactly_one_gets_it(store):
    run_id = store.create_run("r", {}, "", status="stopped")
    at = time.time() + 3.0  # after every process has started and opened the store
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIM, str(store.path), str(run_id), str(at)],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    said = [out.split()[0] for out, _ in outs]
    assert said.count("claimed") == 1 and said.count("refused") == 5, outs
    assert all("already queued" in out for out, _ in outs if out.startswith("refused"))
    assert store.get_run(run_id)["status"] == "queued"


def test_a_claim_is_refused_while_its_claimant_lives_and_taken_over_when_it_died(store):
    run_id = store.create_run("r", {}, "", status="stopped")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.claim_run(run_id, claimant=sleeper.pid)
        with pytest.raises(RunBusy, match=f"run {run_id} is already queued"):
            store.claim_run(run_id)
    finally:
        sleeper.kill()
        sleeper.wait()
    store.claim_run(run_id)  # the claimant died before it started a worker: the run is not stuck
    waiting = store.create_run("launched by hand later", {}, "")  # launch-command's run: no claimant
    with pytest.raises(RunBusy):
        store.claim_run(waiting)


def test_a_second_worker_of_a_running_run_is_refused_and_writes_nothing(store):
    run_id = store.create_run("r", {}, "", status="stopped")
    assert "resume it instead" in store.start_worker(run_id, os.getpid())  # a fresh start would redo it all
    assert store.start_worker(run_id, os.getpid(), resume=True) is None
    before = store.get_run(run_id)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert "already has a live worker" in store.start_worker(run_id, sleeper.pid, resume=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert store.get_run(run_id) == before
    with pytest.raises(RunBusy, match="already running"):
        store.claim_run(run_id)
