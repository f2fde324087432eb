"""The judge reward model (SketchJudge) on TRL's RewardTrainer, and the `judge` reward GRPO pays with it.

Reads top to bottom: preference pairs, model, trainer config, resume, train, save, held-out
pairwise accuracy. The judge is a sequence-classification model (one score; LoRA on the base
with task_type SEQ_CLS, so the score head trains too) that prefers

    correct sketch  >  correct verbose (the long trace)  >  wrong (a trace whose answer was changed)

What the judge reads (`judge_text`, the same function at training and at scoring time):

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

import gc
import itertools
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

from engine.stages import (
    StageContext,
    StageFailed,
    StopOnRequest,
    StoreReporter,
    is_main_process,
    last_checkpoint,
    trainer_device_args,
)

log = logging.getLogger(__name__)
STAGE = "judge"
JUDGE_DIR = "judge"
META_FILE = "judge.json"
PAIR_KINDS = ("sketch_vs_verbose", "sketch_vs_wrong", "verbose_vs_wrong")
SCORE_BATCH = 16  # texts per judge forward pass
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")


def judge_text(question: str, think: str, eos_token: str | None = "") -> str:
    """The exact text the judge reads: `f"{question}\\n{think}{eos_token}"` (see the module docstring)."""
    return f"{question.strip()}\n{think.strip()}{eos_token or ''}"


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


# ---- scoring: the same path for the held-out accuracy and for the GRPO reward ------------------------

def score_texts(model, tokenizer, texts: list[str], device: str, max_length: int | None = None,
                batch_size: int = SCORE_BATCH) -> list[float]:
    """The judge's score of each text (the score head's one logit), batched, without gradients."""
    import torch

    model.eval()
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                            truncation=max_length is not None, max_length=max_length).to(device)
            logits = model(**enc).logits  # (B, 1): the score at the last non-pad token
            scores += logits[:, 0].float().tolist()  # .tolist() is a device-host sync point
    return scores


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


def _seq_cls_model(folder: Path, placement, trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification

    from engine.models import ModelError

    try:  # a causal-LM checkpoint: the score head is new (random) and lm_head is unused; both are expected
        return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=placement.dtype,
                                                                  trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"could not load {folder} as a sequence classifier for the judge: "
                         f"{type(exc).__name__}: {exc}") from exc


def load_judge(path: str | Path, placement) -> tuple[Any, Any, dict]:
    """(model, tokenizer, meta) of a saved judge: a LoRA adapter (and score head) on its base, or a model."""
    from engine.models import load_tokenizer, resolve_source

    path = Path(path)
    meta = json.loads((path / META_FILE).read_text())
    trust = bool(meta.get("trust_remote_code", False))
    tokenizer = load_tokenizer(path, trust)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base = _seq_cls_model(resolve_source(meta["source"]), placement, trust)
        base.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(base, str(path))
    else:
        model = _seq_cls_model(path, placement, trust)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    model.to(placement.device).eval()
    return model, tokenizer, meta


class JudgeReward:
    """`judge` reward: the judge's score of the thinking, normalised per prompt group, paid only when correct.

    For the completions of one prompt (`prompt_id` column) whose answer is correct
    (`is_correct(parse_response(completion, prefix).answer, answer)`), with s_i the judge's score
    of `judge_text(question, think_i, eos)`:

        r_i = (s_i - min_j s_j) / (max_j s_j - min_j s_j)     (0.5 when all s_j are equal, or one is correct)

    min and max run over the group's correct completions; a wrong answer gets 0 and is not
    scored at all (saving the judge's forward pass); a row without a reference answer gets None.
    So style never beats correctness: a wrong answer earns 0 however it reads, never more than a right one.

    Source: SketchThinker-R1 (SketchJudge): a reward model that rates the thinking text as
    sketch-like, used as a small style term (weight 0.1) beside accuracy and format, paid only
    with a correct answer. REWARDS.md ("judge").

    Picklable: the judge is loaded on the first call (once) and not pickled.
    """

    def __init__(self, path: str | Path, placement, batch_size: int = SCORE_BATCH):
        self.__name__ = "judge"
        self.path, self.placement, self.batch_size = Path(path), placement, batch_size
        self._loaded: tuple[Any, Any, dict] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}

    def _judge(self) -> tuple[Any, Any, dict]:
        if self._loaded is None:
            self._loaded = load_judge(self.path, self.placement)
        return self._loaded

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        from engine.rewards.components import column, correctness, group_indices, parse_batch

        n = len(completions)
        if kwargs.get("question") is None:
            raise ValueError("the judge reward reads the question and needs the dataset column 'question'")
        parsed = parse_batch(completions, kwargs)
        right = correctness(parsed, kwargs)
        questions = column(kwargs, "question", n)
        out: list[float | None] = [None if r is None else 0.0 for r in right]
        paid = [i for i in range(n) if right[i]]
        if not paid:
            return out
        model, tokenizer, meta = self._judge()
        texts = [judge_text(str(questions[i]), parsed[i].think or "", tokenizer.eos_token) for i in paid]
        scored = score_texts(model, tokenizer, texts, self.placement.device, meta.get("max_length"),
                             self.batch_size)
        scores = dict(zip(paid, scored, strict=True))
        for group in group_indices(prompts, kwargs):
            members = [i for i in group if i in scores]
            if not members:
                continue
            lo, hi = min(scores[i] for i in members), max(scores[i] for i in members)
            for i in members:
                out[i] = 0.5 if hi == lo else (scores[i] - lo) / (hi - lo)
        return out


def judge_reward(path: str | Path, placement) -> JudgeReward:
    """The `judge` reward component for GRPO from a judge saved by this stage (see JudgeReward)."""
    return JudgeReward(path, placement)


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
    from engine.models import (
        check_model_folder,
        load_tokenizer,
        lora_config,
        missing_lora_targets,
        resolve_source,
    )

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
    model = _seq_cls_model(folder, ctx.placement, spec.model.trust_remote_code)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    model.to(ctx.placement.device)
    peft_config = None
    if spec.model.lora.enabled:
        missing = missing_lora_targets(model, spec.model.lora.target_modules)
        if missing:
            raise StageFailed("model.lora.target_modules: the model has no modules named "
                              f"{', '.join(missing)}.")
        peft_config = lora_config(spec.model.lora, task_type="SEQ_CLS")

    # ---- trainer ---------------------------------------------------------------------------------
    out_dir = ctx.checkpoint_dir(STAGE)
    config = RewardConfig(
        output_dir=str(out_dir), max_steps=j.max_steps, learning_rate=j.learning_rate,
        per_device_train_batch_size=j.batch_size, max_length=j.max_length,
        activation_checkpointing=False, save_strategy="steps", save_steps=j.save_steps,
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

    # ---- resume from the last checkpoint ---------------------------------------------------------
    resume_from = last_checkpoint(out_dir) if ctx.resume else None
    if resume_from is not None:
        done = int(resume_from.name.rsplit("-", 1)[-1])
        if is_main_process():
            ctx.store.forget_after(ctx.run_id, STAGE, done)  # those steps are redone
        ctx.event("info", f"judge: resuming from {resume_from.name} (step {done})", STAGE, done)

    # ---- train -----------------------------------------------------------------------------------
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    status = "stopped" if stopper.stopped else "succeeded"
    step = trainer.state.global_step

    # ---- held-out pairwise accuracy --------------------------------------------------------------
    accuracy: dict[str, float] = {}
    if status == "succeeded" and eval_pairs:
        accuracy = pairwise_accuracy(trainer.model, tokenizer, eval_pairs, ctx.placement.device, j.max_length)
        by_kind = ", ".join(f"{k.replace('_', ' ')} {accuracy[k]:.0%}" for k in PAIR_KINDS if k in accuracy)
        ctx.event("info", f"judge: pairwise accuracy {accuracy['all']:.0%} on {len(eval_pairs)} held-out "
                          f"pairs ({by_kind})", STAGE, step)
        if is_main_process():
            ctx.store.add_metrics(ctx.run_id, STAGE, step, {
                "judge/pairwise_accuracy": accuracy["all"],
                **{f"judge/pairwise_accuracy/{k}": v for k, v in accuracy.items() if k != "all"}})
    elif status == "succeeded":
        ctx.event("warning", "judge: no held-out pairs (judge.eval_pairs = 0 or no usable eval rows): "
                             "its pairwise accuracy is unknown", STAGE, step)

    # ---- save ------------------------------------------------------------------------------------
    final = ctx.run_dir / JUDGE_DIR if status == "succeeded" else last_checkpoint(out_dir)
    pairwise = accuracy.get("all") if accuracy else None
    if status == "succeeded":
        trainer.save_model(str(final))  # the LoRA adapter with the score head (modules_to_save), or a model
        if is_main_process():
            tokenizer.save_pretrained(str(final))
    if status == "succeeded" and is_main_process():
        (final / META_FILE).write_text(json.dumps({
            "source": spec.model.source, "trust_remote_code": spec.model.trust_remote_code,
            "max_length": j.max_length, "text": "question + '\\n' + think + eos_token", "step": step,
            "pairwise_accuracy": pairwise,
            "pairwise_accuracy_by_kind": {k: v for k, v in accuracy.items() if k != "all"},
        }, indent=2))
    if is_main_process() and status == "succeeded":  # checkpoints were registered as they were saved
        meta = {"pairwise_accuracy": pairwise, "step": step, "stage": STAGE,
                "pairs": len(trainer.train_dataset), "held_out": len(eval_pairs)}
        ctx.store.add_artifact(ctx.run_id, "judge", final, meta, stage=STAGE)
    if status == "succeeded":
        ctx.outputs["judge_path"] = final  # GRPO builds `judge_reward(judge_path, placement)` from it
    del trainer, model
    gc.collect()
    return status
