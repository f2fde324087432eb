"""The judge: preference pairs, a real RewardTrainer run of the tiny model, and the `judge` GRPO reward."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest

from engine.spec import load_spec
from engine.stages.judge import judge_text, preference_pairs, wrong_trace
from tests.conftest import SPECS


def _context(store, tmp_path, **changes):
    from engine.models import choose_placement
    from engine.stages import StageContext

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["sft", "judge"],
        "data.train_size": 4,       # 3 pairs a row: 12 pairs
        "judge.max_steps": 3,       # enough to see the weights move and a metric per step
        "judge.batch_size": 2,      # 2 pairs = 4 sequences a step
        "judge.max_length": 256,    # the long arithmetic traces are under ~200 tokens
        "judge.eval_pairs": 6,      # two of each kind
        "judge.learning_rate": 1e-3,  # large, so three steps visibly move the weights
        **changes,
    })
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_id = store.create_run(spec.name, spec.to_dict(), run_dir)
    return StageContext(store=store, run_id=run_id, run_dir=run_dir, spec=spec,
                        placement=choose_placement("cpu"))


# ---- pairs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("trace", "answer", "expected"), [
    ("26+26=52; 93+52=145; 145-2=143", "143", r"145-2=(?!143)\d+$"),  # the result changes, the steps stay
    ("So 145 - 2 = 143. The answer is 143.", "143", r"= (\d+)\. The answer is \1\.$"),  # every mention, alike
    ("1430 + 1 = 1431", "143", None),  # only inside other numbers: nothing to change
    ("x = 1/2", "1/2", None),  # not a plain number
    ("2.5 * 2 = 5.0", "5.0", r"= \d+\.0$"),  # decimals keep their places
])
def test_wrong_trace_changes_the_answer_only(trace, answer, expected):
    import re

    out = wrong_trace(trace, answer, random.Random(0))
    if expected is None:
        assert out is None
    else:
        assert out is not None and re.search(expected, out), out
        assert answer not in re.findall(r"\d+(?:\.\d+)?", out)


def test_pairs_prefer_sketch_then_verbose_then_wrong():
    rows = [{"id": "a", "question": "What is 55 + 37?", "answer": "92", "sketch": "55+37=92",
             "reasoning": "Okay, 55 + 30 = 85, and 7 more gives 92. So the answer is 92."},
            {"id": "b", "question": "Name it.", "answer": "blue", "sketch": "", "reasoning": "It is blue."}]
    pairs = preference_pairs(rows, seed=0)
    kinds = {p["kind"]: p for p in pairs}
    assert set(kinds) == {"sketch_vs_verbose", "sketch_vs_wrong", "verbose_vs_wrong"}  # row b has no number
    assert kinds["sketch_vs_verbose"]["chosen"] == "55+37=92"
    wrong = kinds["sketch_vs_wrong"]["rejected"]
    assert wrong.startswith("55+37=") and "92" not in wrong
    assert "92" not in kinds["verbose_vs_wrong"]["rejected"]
    # the teacher's sketch (from the SFT stage) replaces the row's own
    assert preference_pairs(rows[:1], seed=0, sketches={"a": "85+7=92"})[0]["chosen"] == "85+7=92"
    assert judge_text(" What is 2+2? ", "2+2=4\n", "<|im_end|>") == "What is 2+2?\n2+2=4<|im_end|>"


# ---- training ---------------------------------------------------------------------------------------

def test_judge_trains_reports_accuracy_and_loads_back(store, tmp_path):
    from safetensors.torch import load_file

    from engine.data import load_examples
    from engine.rewards.judge import judge_reward, load_judge
    from engine.stages import judge

    ctx = _context(store, tmp_path)
    assert judge.run(ctx) == "succeeded"

    path = ctx.run_dir / "judge"
    assert ctx.outputs["judge_path"] == path
    weights = load_file(str(path / "adapter_model.safetensors"))
    assert any("score" in k for k in weights)  # the head is saved with the adapter
    assert sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k) > 0  # the weights moved

    metrics = store.metrics_since(ctx.run_id)
    assert {m["step"] for m in metrics} == {1, 2, 3}
    final = {m["name"]: m["value"] for m in metrics if m["step"] == 3}
    assert 0 <= final["judge/pairwise_accuracy"] <= 1 and "loss" in final
    (artifact,) = store.artifacts(ctx.run_id, "judge")
    assert artifact["meta"]["pairwise_accuracy"] == final["judge/pairwise_accuracy"]
    assert any("pairwise accuracy" in e["message"] for e in store.events_since(ctx.run_id))

    # the saved judge scores the held-out pairs exactly as the trained one did
    model, tokenizer, meta = load_judge(path, ctx.placement)
    rows = load_examples("builtin:arithmetic", n=6, seed=0, split="eval")
    pairs = judge._interleave_kinds(judge.preference_pairs(rows, ctx.spec.seed + 1))[:6]
    again = judge.pairwise_accuracy(model, tokenizer, pairs, "cpu", meta["max_length"])
    assert again["all"] == pytest.approx(final["judge/pairwise_accuracy"])

    # GRPO builds the reward from ctx.outputs["judge_path"]; it scores only correct answers
    reward = judge_reward(ctx.outputs["judge_path"], ctx.placement)
    values = reward(prompts=["p", "p"], completions=["1+1=2\n</think>\n<answer>2</answer>",
                                                     "1+1=3\n</think>\n<answer>3</answer>"],
                    prefix=["<think>\n"] * 2, answer=["2", "2"], question=["What is 1 + 1?"] * 2,
                    prompt_id=["x", "x"])
    assert values == [0.5, 0.0]


# ---- the GRPO reward --------------------------------------------------------------------------------

@pytest.fixture
def untrained_judge(tmp_path) -> Path:
    """A judge folder as the stage saves it, untrained: LoRA (B = 0) on the tiny model, random score head."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForSequenceClassification

    from engine.models import load_tokenizer, lora_config, resolve_source
    from engine.spec import LoraSpec

    folder = resolve_source("builtin:tiny-random")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    model = get_peft_model(model, lora_config(LoraSpec(r=4, alpha=8), task_type="SEQ_CLS"))
    path = tmp_path / "judge"
    model.save_pretrained(path)
    load_tokenizer(folder).save_pretrained(path)
    (path / "judge.json").write_text(json.dumps({"source": "builtin:tiny-random", "max_length": 256}))
    return path


