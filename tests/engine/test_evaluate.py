"""Evaluation: the paper metrics, and real generation with the tiny model through the CLI and the eval stage."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.evaluate import deltas, pass_at_k, summarize
from engine.launch import create_run, spawn_worker
from engine.spec import load_spec
from tests.conftest import ROOT, SPECS


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (4, 0, 1, 0.0),  # nothing right
    (4, 4, 2, 1.0),  # everything right
    (4, 1, 1, 0.25),  # pass@1 is the share right
    (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (2, 1, 2, 1.0),  # fewer wrong samples than k: always a right one among k
])
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def _row(pid, correct, tokens, think, mode="think", difficulty=1):
    return {"prompt_id": pid, "correct": correct, "tokens": tokens, "think_tokens": think,
            "answer_tokens": tokens - think, "mode": mode, "difficulty": difficulty}


def test_summary_and_deltas():
    rows = [_row("a", 1, 10, 6), _row("a", 0, 20, 16), _row("b", 1, 4, 0, "no_think", 2), _row("b", 1, 6, 0,
                                                                                              "no_think", 2)]
    s = summarize(rows, num_samples=2)
    assert s["accuracy"] == pytest.approx(0.75)
    assert s["pass@2"] == pytest.approx(1.0)  # each prompt has a right sample
    assert s["tokens"] == pytest.approx(10.0)
    assert s["think_tokens"] == pytest.approx(5.5)
    assert s["think_rate"] == pytest.approx(0.5)
    assert s["think_rate/d2"] == 0.0 and s["accuracy/d1"] == 0.5
    assert s["tokens_correct"] == pytest.approx(20 / 3) and s["tokens_wrong"] == 20
    assert s["eot"] == pytest.approx(0.75 / 5.5)
    d = deltas({"accuracy": 0.5, "tokens": 100}, {"accuracy": 0.6, "tokens": 48})
    assert d == {"d_accuracy_pct": pytest.approx(20.0), "d_tokens_pct": pytest.approx(52.0)}


def test_compare_two_sources_from_the_cli(store):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "compare", "builtin:tiny-random",
                          "builtin:tiny-random", "--n", "4", "--max-tokens", "8", "--samples", "2",
                          "--temperature", "0.8"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pass@2" in out.stdout and "d_tokens_pct" in out.stdout
    (ev,) = store.list_evaluations()
    assert ev["status"] == "succeeded" and ev["progress"] == ev["total"] == 8
    gens = store.generations(ev["id"])
    assert len(gens) == 2 * 4 * 2  # two sources, four prompts, two samples each
    assert {g["sample"] for g in gens} == {0, 1}
    assert all(g["tokens"] == g["think_tokens"] + g["answer_tokens"] for g in gens)
    assert set(ev["summary"]) == {"builtin:tiny-random", "builtin:tiny-random (2)", "deltas"}
    assert {g["source"] for g in gens} == {"builtin:tiny-random", "builtin:tiny-random (2)"}
    assert [(r["kind"], r["label"], r["path"]) for r in ev["source_rows"]] == [  # what was scored, as rows
        ("model", "builtin:tiny-random", "builtin:tiny-random"),
        ("model", "builtin:tiny-random (2)", "builtin:tiny-random")]


def test_unknown_source_fails_clearly(store):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "eval", "run:99", "--n", "2"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2  # bad input: refused before anything is written
    assert "no run with id 99" in out.stderr and "Traceback" not in out.stdout + out.stderr
    assert store.list_evaluations() == []


def test_grpo_then_eval_stage(store):
    spec = load_spec(SPECS / "smoke.toml").replace(**{"stages": ["grpo", "eval"], "grpo.max_steps": 1,
                                                      "data.eval_size": 3, "eval.max_completion_length": 8})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-3000:]
    (ev,) = store.list_evaluations(run_id)
    assert ev["sources"] == ["base", "trained"] and ev["status"] == "succeeded"
    assert [(r["kind"], r["run_id"]) for r in ev["source_rows"]] == [("base", None), ("trained", run_id)]
    assert len(store.generations(ev["id"])) == 2 * 3
    last = store.last_metrics(run_id, "eval")["values"]
    assert {"eval/accuracy", "eval/tokens", "eval/base/accuracy", "eval/think_rate"} <= set(last)
    assert [s["status"] for s in store.stages(run_id)] == ["succeeded", "succeeded"]
    (said,) = [e["message"] for e in store.events_since(run_id) if e["message"].startswith("eval: accuracy")]
    assert "(base " in said and "nan" not in said  # a base that scores 0 has no relative change to print
