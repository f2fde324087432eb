"""AdaR1's bi-level preference stage: DPO on the model's own long and short answers, without online RL.

Reads top to bottom: data, model (the SFT adapter, if one ran, is the start and DPO's reference),
sampling (K completions per training problem in each mode, scored with the run's accuracy check),
pairs (the bi-level rule below), trainer config, resume, train, save. Generation happens once, up
front, so the stage costs far less than GRPO on a CPU. GRPO, eval and export take the saved adapter
(`ctx.outputs["prefer_adapter"]`) as they take the SFT adapter.

The two modes on the run's prompt (the one SFT trains on, e.g. AutoThink's ellipsis prompt):

    think     the model writes a sketch: the first new token may not start "</think>"
    no_think  the completion is forced to start "</think>\\n" (the think block closed at once)

Resume points: every sampled batch is appended to RUN_DIR/prefer-samples.jsonl (a resumed or
killed stage samples only the problems not in it); pairs are rebuilt from that file (the same pairs,
the store's rows replaced); training resumes from its last checkpoint like SFT's.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from engine.paths import atomic_write
from engine.stages import (
    StageContext,
    StageFailed,
    StopOnRequest,
    StoreReporter,
    is_main_process,
    resume_point,
    train,
    trainer_device_args,
)

log = logging.getLogger(__name__)
STAGE = "prefer"
ADAPTER_DIR = "prefer-adapter"
SAMPLES_FILE = "prefer-samples.jsonl"  # one scored problem per line
SAMPLE_BATCH = 16  # problems per generate call (x samples_per_mode sequences)
NO_THINK = "</think>\n"  # what a no-think completion starts with (engine.stages.sft.completion_for(""))
TRACE_PAIRS = 12  # pairs shown in the Monitor's completions view (chosen and rejected, as traces)


# ---- pairs: AdaR1's bi-level rule -----------------------------------------------------------------

def build_pairs(samples: list[dict], *, margin: float = 0.0, group_cap: int = 2,
                instance_cap: int = 1) -> tuple[str | None, list[dict]]:
    """(preferred style, pairs) for one problem from its scored samples, by AdaR1's bi-level rule.

    AdaR1 (Luo et al. 2025, "Ada-R1: Hybrid CoT via Bi-Level Adaptive Reasoning Optimization"):
    sample K answers of each style, long (think) and short (no-think), and estimate each style's
    accuracy on the problem, acc_L and acc_S (share of correct samples).

    Group level: the preferred style is long if acc_L - acc_S > margin (the long style solves this
    problem clearly better: a hard problem), else short (an easy problem, or one neither style helps
    with more). Ponder adds: short with no correct sample at all (acc_S = 0 < acc_L) prefers long,
    since a chosen answer must be correct. Pairs: chosen a correct answer of the preferred style
    (shortest first, cycled), rejected each answer of the other style in turn (wrong ones first, then the
    longest), at most `group_cap`.

    Instance level: within the preferred style, a correct answer over a longer correct answer of the
    same style (strictly fewer tokens; equal lengths say nothing), the widest length gaps first, at most
    `instance_cap`.

    No correct sample in either style: no pairs (nothing says which answer is right). A style with no
    samples: no group-level pairs; instance-level pairs of the other style still count.
    Each pair: chosen, rejected (completion texts), level ("group"/"instance"), and both sides' mode,
    tokens and correctness.
    """
    long = [s for s in samples if s["mode"] == "think"]
    short = [s for s in samples if s["mode"] == "no_think"]
    if not any(s["correct"] for s in samples):
        return None, []
    acc = {"long": _acc(long), "short": _acc(short)}
    if not long or not short:
        preferred = "long" if long else "short"
    elif acc["long"] - acc["short"] > margin or (acc["short"] == 0 < acc["long"]):
        preferred = "long"
    else:
        preferred = "short"
    mine, other = (long, short) if preferred == "long" else (short, long)
    correct = sorted((s for s in mine if s["correct"]), key=lambda s: s["tokens"])
    pairs: list[dict] = []
    if mine and other and correct:
        rejected = sorted(other, key=lambda s: (bool(s["correct"]), -s["tokens"]))  # wrong, then longest
        for i, rej in enumerate(rejected[:group_cap]):
            pairs.append(_pair(correct[i % len(correct)], rej, "group"))
    within = [(a, b) for i, a in enumerate(correct) for b in correct[i + 1:]
              if a["tokens"] < b["tokens"] and a["completion"] != b["completion"]]
    within.sort(key=lambda ab: ab[0]["tokens"] - ab[1]["tokens"])  # widest gap first
    pairs += [_pair(a, b, "instance") for a, b in within[:instance_cap]]
    return preferred, pairs


def _acc(group: list[dict]) -> float:
    return sum(bool(s["correct"]) for s in group) / len(group) if group else 0.0


def _pair(chosen: dict, rejected: dict, level: str) -> dict:
    return {"level": level, "chosen": chosen["completion"], "rejected": rejected["completion"],
            "chosen_mode": chosen["mode"], "rejected_mode": rejected["mode"],
            "chosen_tokens": int(chosen["tokens"]), "rejected_tokens": int(rejected["tokens"]),
            "chosen_correct": int(bool(chosen["correct"])), "rejected_correct": int(bool(rejected["correct"]))}


# ---- sampling: K completions per problem in each mode, scored ---------------------------------------

def _generate(model, tokenizer, prompts: list[str], k: int, max_new_tokens: int, temperature: float,
              seed: int, suppress_first: list[int] | None = None) -> list[list[list[int]]]:
    """k sampled continuations per prompt, as token ids up to and with EOS; batched, left padding."""
    import torch

    tokenizer.padding_side = "left"
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    torch.manual_seed(seed)  # per batch: a resumed stage samples the remaining batches as a fresh one would
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    with torch.inference_mode():
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                             top_p=None, top_k=None, num_return_sequences=k, pad_token_id=tokenizer.pad_token_id,
                             begin_suppress_tokens=suppress_first)  # (B * k, prompt + new)
    new = ids[:, enc["input_ids"].shape[1]:].tolist()
    out = []
    for i in range(len(prompts)):
        group = []
        for row in new[i * k:(i + 1) * k]:
            cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
            group.append(row[:cut])
        out.append(group)
    return out


def sample_problems(model, tokenizer, rows: list[dict], prefix: str, s, seed: int) -> list[dict]:
    """Each row's K think and K no-think completions, scored: one dict per problem (a line of the samples file)."""
    from engine.rewards.parsing import is_correct, parse_response, think_token_split

    prompts = [row["prompt"] for row in rows]
    forced = tokenizer(NO_THINK, add_special_tokens=False)["input_ids"]
    close_start = tokenizer("</think>", add_special_tokens=False)["input_ids"][:1]
    think = _generate(model, tokenizer, prompts, s.samples_per_mode, s.max_completion_length, s.temperature,
                      seed, suppress_first=close_start)
    no_think = _generate(model, tokenizer, [p + NO_THINK for p in prompts], s.samples_per_mode,
                         max(1, s.max_completion_length - len(forced)), s.temperature, seed + 1)
    out = []
    for row, th, nt in zip(rows, think, no_think, strict=True):
        samples = []
        for asked, head, group in (("think", "", th), ("no_think", NO_THINK, nt)):
            for ids in group:
                completion = head + tokenizer.decode(ids, skip_special_tokens=True)
                tokens = len(ids) + (len(forced) if head else 0)
                parsed = parse_response(completion, prefix)
                think_tokens, answer_tokens = think_token_split(completion, tokens, tokenizer, prefix)
                samples.append({"asked": asked, "mode": parsed.mode, "completion": completion, "tokens": tokens,
                                "think_tokens": think_tokens, "answer_tokens": answer_tokens,
                                "correct": int(is_correct(parsed.answer, row["answer"]))})
        out.append({k: row[k] for k in ("prompt_id", "question", "answer", "difficulty", "prompt")}
                   | {"samples": samples})
    return out


