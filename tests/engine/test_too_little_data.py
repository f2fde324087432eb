"""Too little data: a run whose data cannot feed one step of a stage fails before any stage starts,
with the counts, instead of ending 'succeeded' with an adapter that trained on nothing."""

from __future__ import annotations

import json

import pytest

from engine.data import DataError, split_of
from engine.launch import create_run
from engine.spec import load_spec
from tests.conftest import SPECS


def _rows(split: str, n: int) -> list[dict]:
    out, i = [], 0
    while len(out) < n:
        question = f"What is {i} plus {i + 2}?"
        if split_of(question) == split:
            out.append({"question": question, "answer": str(2 * i + 2)})
        i += 1
    return out


def _file(tmp_path, train: int, eval_: int):
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows("train", train) + _rows("eval", eval_)))
    return str(path)


def test_a_run_with_one_training_prompt_fails_before_training(store, tmp_path):
    from engine.worker import run_worker

    # the smoke spec takes 2 prompts per step (batch 8 / 4 generations); the file has 1 in train, 5 in eval
    spec = load_spec(SPECS / "smoke.toml").replace(**{"data.source": _file(tmp_path, 1, 5)})
    run_id, run_dir = create_run(spec, store)
    assert run_worker(run_dir, store) == 1
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    message = run["error_message"].splitlines()[0]
    for words in ("too little data", "1 train row", "6 rows", "5 in the eval split", "one GRPO step", "at least 2"):
        assert words in message, message
    assert not store.stages(run_id), "a stage started"
    assert not store.metrics_since(run_id) and not (run_dir / "adapter").exists()


@pytest.mark.parametrize(("stages", "train", "eval_", "says"), [
    (["sft"], 0, 3, "the sft stage needs at least 1"),
    (["grpo", "eval"], 4, 0, "0 eval rows"),
    (["grpo"], 3, 0, "one GRPO step (batch_size 16 x gradient_accumulation_steps 1 / num_generations 4) "
                     "needs at least 4"),
])
def test_check_data_names_the_stage_and_the_counts(tmp_path, stages, train, eval_, says):
    from engine.stages import check_data

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "data.source": _file(tmp_path, train, eval_), "stages": stages, "grpo.batch_size": 16,
        "rewards.custom_file": ""})
    with pytest.raises(DataError, match="too little data") as info:
        check_data(spec)
    assert says in str(info.value), info.value


def test_enough_data_passes(tmp_path):
    from engine.stages import check_data

    check_data(load_spec(SPECS / "smoke.toml").replace(**{"data.source": _file(tmp_path, 2, 1),
                                                          "stages": ["grpo", "eval"]}))


def test_preflight_reports_too_little_data_as_an_error(tmp_path):
    from engine.preflight import check

    spec = load_spec(SPECS / "smoke.toml").replace(**{"data.source": _file(tmp_path, 1, 3)})
    errors = {f.field: f.message for f in check(spec) if f.level == "error"}
    assert "too little data" in errors["data.source"] and "1 train row" in errors["data.source"], errors
