"""The judge reward model (SketchJudge) on TRL's RewardTrainer; GRPO pays with it (engine/rewards/judge.py).

Reads top to bottom: preference pairs, model, resume point, trainer config, train, held-out
pairwise accuracy, save. The judge is a sequence-classification model (one score; LoRA on the base
with task_type SEQ_CLS, so the score head trains too) that prefers

    correct sketch  >  correct verbose (the long trace)  >  wrong (a trace whose answer was changed)

What the judge reads (`judge_text` in engine/rewards/judge.py, the same at training and at scoring time):

    f"{question}\\n{think}{eos}"

`question` is the problem as asked (the dataset's question, no chat template, no system prompt),
`think` the thinking text only (the think block's content, stripped; "" when there is none),
`eos` the tokenizer's EOS token (RewardTrainer appends it to training texts, so scoring does too).
The answer block is not shown: SketchThinker-R1's judge rates the thinking (sketch vs verbose);
"wrong" pairs change the final number inside the trace, so a step no longer adds up.

Pairs per training row (rows without a sketch get a rule-made one, or the SFT stage's teacher
sketch from RUN_DIR/sft-sketches.json): sketch_vs_verbose, sketch_vs_wrong (the sketch with its
answer changed) and verbose_vs_wrong (a wrong sketch or wrong long trace, at random). Held-out
pairs come from the eval split, made the same way.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re

from engine.rewards.judge import META_FILE, judge_text, score_texts, seq_cls_model
from engine.stages import (
    StageContext,
    StageFailed,
    StopOnRequest,
    StoreReporter,
    is_main_process,
    lora_for,
    resume_point,
    save_output,
    train,
    trainer_device_args,
)

log = logging.getLogger(__name__)
STAGE = "judge"
JUDGE_DIR = "judge"
PAIR_KINDS = ("sketch_vs_verbose", "sketch_vs_wrong", "verbose_vs_wrong")
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")


# ---- preference pairs ------------------------------------------------------------------------------

def wrong_trace(trace: str, answer: str, rng: random.Random) -> str | None:
    """`trace` with every standalone occurrence of the (numeric) answer changed to a wrong number.

    None when the answer is not a plain number or the trace never states it.
    """
    answer = answer.strip()
    if not _DECIMAL.fullmatch(answer):
        return None
    delta = rng.choice((-10, -2, -1, 1, 2, 10))
    if "." in answer:
        places = len(answer.split(".")[1])
        wrong = f"{float(answer) + delta:.{places}f}"
    else:
        wrong = str(int(answer) + delta)
    # not inside another number: no digit (or decimal point + digit) on either side
    pattern = re.compile(rf"(?<![\d.]){re.escape(answer)}(?![\d]|\.\d)")
    changed = pattern.sub(wrong, trace)
    return changed if changed != trace else None


def preference_pairs(examples: list[dict], seed: int, sketches: dict[str, str] | None = None) -> list[dict]:
    """{"question", "chosen", "rejected", "kind"} pairs of think texts, row by row (see the module doc)."""
    from engine.data.sketch import to_sketch

    rng = random.Random(f"ponder/judge/{seed}")
    sketches = sketches or {}
    pairs: list[dict] = []
    for row in examples:
        question, answer = row["question"], str(row["answer"])
        verbose = (row.get("reasoning") or "").strip()
        sketch = sketches.get(row["id"]) or row.get("sketch") or (to_sketch(verbose) if verbose else "")
        sketch = sketch.strip()
        wrong_sketch = wrong_trace(sketch, answer, rng) if sketch else None
        wrong_verbose = wrong_trace(verbose, answer, rng) if verbose else None
        wrong_any = rng.choice([w for w in (wrong_sketch, wrong_verbose) if w] or [""])
        candidates = [("sketch_vs_verbose", sketch, verbose if sketch != verbose else ""),
                      ("sketch_vs_wrong", sketch, wrong_sketch),
                      ("verbose_vs_wrong", verbose, wrong_any)]
        pairs += [{"question": question, "chosen": chosen, "rejected": rejected, "kind": kind}
                  for kind, chosen, rejected in candidates if chosen and rejected]
    return pairs


def _interleave_kinds(pairs: list[dict]) -> list[dict]:
    """Pairs ordered kind by kind in turn, so any prefix holds the kinds evenly."""
    by_kind = [[p for p in pairs if p["kind"] == kind] for kind in PAIR_KINDS]
    return [p for group in itertools.zip_longest(*by_kind) for p in group if p is not None]


def build_dataset(pairs: list[dict], eos_token: str):
    from datasets import Dataset

    return Dataset.from_dict({
        "chosen": [judge_text(p["question"], p["chosen"], eos_token) for p in pairs],
        "rejected": [judge_text(p["question"], p["rejected"], eos_token) for p in pairs],
    })


def pairwise_accuracy(model, tokenizer, pairs: list[dict], device: str,
                      max_length: int | None = None) -> dict[str, float]:
    """Share of pairs with score(chosen) > score(rejected): "all" and per kind present."""
    eos = tokenizer.eos_token
    chosen = score_texts(model, tokenizer, [judge_text(p["question"], p["chosen"], eos) for p in pairs],
                         device, max_length)
    rejected = score_texts(model, tokenizer, [judge_text(p["question"], p["rejected"], eos) for p in pairs],
                           device, max_length)
    wins = [c > r for c, r in zip(chosen, rejected, strict=True)]
    out = {"all": sum(wins) / len(wins)}
    for kind in PAIR_KINDS:
        mine = [w for w, p in zip(wins, pairs, strict=True) if p["kind"] == kind]
        if mine:
            out[kind] = sum(mine) / len(mine)
    return out


# ---- the stage ------------------------------------------------------------------------------------

def _train_sketches(ctx: StageContext) -> dict[str, str]:
    """The SFT stage's teacher sketches (row id -> sketch), where it made some."""
    from engine.stages.sft import SKETCH_CACHE

    cache = ctx.run_dir / SKETCH_CACHE
    return json.loads(cache.read_text()) if cache.is_file() else {}


