"""Real SFT cold-start runs of the tiny model, in-process: training, conversion report, skip, teacher."""

from __future__ import annotations

import json
from pathlib import Path

from engine.spec import load_spec
from tests.conftest import SPECS


def _context(store, tmp_path, **changes):
    from engine.models import choose_placement
    from engine.stages import StageContext

    spec = load_spec(SPECS / "smoke.toml").replace(**{
        "stages": ["sft", "judge"],
        "data.train_size": 8,      # 4 steps x 2 examples: every example seen once
        "sft.max_steps": 3,        # enough to see the LoRA weights move and a metric per step
        "sft.batch_size": 2,       # tiny batches keep a step well under a second
        "sft.max_length": 192,     # the chat prompt is ~110 tokens; the long traces fit too
        "sft.learning_rate": 1e-3,  # large, so three steps visibly move the LoRA weights
        **changes,
    })
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_id = store.create_run(spec.name, spec.to_dict(), run_dir)
    return StageContext(store=store, run_id=run_id, run_dir=run_dir, spec=spec,
                        placement=choose_placement("cpu"))


def _events(store, run_id) -> list[str]:
    return [e["message"] for e in store.events_since(run_id)]


def _lora_b_norm(adapter_dir: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


def test_sft_trains_the_adapter_and_reports_every_step(store, tmp_path):
    from peft import PeftModel

    from engine.models import load_model
    from engine.stages import sft

    ctx = _context(store, tmp_path)
    assert sft.run(ctx) == "succeeded"

    adapter = ctx.run_dir / "sft-adapter"
    assert ctx.outputs["sft_adapter"] == adapter
    assert _lora_b_norm(adapter) > 0  # LoRA B starts at zero: the weights moved
    (artifact,) = store.artifacts(ctx.run_id, "adapter")
    assert artifact["path"] == str(adapter) and artifact["stage"] == "sft"
    assert 0 < artifact["meta"]["token_reduction"] < 1

    by_step: dict[int, set[str]] = {}
    for m in store.metrics_since(ctx.run_id):
        by_step.setdefault(m["step"], set()).add(m["name"])
    assert sorted(by_step) == [0, 1, 2, 3]
    assert by_step[0] == {"sft/token_reduction"}
    for step in (1, 2, 3):
        assert {"loss", "learning_rate", "step_time"} <= by_step[step]
    assert any("fewer tokens than the long traces" in m for m in _events(store, ctx.run_id))

    base, _, _ = load_model(ctx.spec.model, placement=ctx.placement)
    loaded = PeftModel.from_pretrained(base, str(adapter))
    assert any("lora_B" in name for name, _ in loaded.named_parameters())


def test_sft_completions_are_the_response_and_the_prompt_ends_in_think(store, tmp_path):
    from engine.models import load_tokenizer, resolve_source
    from engine.stages import sft

    ctx = _context(store, tmp_path)
    from engine.data import load_examples

    rows = load_examples("builtin:arithmetic", n=4, seed=0, split="train")
    kept, info = sft.collect_traces(ctx, rows)
    assert [t for _, t in kept] == [r["sketch"] for r in rows]  # built-in sketches are used as they are
    assert info == {"converted": 0, "dropped": 0, "from_data": 4}
    data = sft.build_dataset(kept, load_tokenizer(resolve_source("builtin:tiny-random")))
    assert data[0]["prompt"].endswith("<|im_start|>assistant\n<think>\n")
    assert data[0]["completion"] == f"{rows[0]['sketch']}\n</think>\n<answer>{rows[0]['answer']}</answer>"


def test_rows_without_sketch_get_rule_sketches(store, tmp_path):
    from engine.data.sketch import to_sketch
    from engine.stages import sft

    ctx = _context(store, tmp_path)
    long = "Okay, let me see. 12 * 8 = 96. Wait, let me double-check: 12 * 8 = 96. So the answer is 96."
    rows = [{"id": "a", "question": "12*8?", "answer": "96", "reasoning": long, "sketch": ""},
            {"id": "b", "question": "1+1?", "answer": "2", "reasoning": "", "sketch": ""}]  # nothing to learn
    kept, info = sft.collect_traces(ctx, rows)
    assert [(r["id"], t) for r, t in kept] == [("a", to_sketch(long))]
    assert info == {"converted": 1, "dropped": 1, "from_data": 0}


def test_data_without_traces_is_skipped_with_the_reason(store, tmp_path):
    from engine.stages import sft

    data = tmp_path / "plain.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(40)))
    ctx = _context(store, tmp_path, **{"data.source": str(data)})
    assert sft.run(ctx) == "skipped"
    (warning,) = [e for e in store.events_since(ctx.run_id) if e["level"] == "warning"]
    assert "skipped" in warning["message"] and "reasoning" in warning["message"]
    assert not store.metrics_since(ctx.run_id) and "sft_adapter" not in ctx.outputs


def test_teacher_writes_one_sketch_per_trace(tmp_path):
    from engine.models import choose_placement
    from engine.stages import sft

    # a random-init teacher writes noise; what matters is one non-empty sketch per trace, in order
    traces = ["Okay. 2 + 3 = 5. So the answer is 5.",
              "Hmm, 4 * 6 = 24, let me verify: 4 * 6 = 24. The answer is 24."]
    out = sft.teacher_sketches(traces, "builtin:tiny-random", "Sketch this: {reasoning}",
                               choose_placement("cpu"), max_new_tokens=8)
    assert len(out) == 2 and all(s.strip() for s in out)


def test_teacher_sketches_are_made_once_and_kept_for_resume_and_judge(store, tmp_path, monkeypatch):
    from engine.data import load_examples
    from engine.stages import sft

    data = tmp_path / "traces.jsonl"
    why = "Okay, let me think. {i} * 3 = {p}. So the answer is {p}."
    rows = [{"q": f"What is {i} * 3?", "a": str(3 * i), "why": why.format(i=i, p=3 * i)} for i in range(40)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ctx = _context(store, tmp_path, **{"data.source": str(data), "data.question": "q", "data.answer": "a",
                                       "data.reasoning": "why", "sft.converter": "teacher",
                                       "sft.teacher_source": "builtin:tiny-random",
                                       "sft.max_length": 16})  # bounds the teacher's new tokens (noise)
    rows = load_examples(str(data), n=4, seed=0, split="train", columns=ctx.spec.data.columns())
    kept, info = sft.collect_traces(ctx, rows)
    assert info["converted"] == len(kept) == 4  # a user file's rule sketches are rewritten by the teacher
    cached = json.loads((ctx.run_dir / sft.SKETCH_CACHE).read_text())
    assert {r["id"]: t for r, t in kept} == cached

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(sft, "teacher_sketches", no_teacher)
    assert sft.collect_traces(ctx, rows)[0] == kept


def test_stop_keeps_a_checkpoint_and_resume_finishes(store, tmp_path):
    from collections import Counter

    from engine.stages import sft

    ctx = _context(store, tmp_path)
    store.send_command(ctx.run_id, "stop")  # taken at the end of step 1
    assert sft.run(ctx) == "stopped"
    assert (ctx.checkpoint_dir("sft") / "checkpoint-1" / "adapter_model.safetensors").exists()
    assert "sft_adapter" not in ctx.outputs and store.artifacts(ctx.run_id, "checkpoint")

    ctx.resume = True
    assert sft.run(ctx) == "succeeded"
    rows = [(m["step"], m["name"]) for m in store.metrics_since(ctx.run_id)]
    assert max(Counter(rows).values()) == 1  # nothing written twice, step 0 included
    assert sorted({s for s, _ in rows}) == [0, 1, 2, 3]
    assert any("resuming from checkpoint-1" in m for m in _events(store, ctx.run_id))


def test_mixed_cold_start_writes_both_modes(store, tmp_path):
    """trace = "mixed": every row is taught as its sketch and as a no-think answer, on the run's own prompt."""
    from engine.data import load_examples
    from engine.models import load_tokenizer, resolve_source
    from engine.rewards.parsing import parse_response
    from engine.stages import sft

    ctx = _context(store, tmp_path, **{"sft.trace": "mixed", "rewards.preset": "autothink",
                                       "rewards.custom_file": ""})
    rows = load_examples("builtin:arithmetic", n=4, seed=0, split="train")
    kept, _ = sft.collect_traces(ctx, rows)
    mode = sft.sft_prompt_mode(ctx.spec)
    assert mode == "ellipsis"  # autothink's prompt: the model may close the think block at once
    data = sft.build_dataset(kept, load_tokenizer(resolve_source("builtin:tiny-random")), "mixed", mode)
    assert len(data) == 2 * len(rows)
    modes = {}
    for prompt, completion in zip(data["prompt"], data["completion"], strict=True):
        assert prompt.endswith("<think>\n...\n")
        parsed = parse_response(completion, "<think>\n...\n")
        assert parsed.well_formed
        modes.setdefault(prompt, []).append(parsed.mode)
    assert all(sorted(m) == ["no_think", "think"] for m in modes.values())  # both modes for every problem
    row = rows[0]
    assert f"</think>\n<answer>{row['answer']}</answer>" in data["completion"]
    assert f"{row['sketch']}\n</think>\n<answer>{row['answer']}</answer>" in data["completion"]

    assert sft.run(ctx) == "succeeded"  # and it trains: the adapter and its meta say which traces
    (artifact,) = store.artifacts(ctx.run_id, "adapter")
    assert artifact["meta"]["trace"] == "mixed" and artifact["meta"]["examples"] == 8
    assert _lora_b_norm(ctx.run_dir / "sft-adapter") > 0


def _sft_lora_after_one_step(tmp_path, per_device: int, accum: int):
    """One real SFT step (tiny model, LoRA, plain SGD without clipping: the weights move by lr x the gradient
    itself) on completions of different lengths, so a loss averaged per slice instead of over the whole
    batch's tokens would show; the LoRA weights after it."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from engine.models import ensure_tiny_random, load_model, lora_config
    from engine.spec import LoraSpec, ModelSpec

    model, tokenizer, _ = load_model(ModelSpec(source=str(ensure_tiny_random())))
    data = Dataset.from_dict({"prompt": [f"What is {a} plus {a + 3}?" for a in range(8)],
                              "completion": [" so" * (1 + 3 * a) + f" {2 * a + 3}" for a in range(8)]})
    config = SFTConfig(output_dir=str(tmp_path / f"out-{per_device}"), max_steps=1, learning_rate=0.5,
                       optim="sgd", max_grad_norm=0.0, per_device_train_batch_size=per_device,
                       gradient_accumulation_steps=accum, completion_only_loss=True, packing=False,
                       save_strategy="no", report_to="none", use_cpu=True, bf16=False, logging_steps=1,
                       disable_tqdm=True, seed=7, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                         peft_config=lora_config(LoraSpec(r=4, alpha=8, dropout=0.0)))
    trainer.train()
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}


def test_sft_in_cpu_slices_learns_what_the_whole_batch_learns(tmp_path):
    import torch

    from engine.stages import cpu_micro_batches

    per_device, accum = cpu_micro_batches(8, 1, on_cpu=True)
    assert (per_device, accum) == (4, 2) and cpu_micro_batches(8, 1, on_cpu=False) == (8, 1)
    whole = _sft_lora_after_one_step(tmp_path, 8, 1)
    sliced = _sft_lora_after_one_step(tmp_path, per_device, accum)
    assert whole.keys() == sliced.keys() and whole
    assert max((w != 0).any().item() for n, w in whole.items() if "lora_B" in n)  # the step moved the adapter
    for name in whole:
        torch.testing.assert_close(sliced[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)
