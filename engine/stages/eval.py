"""Evaluation stage: the trained model (and the base, for the deltas) on the held-out split.

Every generation goes to the `generations` table under one `evaluations` row for the run, the
summary (pass@1, pass@k, tokens, think-rate by difficulty, EoT, dAcc%, dTok%) to that row and
to the run's metrics (stage "eval"), so the Runs page and the model card can show them.
"""

from __future__ import annotations

from engine.eval_sources import run_examples, run_sources, source_record
from engine.evaluate import EvalSettings, run_evaluation
from engine.stages import StageContext, StageFailed, is_main_process

STAGE = "eval"


def run(ctx: StageContext) -> str:
    if not is_main_process():  # generation is not sharded: one process evaluates and writes
        return "succeeded"
    spec, e = ctx.spec, ctx.spec.eval
    examples = run_examples(spec)
    settings = EvalSettings(num_samples=e.num_samples, temperature=e.temperature,
                            max_completion_length=e.max_completion_length, batch_size=e.batch_size,
                            prompt_mode=spec.rewards.resolved_prompt_mode(), seed=spec.seed,
                            budgets=list(e.budgets), checkpoints=e.checkpoints)
    try:  # base, after SFT, the chosen checkpoints, trained: read from the run's artifacts
        sources = run_sources(ctx.store, ctx.run_id, e.checkpoints, e.compare_base)
    except ValueError as exc:
        raise StageFailed(f"eval.checkpoints: {exc}") from None
    eval_id = ctx.store.create_evaluation([source_record(s) for s in sources], spec.data.source, len(examples),
                                          settings.__dict__, run_id=ctx.run_id)
    per_source = len(examples) * (1 + len(set(e.budgets)))
    ctx.store.set_stage(ctx.run_id, STAGE, total_steps=len(sources) * per_source, progress=0)
    ctx.event("info", f"eval: {len(examples)} held-out prompts x {e.num_samples} sample(s) on "
                      f"{', '.join(s.label for s in sources)}"
                      + (f", thinking budgets {sorted(set(e.budgets))}" if e.budgets else ""), STAGE)
    summary = run_evaluation(ctx.store, eval_id, placement=ctx.placement, examples=examples,
                             default_model=spec.model, sources=sources)
    ctx.store.set_stage(ctx.run_id, STAGE, progress=len(sources) * per_source)
    trained_label = "trained" if any(s.role == "trained" for s in sources) else "base"
    for label, values in summary.items():
        prefix = "eval/" if label in (trained_label, "deltas") else f"eval/{label}/"
        ctx.store.add_metrics(ctx.run_id, STAGE, 0, {prefix + k: v for k, v in values.items()
                                                     if isinstance(v, int | float)})
    ours = summary.get(trained_label, {})
    line = f"eval: accuracy {ours.get('accuracy', float('nan')):.3f}, {ours.get('tokens', float('nan')):.1f} tokens"
    if "deltas" in summary:
        d = summary["deltas"]
        base = summary["base"]
        acc = f"dAcc {d['d_accuracy_pct']:+.1f}%" if "d_accuracy_pct" in d else \
            f"accuracy {ours['accuracy'] - base['accuracy']:+.3f} (no dAcc%: the base scored 0)"
        tok = f", dTok {d['d_tokens_pct']:+.1f}%" if "d_tokens_pct" in d else ""
        line += f" (base {base['accuracy']:.3f}, {base['tokens']:.1f} tokens; {acc}{tok})"
    ctx.event("info", line, STAGE)
    ctx.outputs["eval_id"] = eval_id
    return "succeeded"