def _completion(think: str, answer: str) -> str:
    return f"{think}\n</think>\n<answer>{answer}</answer>"


def test_judge_reward_pays_correct_answers_normalised_per_group(untrained_judge):
    from engine.models import choose_placement
    from engine.rewards.judge import judge_reward

    reward = judge_reward(untrained_judge, choose_placement("cpu"))
    assert reward.__name__ == "judge"
    batch = [  # (prompt_id, think, answer given, reference)
        ("a", "3+4=7", "7", "7"),                                  # correct, terse
        ("a", "Okay, so 3 plus 4. 3 + 4 = 7. So it is 7.", "7", "7"),  # correct, chatty
        ("a", "3*4=12; hmm", "7", "7"),                            # correct, odd thinking
        ("a", "3+4=8", "8", "7"),                                  # wrong: 0 however it reads
        ("b", "10/2=5", "5", "5"),                                 # the only correct one of its group: 0.5
        ("b", "10/2=4", "4", "5"),                                 # wrong: 0
        ("c", "2*2=4", "4", "4"),                                  # all equal thinking: 0.5 each
        ("c", "2*2=4", "4", "4"),
        ("d", "no answer block", None, "1"),                       # no answer at all: wrong, 0
    ]
    completions = [_completion(t, a) if a is not None else t for _, t, a, _ in batch]
    kwargs = {"prefix": ["<think>\n"] * len(batch), "answer": [g for *_, g in batch],
              "question": [f"Question {p}?" for p, *_ in batch], "prompt_id": [p for p, *_ in batch]}
    values = reward(prompts=[p for p, *_ in batch], completions=completions, **kwargs)

    assert all(v is not None and 0 <= v <= 1 for v in values)
    group_a = values[:3]
    assert min(group_a) == 0.0 and max(group_a) == 1.0  # min-max within the group's correct answers
    assert values[3] == 0.0 and values[5] == 0.0 and values[8] == 0.0
    assert values[4] == 0.5 and values[6] == values[7] == 0.5

    # one group alone normalises the same way: groups do not see each other
    alone = reward(prompts=["a"] * 4, completions=completions[:4],
                   **{k: v[:4] for k, v in kwargs.items()})
    assert alone == values[:4]

    # pickle round-trip: the loaded model is left behind and reloaded on the next call
    copy = pickle.loads(pickle.dumps(reward))
    assert copy._loaded is None and copy.__name__ == "judge"
    assert copy(prompts=[p for p, *_ in batch], completions=completions, **kwargs) == pytest.approx(values)


def test_judge_reward_leaves_rows_without_reference_out(untrained_judge):
    from engine.models import choose_placement
    from engine.rewards.judge import judge_reward

    reward = judge_reward(untrained_judge, choose_placement("cpu"))
    values = reward(prompts=["a", "a"], completions=[_completion("1+1=2", "2")] * 2, prefix=["<think>\n"] * 2,
                    answer=["", "2"], question=["What is 1 + 1?"] * 2, prompt_id=["a", "a"])
    assert values == [None, 0.5]  # no reference: left out; the one correct answer of its group: 0.5
    with pytest.raises(ValueError, match="question"):
        reward(prompts=["a"], completions=[_completion("1+1=2", "2")], prefix=["<think>\n"], answer=["2"])