def run(ctx: StageContext) -> str:
    """Train; returns "succeeded", "stopped", or "skipped" when the data gives no preference pairs."""
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    from engine.data import load_examples
    from engine.models import check_model_folder, load_tokenizer, resolve_source

    spec, j = ctx.spec, ctx.spec.judge

    # ---- preference pairs ------------------------------------------------------------------------
    data = {"seed": spec.data.seed, "difficulty_mix": spec.data.mix(), "columns": spec.data.columns()}
    train_rows = load_examples(spec.data.source, n=spec.data.train_size, split="train", min_rows=1,
                               needed_for="the judge stage", **data)
    train_pairs = preference_pairs(train_rows, spec.seed, _train_sketches(ctx))
    if not train_pairs:
        ctx.event("warning", f"judge: skipped: none of the {len(train_rows)} training rows gives a "
                             "preference pair (it needs a reasoning trace or a sketch, and a numeric answer "
                             "for the wrong-answer pairs). Map a reasoning column (data.reasoning) or use a "
                             "built-in task.", STAGE)
        return "skipped"
    eval_pairs: list[dict] = []
    if j.eval_pairs:
        eval_rows = load_examples(spec.data.source, n=j.eval_pairs, split="eval", **data)
        eval_pairs = _interleave_kinds(preference_pairs(eval_rows, spec.seed + 1))[: j.eval_pairs]
    counts = {k: sum(p["kind"] == k for p in train_pairs) for k in PAIR_KINDS}
    ctx.event("info", f"judge: {len(train_pairs)} preference pairs (" +
              ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()) +
              f"); {len(eval_pairs)} held out", STAGE)

    # ---- model: one score per sequence, LoRA on the base (the score head trains too) -------------
    folder = resolve_source(spec.model.source)
    check_model_folder(folder, spec.model.trust_remote_code)
    tokenizer = load_tokenizer(folder, spec.model.trust_remote_code)
    set_seed(spec.seed)  # the score head starts random: the same run gives the same judge
    model = seq_cls_model(folder, ctx.placement, spec.model.trust_remote_code)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    model.to(ctx.placement.device)
    peft_config = lora_for(ctx, model, task_type="SEQ_CLS")
    out_dir = ctx.checkpoint_dir(STAGE)
    resume_from = resume_point(ctx, STAGE, out_dir)

    # ---- trainer ---------------------------------------------------------------------------------
    config = RewardConfig(
        output_dir=str(out_dir), max_steps=j.max_steps, learning_rate=j.learning_rate,
        per_device_train_batch_size=j.batch_size, max_length=j.max_length,
        # recompute activations in the backward pass: without it a step of 8 pairs (16 sequences of up to
        # max_length tokens, 30 layers) holds ~5 GB of activations on the bundled model, 4x the model
        activation_checkpointing=True, save_strategy="steps", save_steps=j.save_steps,
        **trainer_device_args(ctx),
    )
    stopper = StopOnRequest(ctx.store, ctx.run_id)
    train_dataset = build_dataset(train_pairs, tokenizer.eos_token)
    trainer = RewardTrainer(model=model, args=config, train_dataset=train_dataset,
                            processing_class=tokenizer, peft_config=peft_config,
                            callbacks=[stopper, StoreReporter(ctx, STAGE)])
    dropped = len(train_pairs) - len(trainer.train_dataset)
    if dropped == len(train_pairs):
        raise StageFailed(f"judge.max_length: every preference pair is longer than {j.max_length} tokens; "
                          "raise it.")
    if dropped:
        ctx.event("warning", f"judge: {dropped} of {len(train_pairs)} pairs left out: longer than "
                             f"judge.max_length ({j.max_length} tokens)", STAGE)

    # ---- train (from the resume point) ----------------------------------------------------------
    train(trainer, resume_from)
    if stopper.stopped:
        return "stopped"  # the checkpoint of the stop was registered as it was saved
    step = trainer.state.global_step

    # ---- held-out pairwise accuracy --------------------------------------------------------------
    accuracy: dict[str, float] = {}
    if eval_pairs:
        accuracy = pairwise_accuracy(trainer.model, tokenizer, eval_pairs, ctx.placement.device, j.max_length)
        by_kind = ", ".join(f"{k.replace('_', ' ')} {accuracy[k]:.0%}" for k in PAIR_KINDS if k in accuracy)
        ctx.event("info", f"judge: pairwise accuracy {accuracy['all']:.0%} on {len(eval_pairs)} held-out "
                          f"pairs ({by_kind})", STAGE, step)
        if is_main_process():
            ctx.store.add_metrics(ctx.run_id, STAGE, step, {
                "judge/pairwise_accuracy": accuracy["all"],
                **{f"judge/pairwise_accuracy/{k}": v for k, v in accuracy.items() if k != "all"}})
    else:
        ctx.event("warning", "judge: no held-out pairs (judge.eval_pairs = 0 or no usable eval rows): "
                             "its pairwise accuracy is unknown", STAGE, step)

    # ---- save: the LoRA adapter with the score head (modules_to_save), or a model, and its meta ---
    pairwise = accuracy.get("all")
    by_kind = {k: v for k, v in accuracy.items() if k != "all"}
    meta_file = json.dumps({
        "source": spec.model.source, "trust_remote_code": spec.model.trust_remote_code,
        "max_length": j.max_length, "text": "question + '\\n' + think + eos_token", "step": step,
        "pairwise_accuracy": pairwise, "pairwise_accuracy_by_kind": by_kind}, indent=2)
    ctx.outputs["judge_path"] = save_output(  # GRPO builds `judge_reward(judge_path, placement)` from it
        ctx, STAGE, trainer, tokenizer, ctx.run_dir / JUDGE_DIR, "judge",
        {"pairwise_accuracy": pairwise, "pairs": len(trainer.train_dataset), "held_out": len(eval_pairs)},
        files={META_FILE: meta_file})
    return "succeeded"