def read_samples(path) -> dict[str, dict]:
    """The samples file's problems by prompt id; a last line cut short by a kill is dropped."""
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[item["prompt_id"]] = item
    return done


def sample_all(ctx: StageContext, model, tokenizer, rows: list[dict], prefix: str) -> list[dict] | None:
    """Every row sampled and scored (from the samples file where it has them); None if a stop came first."""
    path = ctx.run_dir / SAMPLES_FILE
    done = read_samples(path) if ctx.resume else {}
    if is_main_process():  # rewritten whole: a line cut short by a kill must not swallow the next one
        atomic_write(path, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in done.values()))
    todo = [row for row in rows if row["prompt_id"] not in done]
    if done:
        ctx.event("info", f"prefer: {len(rows) - len(todo)} of {len(rows)} problems already sampled", STAGE)
    main = is_main_process()
    if main:
        ctx.store.set_stage(ctx.run_id, STAGE, total_steps=len(rows), progress=len(rows) - len(todo))
    s = ctx.spec.prefer
    model.eval()
    for start in range(0, len(todo), SAMPLE_BATCH):
        batch = todo[start:start + SAMPLE_BATCH]
        index = rows.index(batch[0])  # the seed follows the problem, not how many were sampled before
        scored = sample_problems(model, tokenizer, batch, prefix, s, ctx.spec.seed + 2 * index)
        if main:
            with path.open("a", encoding="utf-8") as f:  # one line per problem, flushed per batch
                f.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in scored)
            ctx.store.set_stage(ctx.run_id, STAGE, progress=len(rows) - len(todo) + start + len(batch))
        done.update({item["prompt_id"]: item for item in scored})
        if main and ctx.store.take_command(ctx.run_id, "stop"):  # checked per batch, as the Trainer does per step
            ctx.event("info", f"prefer: stopped while sampling ({len(rows) - len(todo) + start + len(batch)} of "
                              f"{len(rows)} problems sampled; resume continues from there)", STAGE)
            return None
    return [done[row["prompt_id"]] for row in rows]


