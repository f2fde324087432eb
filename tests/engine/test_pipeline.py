"""The whole pipeline on the tiny model: sft -> judge -> grpo (sketch preset, judge reward) -> eval."""

from __future__ import annotations

from engine.launch import create_run, spawn_worker
from engine.spec import load_spec
from tests.conftest import SPECS


def test_sft_judge_grpo_eval(store):
    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["sft", "judge", "grpo", "eval"], "rewards.preset": "sketch", "sft.max_steps": 3,
        "sft.batch_size": 4, "judge.max_steps": 2, "judge.batch_size": 4, "judge.eval_pairs": 6,
        "grpo.max_steps": 2, "data.eval_size": 3, "eval.max_completion_length": 8})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=600) == 0, (run_dir / "worker.log").read_text()[-3000:]
    assert [(s["stage"], s["status"]) for s in store.stages(run_id)] == [
        ("sft", "succeeded"), ("judge", "succeeded"), ("grpo", "succeeded"), ("eval", "succeeded")]
    kinds = {(a["stage"], a["kind"]) for a in store.artifacts(run_id)}
    assert {("sft", "adapter"), ("judge", "judge"), ("grpo", "adapter")} <= kinds
    grpo = store.last_metrics(run_id, "grpo")["values"]
    assert {"rewards/judge/mean", "rewards/accuracy/mean", "rewards/format/mean"} <= set(grpo)
    assert "judge/pairwise_accuracy" in {m["name"] for m in store.metrics_since(run_id) if m["stage"] == "judge"}
    (ev,) = store.list_evaluations(run_id)
    assert ev["sources"] == ["base", "sft", "trained"]
    assert {"eval/accuracy", "eval/sft/accuracy", "eval/base/accuracy", "eval/d_tokens_pct"} <= set(
        store.last_metrics(run_id, "eval")["values"])
    events = " ".join(e["message"] for e in store.events_since(run_id))
    assert "sft" in events and "judge" in events
