"""The reference_likelihood reward on the tiny model, alone and inside a real GRPO step."""

from __future__ import annotations

import math

import pytest

from engine.launch import create_run, spawn_worker
from engine.spec import ModelSpec, load_spec
from tests.conftest import SPECS


def test_scores_are_probabilities_and_match_a_direct_forward_pass():
    import torch

    from engine.models import load_model
    from engine.rewards.likelihood import ReferenceLikelihood

    model, tok, _ = load_model(ModelSpec(source="builtin:tiny-random"))
    reward = ReferenceLikelihood(tok, model)
    prompts = ["Q: 2+2?\n<think>\n", "Q: 3+3?\n<think>\n", "Q: 1+1?\n<think>\n"]
    completions = ["2+2=4\n</think>\n<answer>4</answer>", "no idea", "1+1=2\n</think>\n<answer>2</answer>"]
    values = reward(prompts, completions, answer=["4", "6", ""], prefix=["<think>\n"] * 3)
    assert values[2] is None  # no reference answer: nothing to score
    assert all(0 < v <= 1 for v in values[:2])
    # the first value by hand: geometric mean probability of "4</answer>" after the reasoning
    ctx = tok("Q: 2+2?\n<think>\n2+2=4\n</think>\n<answer>", add_special_tokens=False)["input_ids"]
    tgt = tok("4</answer>", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logps = torch.log_softmax(model(torch.tensor([ctx + tgt])).logits[0, :-1], -1)
    by_hand = math.exp(float(torch.stack([logps[len(ctx) - 1 + j, t] for j, t in enumerate(tgt)]).mean()))
    assert values[0] == pytest.approx(by_hand, rel=1e-4)


def test_grpo_step_with_reference_likelihood(store):
    spec = load_spec(SPECS / "smoke.toml").replace(**{"grpo.max_steps": 1,
                                                      "rewards.weights": {"reference_likelihood": 1.0}})
    run_id, run_dir = create_run(spec, store)
    assert spawn_worker(run_dir, store).wait(timeout=300) == 0, (run_dir / "worker.log").read_text()[-3000:]
    value = store.last_metrics(run_id)["values"]["rewards/reference_likelihood/mean"]
    assert 0 < value <= 1