# ---- what the sampling found: metrics, pairs, a sample of pairs as traces ---------------------------

def sampling_metrics(problems: list[dict], pairs: list[dict]) -> dict[str, float]:
    """Step-0 metrics: accuracy and tokens of each mode's samples, pair counts by level and by difficulty."""
    out: dict[str, float] = {}
    for mode in ("think", "no_think"):
        got = [x for p in problems for x in p["samples"] if x["mode"] == mode]
        out[f"prefer/samples/{mode}"] = len(got)
        if got:
            out[f"prefer/accuracy/{mode}"] = sum(x["correct"] for x in got) / len(got)
            out[f"prefer/tokens/{mode}"] = sum(x["tokens"] for x in got) / len(got)
    preferred = Counter(p.get("preferred") for p in problems if p.get("preferred"))
    for style in ("long", "short"):
        out[f"prefer/preferred/{style}"] = preferred[style]
    out["prefer/pairs"] = len(pairs)
    for level in ("group", "instance"):
        out[f"prefer/pairs/{level}"] = sum(p["level"] == level for p in pairs)
    for level, n in sorted(Counter(p["difficulty"] for p in pairs if p["difficulty"]).items()):
        out[f"prefer/pairs/d{level}"] = n
    return out


def pair_traces(ctx: StageContext, pairs: list[dict], tokenizer, prefix: str) -> list[dict]:
    """A sample of pairs as `traces` rows (step 0): the chosen answer with reward +1, the rejected with -1."""
    import random

    from engine.rewards.parsing import think_token_split

    picked = random.Random(ctx.spec.seed).sample(pairs, min(TRACE_PAIRS, len(pairs)))
    rows = []
    for pair in picked:
        for side, reward in (("chosen", 1.0), ("rejected", -1.0)):
            text, tokens = pair[side], pair[f"{side}_tokens"]
            think, answer = think_token_split(text, tokens, tokenizer, prefix)
            rows.append({"run_id": ctx.run_id, "stage": STAGE, "step": 0, "prompt_id": pair["prompt_id"],
                         "prompt": pair["question"], "completion": text, "tokens": tokens, "think_tokens": think,
                         "answer_tokens": answer, "mode": pair[f"{side}_mode"], "correct": pair[f"{side}_correct"],
                         "reward": reward, "rewards": {"pair": reward, f"{pair['level']}_level": reward},
                         "difficulty": pair["difficulty"]})
    return rows


# ---- the stage ------------------------------------------------------------------------------------

