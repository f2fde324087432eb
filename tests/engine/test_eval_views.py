"""Checkpoint evaluation, pass@k curves, budget forcing and reuse, on the tiny model; the pure functions as tables."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from engine.evalstats import (
    frontier_points,
    pareto_front,
    pass_at_k,
    pass_at_k_curve,
    source_title,
    wilson_interval,
)
from engine.launch import create_run
from engine.spec import SpecInvalid, load_spec
from tests.conftest import ROOT, SPECS


def _exact(n, c, k):
    from math import comb

    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (10, 3, 2, 1 - 21 / 45),  # 1 - C(7,2)/C(10,2)
    (10, 3, 1, 0.3),  # pass@1 is the share right
    (10, 0, 10, 0.0),  # nothing right, even with every sample
    (10, 1, 10, 1.0),  # one right among all ten: pass@n = 1
    (8, 7, 2, 1.0),  # one wrong sample cannot fill two slots
    (200, 10, 100, _exact(200, 10, 100)),  # C(200,100) ~ 9e58: the product form stays exact enough
    (1000, 1, 500, 0.5),  # 1 - C(999,500)/C(1000,500) = 500/1000; binomials would overflow a float
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)  # more right than samples
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)  # k beyond n


def test_pass_at_k_curve_is_the_mean_per_k_and_rises():
    curve = pass_at_k_curve([(4, 1), (4, 0), (4, 4)])
    assert len(curve) == 4
    assert curve[0] == pytest.approx((0.25 + 0 + 1) / 3)  # pass@1 = mean accuracy
    assert curve[1] == pytest.approx((0.5 + 0 + 1) / 3)  # 1 - C(3,2)/C(4,2) = 0.5 for the first prompt
    assert curve[-1] == pytest.approx(2 / 3)  # pass@n: the prompts with any right sample
    assert curve == sorted(curve)


@pytest.mark.parametrize(("points", "front"), [
    ([(10, 0.5), (20, 0.6), (30, 0.55)], [0, 1]),  # the third costs more and scores less than the second
    ([(10, 0.5), (10, 0.7)], [1]),  # same tokens: the more accurate one
    ([(50, 0.9), (10, 0.1), (30, 0.9)], [1, 2]),  # same accuracy: the cheaper one; order of x
    ([(10, 0.5), (5, float("nan"))], [0]),  # a NaN point is never on the front
    ([], []),
])
def test_pareto_front(points, front):
    assert pareto_front(points) == front


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (0, 10, 0.0, 0.2775),  # no success: the interval still has width
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
])
def test_wilson_interval(k, n, lo, hi):
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_titles_say_what_a_column_is():
    assert source_title("base", {"role": "base"}) == "base"
    assert source_title("sft", {"role": "sft"}) == "after SFT"
    assert source_title("grpo step 16", {"role": "checkpoint", "stage": "grpo", "step": 16}) == "checkpoint 16"
    assert source_title("sft step 2", {"role": "checkpoint", "stage": "sft", "step": 2}) == "SFT checkpoint 2"
    assert source_title("builtin:tiny-random") == "builtin:tiny-random"
    points = frontier_points({"base": {"accuracy": 0.2, "tokens": 50.0, "role": "base", "ci95": [0.1, 0.3]},
                              "trained": {"accuracy": 0.4, "tokens": 20.0, "role": "trained", "ci95": [0.3, 0.5]},
                              "deltas": {"d_accuracy_pct": 100.0}})
    assert [(p["title"], p["pareto"]) for p in points] == [("base", False), ("trained", True)]


@pytest.mark.parametrize(("section", "field", "words"), [
    ({"checkpoints": "some"}, "eval.checkpoints", '"final", "all" or a list'),
    ({"checkpoints": []}, "eval.checkpoints", "non-empty list"),
    ({"checkpoints": [0, 4]}, "eval.checkpoints", "steps start at 1"),
    ({"budgets": [8, 0]}, "eval.budgets", "at least 1"),
    ({"budgets": [8, 8]}, "eval.budgets", "twice"),
    ({"budgets": [8, 300]}, "eval.budgets", "no room to answer"),
    ({"budgets": ["8"]}, "eval.budgets", "must be"),
])
def test_eval_spec_checks_checkpoints_and_budgets(section, field, words):
    from engine.spec import spec_from_dict

    with pytest.raises(SpecInvalid) as info:
        spec_from_dict({"stages": ["grpo", "eval"], "eval": section})
    assert words in info.value.by_field()[field]


def test_eval_spec_accepts_checkpoints_and_budgets():
    from engine.spec import spec_from_dict

    spec = spec_from_dict({"stages": ["grpo", "eval"], "eval": {"checkpoints": [2, 4], "budgets": [8, 16]}})
    assert spec.eval.checkpoints == [2, 4] and spec.eval.budgets == [8, 16]
    assert spec_from_dict({"stages": ["eval"], "eval": {"checkpoints": "all"}}).eval.checkpoints == "all"


# ---- generation on the tiny model -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random (non-zero) B matrices, saved like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models import resolve_source

    base = resolve_source("builtin:tiny-random")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _run_with_checkpoints(store, adapter: Path, steps=(1, 2, 3), final: bool = True) -> int:
    """A GRPO run with checkpoints at `steps` and, if `final`, its trained adapter (else it failed before it)."""
    spec = load_spec(SPECS / "smoke.toml").replace(stages=["grpo", "eval"])
    run_id, run_dir = create_run(spec, store)
    for step in steps:
        ckpt = run_dir / "checkpoints" / "grpo" / f"checkpoint-{step}"
        shutil.copytree(adapter, ckpt)
        store.add_artifact(run_id, "checkpoint", ckpt, {"step": step, "stage": "grpo"}, stage="grpo")
    if final:
        shutil.copytree(adapter, run_dir / "adapter")
        store.add_artifact(run_id, "adapter", run_dir / "adapter", {"step": steps[-1], "stage": "grpo"}, stage="grpo")
    store.update_run(run_id, status="succeeded" if final else "failed")
    return run_id


def test_checkpoints_all_from_the_cli_stores_a_summary_per_checkpoint(store, adapter, tmp_path):
    run_id = _run_with_checkpoints(store, adapter)
    plot = tmp_path / "frontier.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "desktop.entry", "eval", f"run:{run_id}", "--checkpoints", "all",
                          "--n", "2", "--max-tokens", "4", "--plot", str(plot)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ETA" in out.stdout  # progress lines
    (ev,) = store.list_evaluations()
    summary = ev["summary"]
    checkpoints = {k: v for k, v in summary.items() if k != "deltas" and v["role"] == "checkpoint"}
    assert sorted(v["step"] for v in checkpoints.values()) == [1, 2, 3]
    assert ev["sources"] == ["base", "grpo step 1", "grpo step 2", "grpo step 3", "trained"]
    assert {g["source"] for g in store.generations(ev["id"])} == set(ev["sources"])
    assert ev["progress"] == ev["total"] == 5 * 2
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_checkpoints_of_a_run_that_failed_before_its_final_adapter_can_be_evaluated(store, adapter, capsys):
    """The check of the sources before an evaluation is registered reads a run:ID row as the evaluation does:
    with --checkpoints it needs checkpoints, not the final adapter."""
    from engine import cli

    run_id = _run_with_checkpoints(store, adapter, steps=(1, 2), final=False)
    assert cli.main(["--store", str(store.path), "eval", f"run:{run_id}", "--n", "2", "--max-tokens", "4"]) \
        == cli.EXIT_USAGE  # the final adapter is what it would score
    assert "has no final adapter yet" in capsys.readouterr().err and store.list_evaluations() == []
    assert cli.main(["--store", str(store.path), "eval", f"run:{run_id}", "--checkpoints", "all", "--n", "2",
                     "--max-tokens", "4"]) == 0
    (ev,) = store.list_evaluations()
    assert ev["status"] == "succeeded" and ev["sources"] == ["base", "grpo step 1", "grpo step 2"]


def test_checkpoint_steps_that_do_not_exist_are_named(store, adapter):
    from engine.evaluate import run_sources

    run_id = _run_with_checkpoints(store, adapter, steps=(2,))
    with pytest.raises(ValueError, match=r"no checkpoint at step 5 \(checkpoints: 2\)"):
        run_sources(store, run_id, [2, 5])
    assert [s.label for s in run_sources(store, run_id, [2])] == ["base", "grpo step 2", "trained"]


def test_budget_forcing_cuts_thinking_at_b_tokens_and_answers():
    from engine.evaluate import FORCED_CLOSE, EvalSettings, generate_budgeted
    from engine.models import load_model
    from engine.prompts import render_prompt
    from engine.spec import ModelSpec

    model, tokenizer, _ = load_model(ModelSpec(source="builtin:tiny-random"))
    prompts = [render_prompt(q, tokenizer, "think") for q in ("What is 2 + 3?", "What is 7 * 6?")]
    settings = EvalSettings(max_completion_length=16, batch_size=2)
    forced = tokenizer(FORCED_CLOSE, add_special_tokens=False)["input_ids"]
    for budget in (3, 6):
        groups = generate_budgeted(model, tokenizer, prompts, settings, budget)
        for (text, ids), in groups:
            # the random model never closes its think block itself: the close comes at exactly token B
            assert "</think>" not in tokenizer.decode(ids[:budget], skip_special_tokens=True)
            assert ids[budget:budget + len(forced)] == forced
            assert len(ids) <= budget + len(forced) + 32 + 4  # the answer has its own small allowance
            answer = text.split("</think>", 1)[1]
            assert "<answer>" in answer and answer.rstrip().endswith("</answer>")


def test_a_reused_evaluation_does_not_generate_again(store, adapter, monkeypatch):
    import engine.evaluate as evaluate

    run_id = _run_with_checkpoints(store, adapter, steps=(2,))
    settings = {"num_samples": 1, "max_completion_length": 6, "budgets": [2], "checkpoints": [2]}
    first = store.create_evaluation([f"run:{run_id}"], "builtin:arithmetic", 2, settings)
    summary = evaluate.run_evaluation(store, first)
    assert summary["grpo step 2"]["budgets"][0]["budget"] == 2
    assert not summary["grpo step 2"]["reused"]

    def no_generation(*_args, **_kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(evaluate, "evaluate_source", no_generation)
    second = store.create_evaluation([f"run:{run_id}"], "builtin:arithmetic", 2, settings)
    again = evaluate.run_evaluation(store, second)
    assert all(again[label]["reused"] for label in ("base", "grpo step 2", "trained"))
    for label in ("base", "grpo step 2", "trained"):
        for key in ("accuracy", "tokens", "budgets"):
            assert again[label][key] == summary[label][key]
    assert len(store.generations(second)) == len(store.generations(first)) == 3 * 2 * 2  # sources x prompts x
    # (no budget, budget 2)
    other = store.create_evaluation([f"run:{run_id}"], "builtin:arithmetic", 3, settings)  # other prompts
    with pytest.raises(AssertionError, match="generated again"):
        evaluate.run_evaluation(store, other)


def test_a_store_from_before_gains_the_new_columns(tmp_path):
    from engine.store import RunStore

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)  # today's main: generations without budget/key, evaluations without started
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE generations (id INTEGER PRIMARY KEY, eval_id INTEGER, source TEXT, prompt_id TEXT,"
                 " prompt TEXT, completion TEXT, tokens INTEGER, think_tokens INTEGER, answer_tokens INTEGER, "
                 "mode TEXT, correct INTEGER, reward FLOAT, difficulty INTEGER, sample INTEGER)")
    conn.execute("INSERT INTO generations (eval_id, source, prompt_id, tokens) VALUES (1, 'base', 'p1', 5)")
    conn.commit()
    conn.close()
    with RunStore(path) as store:
        assert {"budget", "key"} <= set(store.db["generations"].columns_dict)
        assert "started" in store.db["evaluations"].columns_dict
        assert store.generations(1)[0]["tokens"] == 5 and store.generations(1)[0]["budget"] is None


def test_titles_of_sources_named_by_run():
    assert source_title("run:3", {"role": "trained"}) == "run #3 trained"
    assert source_title("run:3:grpo:4", {"role": "checkpoint", "stage": "grpo", "step": 4}) == "run #3 checkpoint 4"


def test_model_card_puts_every_model_and_checkpoint_side_by_side(store, tmp_path):
    from engine.export import Picked, _evaluation_section

    run_id = store.create_run("card", {}, tmp_path)
    level = {"accuracy/d1": 0.5, "think_rate/d1": 1.0, "tokens/d1": 30.0}
    summary = {"base": {"accuracy": 0.25, "tokens": 50.0, "role": "base", "prompts": 4, **level},
               "grpo step 2": {"accuracy": 0.5, "tokens": 30.0, "role": "checkpoint", "stage": "grpo", "step": 2,
                               **level},
               "trained": {"accuracy": 0.5, "tokens": 28.0, "role": "trained", **level}}
    eval_id = store.create_evaluation(list(summary), "builtin:arithmetic", 4, {"num_samples": 1}, run_id=run_id)
    store.update_evaluation(eval_id, status="succeeded", summary=summary)
    lines = _evaluation_section(store, run_id, Picked(tmp_path, "grpo", 2, True))
    assert "| | base model | checkpoint 2 | trained |" in lines
    assert "| level | base model | checkpoint 2 | trained |" in lines


def test_the_eval_stage_scores_every_checkpoint_and_budget(store):
    from engine.launch import spawn_worker

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["grpo", "eval"], "grpo.max_steps": 3, "grpo.save_steps": 1,  # three checkpoints
        "data.eval_size": 2, "eval.max_completion_length": 6, "eval.checkpoints": "all", "eval.budgets": [2]})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=600) == 0, (run_dir / "worker.log").read_text()[-3000:]
    (ev,) = store.list_evaluations(run_id)
    assert ev["sources"] == ["base", "grpo step 1", "grpo step 2", "grpo step 3", "trained"]
    summary = ev["summary"]
    assert [summary[s]["step"] for s in ev["sources"][1:4]] == [1, 2, 3]
    assert all(summary[s]["budgets"][0]["budget"] == 2 for s in ev["sources"])
    assert len(store.generations(ev["id"])) == 5 * 2 * 2  # sources x prompts x (no budget, budget 2)
    stage = next(s for s in store.stages(run_id) if s["stage"] == "eval")
    assert stage["progress"] == stage["total_steps"] == 5 * 2 * 2
