"""SFT cold start with LoRA on TRL's SFTTrainer: the model learns the output format and terse thinking.

Reads top to bottom: traces (sketches, converted from long traces where the data has none),
dataset, model, trainer config, resume, train, save. GRPO then continues training the saved
adapter (`ctx.outputs["sft_adapter"]`).

Each example is prompt-completion text, so only the response is trained (completion-only
loss; STACK-NOTES: `assistant_only_loss` fails with SmolLM2's chat template):

    prompt      render_prompt(question, tokenizer, mode="think")   # chat template, ends "<think>\\n"
    completion  f"{trace}\\n</think>\\n<answer>{answer}</answer>"    # SFTTrainer appends the EOS token

Where a row has a long trace but no sketch, `sft.converter` makes one: "rules" is
`engine.data.sketch.to_sketch`, "teacher" asks the teacher model (greedy, batched) with
`sft.teacher_prompt`. User files already carry rule-made sketches (the data layer makes them),
so with the teacher converter every row of a user file that has a long trace is rewritten;
built-in tasks keep their own exact sketches. Teacher sketches are kept in
RUN_DIR/sft-sketches.json (row id -> sketch): a resumed run and the judge stage reuse them.
"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import Any

from engine.paths import atomic_write
from engine.stages import (
    StageContext,
    StageFailed,
    StopOnRequest,
    StoreReporter,
    cpu_micro_batches,
    is_main_process,
    load_policy,
    resume_point,
    save_output,
    train,
    trainer_device_args,
)

log = logging.getLogger(__name__)
STAGE = "sft"
ADAPTER_DIR = "sft-adapter"
SKETCH_CACHE = "sft-sketches.json"  # teacher sketches by row id, for a resumed run and the judge stage
TEACHER_BATCH = 8  # prompts per teacher generate call


def completion_for(trace: str, answer: str) -> str:
    """The trained response after the prompt's "<think>\\n" (SFTTrainer adds the EOS token); an empty trace
    closes the think block at once (a no-think answer)."""
    if not trace.strip():
        return f"</think>\n<answer>{answer}</answer>"
    return f"{trace}\n</think>\n<answer>{answer}</answer>"


# ---- traces: the sketches (or long traces) the model is trained on ---------------------------------

def teacher_sketches(reasonings: list[str], source: str, prompt: str, placement,
                     max_new_tokens: int) -> list[str]:
    """One sketch per long trace, written by the teacher model (greedy, batched, left padding).

    An empty reply falls back to the rule-based sketch. The teacher is freed before returning.
    """
    import torch

    from engine.data.sketch import to_sketch
    from engine.models import load_model
    from engine.rewards.parsing import strip_trailing_eos
    from engine.spec import ModelSpec

    model, tokenizer, _ = load_model(ModelSpec(source=source), placement=placement)
    model.eval()
    tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt directly
    out: list[str] = []
    try:
        for start in range(0, len(reasonings), TEACHER_BATCH):
            batch = reasonings[start:start + TEACHER_BATCH]
            texts = [_teacher_input(prompt.replace("{reasoning}", r), tokenizer) for r in batch]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(placement.device)
            # a sketch is shorter than its long trace: the longest trace of the batch bounds the new tokens
            longest = max(len(tokenizer.encode(r, add_special_tokens=False)) for r in batch)
            with torch.inference_mode():
                ids = model.generate(**enc, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                     max_new_tokens=max(8, min(max_new_tokens, longest)))  # (B, prompt + new)
            new = ids[:, enc["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for reasoning, text in zip(batch, texts, strict=True):
                sketch = strip_trailing_eos(text).replace("<think>", "").replace("</think>", "").strip()
                out.append(sketch or to_sketch(reasoning))
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


def _teacher_input(message: str, tokenizer) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                             add_generation_prompt=True)
    return message + "\n\n"


def collect_traces(ctx: StageContext, examples: list[dict]) -> tuple[list[tuple[dict, str]], dict[str, Any]]:
    """(row, trace) for every row that has one, and what the conversion did (counts, sources)."""
    from engine.data.sketch import to_sketch

    s = ctx.spec.sft
    if s.trace == "reasoning":
        kept = [(row, row["reasoning"].strip()) for row in examples if (row.get("reasoning") or "").strip()]
        return kept, {"from_data": len(kept), "converted": 0, "dropped": len(examples) - len(kept)}

    own_sketches = ctx.spec.data.source.startswith("builtin:")  # user files carry rule-made sketches
    use_teacher = s.converter == "teacher"
    convert = [row for row in examples if (row.get("reasoning") or "").strip()
               and (not (row.get("sketch") or "").strip() or (use_teacher and not own_sketches))]
    sketches: dict[str, str] = {}
    if convert and use_teacher:
        cache = ctx.run_dir / SKETCH_CACHE
        cached = json.loads(cache.read_text()) if cache.is_file() else {}
        todo = [row for row in convert if row["id"] not in cached]
        if todo:
            ctx.event("info", f"sft: the teacher ({s.teacher_source}) writes {len(todo)} sketches", STAGE)
            made = teacher_sketches([row["reasoning"] for row in todo], s.teacher_source, s.teacher_prompt,
                                    ctx.placement, s.max_length)
            cached.update({row["id"]: sketch for row, sketch in zip(todo, made, strict=True)})
            if is_main_process():
                _write_json(cache, cached)
        sketches = {row["id"]: cached[row["id"]] for row in convert}
    elif convert:
        sketches = {row["id"]: to_sketch(row["reasoning"]) for row in convert}

    kept = []
    for row in examples:
        trace = (sketches.get(row["id"]) or row.get("sketch") or "").strip()
        if trace:
            kept.append((row, trace))
    info = {"converted": sum(1 for v in sketches.values() if v.strip()), "dropped": len(examples) - len(kept)}
    info["from_data"] = len(kept) - info["converted"]
    return kept, info


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, ensure_ascii=False))


def report_reduction(ctx: StageContext, kept: list[tuple[dict, str]], info: dict, tokenizer) -> float | None:
    """Event and step-0 metric `sft/token_reduction`: 1 - sketch tokens / long-trace tokens, over all rows."""
    from engine.data.sketch import token_reduction

    with_long = [(row["reasoning"], trace) for row, trace in kept if (row.get("reasoning") or "").strip()]
    how = (f"{info['from_data']} from the data, {info['converted']} made by the "
           f"{ctx.spec.sft.converter} converter")
    if ctx.spec.sft.trace not in ("sketch", "mixed") or not with_long:
        ctx.event("info", f"sft: {len(kept)} {ctx.spec.sft.trace} traces ({how})", STAGE, 0)
        return None
    # one call over the joined texts: the reduction of the whole data set, not a mean of ratios
    longs, sketches = "\n".join(r for r, _ in with_long), "\n".join(t for _, t in with_long)
    reduction = token_reduction(longs, sketches, tokenizer)
    ctx.event("info", f"sft: {len(kept)} sketches ({how}); they use {reduction:.0%} fewer tokens than the "
                      f"long traces of the same {len(with_long)} rows", STAGE, 0)
    if is_main_process():
        ctx.store.add_metrics(ctx.run_id, STAGE, 0, {"sft/token_reduction": reduction})
    return reduction


def sft_prompt_mode(spec) -> str:
    """The prompt SFT trains on: the run's own (GRPO and eval use it too), with the budget mode's think prefix."""
    mode = spec.rewards.resolved_prompt_mode()
    return mode if mode in ("think", "ellipsis") else "think"


def build_dataset(kept: list[tuple[dict, str]], tokenizer, trace: str = "sketch", mode: str = "think"):
    """Prompt-completion rows; with trace = "mixed" every row is taught both ways to answer: its sketch, and
    a no-think answer (the think block closed at once), so GRPO can choose per problem (Thinkless and AdaR1
    warm up on paired short and long answers: a small model that has seen one mode only never leaves it)."""
    from datasets import Dataset

    from engine.prompts import render_prompt

    prompts, completions = [], []
    for row, text in kept:
        prompt = render_prompt(row["question"], tokenizer, mode=mode)
        for target in (text, "") if trace == "mixed" else (text,):
            prompts.append(prompt)
            completions.append(completion_for(target, str(row["answer"])))
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


# ---- the stage ------------------------------------------------------------------------------------

def run(ctx: StageContext) -> str:
    """Train; returns "succeeded", "stopped", or "skipped" when the data has no reasoning traces."""
    from trl import SFTConfig, SFTTrainer

    from engine.data import load_examples

    spec, s = ctx.spec, ctx.spec.sft
    if not spec.model.lora.enabled:
        raise StageFailed("model.lora.enabled: the SFT stage trains a LoRA adapter that GRPO continues; "
                          "turn LoRA on, or leave the sft stage out.")

    # ---- traces (before the model: the teacher, if any, is loaded and freed first) ---------------
    examples = load_examples(spec.data.source, n=spec.data.train_size, seed=spec.data.seed, split="train",
                             difficulty_mix=spec.data.mix(), columns=spec.data.columns(), min_rows=1,
                             needed_for="the SFT stage")
    kept, info = collect_traces(ctx, examples)
    if not kept:
        ctx.event("warning", f"sft: skipped: none of the {len(examples)} training rows has a reasoning trace "
                             "or a sketch to learn from. Map a reasoning column (data.reasoning) or use a "
                             "built-in task; GRPO starts from the base model.", STAGE)
        return "skipped"

    # ---- model and resume point -----------------------------------------------------------------
    model, tokenizer, peft_config = load_policy(ctx)
    out_dir = ctx.checkpoint_dir(STAGE)
    resume_from = resume_point(ctx, STAGE, out_dir)  # before step 0's metric: a restart redoes it
    reduction = report_reduction(ctx, kept, info, tokenizer) if resume_from is None else None
    train_dataset = build_dataset(kept, tokenizer, s.trace, sft_prompt_mode(spec))

    # ---- trainer ---------------------------------------------------------------------------------
    # on a CPU a step of batch_size examples runs in slices of 4: the logits (examples x tokens x 49k
    # vocabulary, float32) dominate the step's peak. The optimizer step and its loss are the same: the
    # trainer divides the summed loss by the tokens of the whole batch (num_items_in_batch).
    per_device, accumulation = cpu_micro_batches(s.batch_size, 1, ctx.placement.on_cpu)
    config = SFTConfig(
        output_dir=str(out_dir), max_steps=s.max_steps, learning_rate=s.learning_rate,
        per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
        max_length=s.max_length,
        completion_only_loss=True,  # prompt-completion data: the loss covers the response only
        packing=False, save_strategy="steps", save_steps=s.save_steps,
        # recomputes each layer's activations in the backward pass: the step's peak falls from 3.9 to 2.6 GB
        # on the bundled model (batch 8) and, on CPU, it is no slower (bench/stage_memory.py)
        activation_checkpointing=True,
        **trainer_device_args(ctx),
    )
    stopper = StopOnRequest(ctx.store, ctx.run_id)
    trainer = SFTTrainer(model=model, args=config, train_dataset=train_dataset, processing_class=tokenizer,
                         peft_config=peft_config,
                         callbacks=[stopper, StoreReporter(ctx, STAGE)])
    if len(trainer.train_dataset) < len(train_dataset):
        dropped = len(train_dataset) - len(trainer.train_dataset)
        ctx.event("warning", f"sft: {dropped} examples dropped: their prompt alone fills sft.max_length "
                             f"({s.max_length} tokens)", STAGE)
    if len(trainer.train_dataset) == 0:
        raise StageFailed(f"sft.max_length: every prompt is longer than {s.max_length} tokens; raise it.")

    # ---- train (from the resume point) ----------------------------------------------------------
    train(trainer, resume_from)

    # ---- save ------------------------------------------------------------------------------------
    if stopper.stopped:
        return "stopped"  # the checkpoint of the stop was registered as it was saved
    meta = {"trace": s.trace, "examples": len(kept)}
    if reduction is not None:
        meta["token_reduction"] = reduction
    ctx.outputs["sft_adapter"] = save_output(ctx, STAGE, trainer, tokenizer, ctx.run_dir / ADAPTER_DIR,
                                             "adapter", meta)
    return "succeeded"