def run(ctx: StageContext) -> str:
    """Sample, pair, train; returns "succeeded", "stopped", or "skipped" when no problem gives a pair."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from engine.data import load_examples
    from engine.models import load_model, lora_config, missing_lora_targets
    from engine.prompts import PREFIXES, render_prompt
    from engine.stages.sft import sft_prompt_mode

    spec, s = ctx.spec, ctx.spec.prefer
    if not spec.model.lora.enabled:
        raise StageFailed("model.lora.enabled: the prefer stage trains a LoRA adapter; turn LoRA on, or leave "
                          "the prefer stage out.")

    # ---- model (the SFT adapter, if one ran, is the start; TRL copies it as DPO's frozen reference) --
    start_adapter = ctx.outputs.get("sft_adapter")
    model, tokenizer, _ = load_model(spec.model, placement=ctx.placement, adapter=start_adapter,
                                     trainable=start_adapter is not None)
    peft_config = None
    if start_adapter is None:
        missing = missing_lora_targets(model, spec.model.lora.target_modules)
        if missing:
            raise StageFailed(f"model.lora.target_modules: the model has no modules named {', '.join(missing)}.")
        peft_config = lora_config(spec.model.lora)  # the reference is then the base (adapters off)

    # ---- data: the training problems on the run's prompt -----------------------------------------
    mode = sft_prompt_mode(spec)
    prefix = PREFIXES.get(mode, "")
    examples = load_examples(spec.data.source, n=spec.data.train_size, seed=spec.data.seed, split="train",
                             difficulty_mix=spec.data.mix(), columns=spec.data.columns())
    rows = [{"prompt_id": str(ex["id"]), "question": ex["question"], "answer": str(ex["answer"]),
             "difficulty": int(ex.get("difficulty") or 0), "prompt": render_prompt(ex["question"], tokenizer, mode)}
            for ex in examples]
    out_dir = ctx.checkpoint_dir(STAGE)
    resume_from = resume_point(ctx, STAGE, out_dir)  # the store forgets the steps that are trained again

    # ---- sampling (once, up front) ---------------------------------------------------------------
    if resume_from is None:
        ctx.event("info", f"prefer: sampling {s.samples_per_mode} think and {s.samples_per_mode} no-think "
                          f"answers to each of {len(rows)} problems", STAGE)
    problems = sample_all(ctx, model, tokenizer, rows, prefix)
    if problems is None:
        return "stopped"

    # ---- pairs -----------------------------------------------------------------------------------
    pairs: list[dict] = []
    for problem in problems:
        problem["preferred"], made = build_pairs(problem["samples"], margin=s.margin, group_cap=s.group_pairs,
                                                 instance_cap=s.instance_pairs)
        pairs += [{"prompt_id": problem["prompt_id"], "prompt": problem["prompt"], "question": problem["question"],
                   "difficulty": problem["difficulty"], "preferred": problem["preferred"], **p} for p in made]
    metrics = sampling_metrics(problems, pairs)
    if is_main_process():
        ctx.store.replace_pairs(ctx.run_id, STAGE, ({k: v for k, v in p.items() if k != "question"}
                                                    | {"prompt": p["question"]} for p in pairs))
        if resume_from is None:
            ctx.store.add_metrics(ctx.run_id, STAGE, 0, metrics)
            ctx.store.add_traces(pair_traces(ctx, pairs, tokenizer, prefix))
    by_level = ", ".join(f"{int(metrics[f'prefer/pairs/{lv}'])} {lv}-level" for lv in ("group", "instance"))
    acc = ", ".join(f"{m.replace('_', '-')} {metrics[f'prefer/accuracy/{m}']:.0%}" for m in ("think", "no_think")
                    if f"prefer/accuracy/{m}" in metrics)
    ctx.event("info", f"prefer: {len(pairs)} pairs ({by_level}) from {len(problems)} problems; sampled accuracy "
                      f"{acc or 'n/a'}; preferred long on {int(metrics['prefer/preferred/long'])}, short on "
                      f"{int(metrics['prefer/preferred/short'])}", STAGE, 0)
    if not pairs:
        ctx.event("warning", "prefer: skipped: no problem had a correct sampled answer, so there is nothing to "
                             "prefer. Run the sft stage first, or raise prefer.samples_per_mode or "
                             "prefer.max_completion_length; later stages start from the previous model.", STAGE)
        return "skipped"
    train_dataset = Dataset.from_dict({"prompt": [p["prompt"] for p in pairs],
                                       "chosen": [p["chosen"] for p in pairs],
                                       "rejected": [p["rejected"] for p in pairs]})

    # ---- trainer ---------------------------------------------------------------------------------
    config = DPOConfig(
        output_dir=str(out_dir), max_steps=s.max_steps, learning_rate=s.learning_rate,
        per_device_train_batch_size=s.batch_size, max_length=s.max_length, beta=s.beta, loss_type=[s.loss_type],
        save_strategy="steps", save_steps=s.save_steps, activation_checkpointing=True,
        **trainer_device_args(ctx),
    )
    stopper = StopOnRequest(ctx.store, ctx.run_id)
    reporter = StoreReporter(ctx, STAGE)
    trainer = DPOTrainer(model=model, args=config, train_dataset=train_dataset, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[stopper, reporter])

    # ---- train -----------------------------------------------------------------------------------
    train(trainer, resume_from)

    # ---- save ------------------------------------------------------------------------------------
    if reporter.fatal:
        raise StageFailed(reporter.fatal)
    status = "stopped" if stopper.stopped else "succeeded"
    if status != "succeeded":
        return status
    final = ctx.run_dir / ADAPTER_DIR
    if is_main_process():
        # the trained adapter only: TRL's frozen "ref" copy of the start is not part of the output
        trainer.model.save_pretrained(str(final), selected_adapters=["default"])
        tokenizer.save_pretrained(str(final))
        meta: dict[str, Any] = {"step": trainer.state.global_step, "stage": STAGE, "pairs": len(pairs),
                                "start": str(start_adapter) if start_adapter else "base"}
        ctx.store.add_artifact(ctx.run_id, "adapter", final, meta, stage=STAGE)
    ctx.outputs["prefer_adapter"] = final
    return status
