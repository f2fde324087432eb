"""Facts the store holds as fields, not strings parsed back: a run's error (type, message, traceback), an
alert's code, an evaluation's sources; and delete_run takes the run's evaluations with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from desktop.runner import describe_failure
from engine.eval_sources import resolve_source
from engine.launch import create_run, spawn_worker
from engine.spec import load_spec
from tests.conftest import ROOT, SPECS


def test_a_failed_worker_records_type_message_and_traceback_apart(store, tmp_path):
    folder = tmp_path / "remote-code-model"  # fails at model loading, before any training
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "custom", "auto_map": {"AutoModel": "x.Y"}}))
    spec = load_spec(SPECS / "smoke.toml").replace(**{"model.source": str(folder), "output_dir": str(tmp_path)})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=120) == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error_type"]
    assert "trust_remote_code" in run["error_message"] and "Traceback" not in run["error_message"]
    assert run["error_traceback"].startswith("Traceback (most recent call last):")
    assert run["error_type"] in run["error_traceback"].strip().splitlines()[-1]

    message, details = describe_failure(run)  # the banner: the message, the traceback behind Details
    assert message == f"Run {run_id} ({run['name']}) failed: {run['error_message'].strip()}"
    assert details == run["error_traceback"].rstrip()

    out = subprocess.run([sys.executable, "-m", "engine.cli", "--store", str(store.path), "show", str(run_id)],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=60)
    assert "trust_remote_code" in out.stdout and "Traceback" not in out.stdout + out.stderr
    assert "worker.log" in out.stdout  # where the traceback is


def test_a_restarted_run_forgets_the_last_error(store):
    run_id = store.create_run("r", {}, "/tmp/r", status="failed")
    store.update_run(run_id, error_type="ValueError", error_message="ValueError: x", error_traceback="Traceback\n")
    run = store.claim_run(run_id, claimant=os.getpid())
    assert (run["error_type"], run["error_message"], run["error_traceback"]) == (None, None, None)


def test_an_alert_keeps_its_code_in_a_column(store):
    run_id = store.create_run("r", {}, "/tmp/r")
    store.log_event(run_id, "alert", "grpo: 80% of completions were cut off", "grpo", 3, code="truncated")
    store.log_event(run_id, "info", "grpo: trained 3 steps", "grpo", 3)
    alert, info = store.events_since(run_id)
    assert (alert["code"], alert["message"], alert["step"]) == ("truncated", "grpo: 80% of completions were cut off", 3)
    assert info["code"] is None


@pytest.mark.parametrize("text, row", [
    ("run:3", {"kind": "run", "run_id": 3, "stage": None, "step": None, "path": None}),
    ("run:3:16", {"kind": "checkpoint", "run_id": 3, "stage": None, "step": 16, "path": None}),
    ("run:3:grpo:16", {"kind": "checkpoint", "run_id": 3, "stage": "grpo", "step": 16, "path": None}),
    ("base", {"kind": "base", "run_id": None, "stage": None, "step": None, "path": None}),
    ("builtin:tiny-random", {"kind": "model", "run_id": None, "path": "builtin:tiny-random"}),
    ("/models/my-adapter", {"kind": "model", "run_id": None, "path": "/models/my-adapter"}),
])
def test_an_evaluation_stores_each_source_as_a_row(store, text, row):
    eval_id = store.create_evaluation([text], "builtin:arithmetic", 2, {})
    (stored,) = store.get_evaluation(eval_id)["source_rows"]
    assert {k: stored[k] for k in row} == row and stored["label"] == text
    assert store.get_evaluation(eval_id)["sources"] == [text]


def test_evaluation_sources_keep_their_order_and_can_be_replaced(store):
    eval_id = store.create_evaluation(["run:1", "base"], "builtin:arithmetic", 2, {})
    store.set_eval_sources(eval_id, [{"kind": "base", "label": "base"},
                                     {"kind": "checkpoint", "label": "grpo step 2", "stage": "grpo", "step": 2,
                                      "run_id": 1, "path": "/runs/1/checkpoint-2"},
                                     {"kind": "trained", "label": "trained", "run_id": 1, "path": "/runs/1/final"}])
    ev = store.get_evaluation(eval_id)
    assert ev["sources"] == ["base", "grpo step 2", "trained"]
    assert [(r["kind"], r["step"]) for r in ev["source_rows"]] == [("base", None), ("checkpoint", 2), ("trained", None)]
    assert [e["sources"] for e in store.list_evaluations()] == [["base", "grpo step 2", "trained"]]


@pytest.mark.parametrize("text, words", [
    ("run:x", "write run:ID or run:ID:STEP"),
    ("run:99", "no run with id 99"),
    ("run:1:grpo:x", "write run:ID:STEP or run:ID:STAGE:STEP"),
])
def test_a_bad_source_is_named_in_its_error(store, text, words):
    store.create_run("r", {}, "/tmp/r")
    with pytest.raises(Exception, match=words) as err:
        resolve_source(text, store)
    assert text in str(err.value) or "99" in str(err.value)


def _evaluation(store, sources, run_id=None):
    eval_id = store.create_evaluation(sources, "builtin:arithmetic", 1, {}, run_id=run_id)
    store.add_generations([{"eval_id": eval_id, "source": s, "prompt_id": "p", "completion": "4"} for s in sources])
    return eval_id


def test_delete_run_removes_its_evaluations_sources_and_generations(store):
    run_id, other = store.create_run("gone", {}, "/tmp/a"), store.create_run("kept", {}, "/tmp/b")
    store.add_metrics(run_id, "grpo", 1, {"loss": 1.0})
    stage_eval = _evaluation(store, ["base", "trained"], run_id=run_id)  # its eval stage's
    named = _evaluation(store, ["run:%d" % run_id, "base"])  # `ponder compare run:ID base`
    both = _evaluation(store, ["run:%d" % run_id, "run:%d" % other])  # also the other run's: kept
    others = _evaluation(store, ["base"], run_id=other)
    unrelated = _evaluation(store, ["builtin:tiny-random"])
    store.delete_run(run_id)
    assert [e["id"] for e in store.list_evaluations()] == [both, others, unrelated]
    for eval_id in (stage_eval, named):
        assert store.generations(eval_id) == [] and store.eval_sources(eval_id) == []
    assert len(store.generations(both)) == 2 and store.get_evaluation(both)["sources"] == [
        f"run:{run_id}", f"run:{other}"]
    assert store.metrics_since(run_id) == [] and [r["id"] for r in store.list_runs()] == [other]
    assert store.db.conn.execute("SELECT COUNT(*) FROM eval_sources").fetchone()[0] == 4
