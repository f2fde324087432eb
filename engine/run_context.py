"""What a stage runs in, without the training libraries: the run context, the stage's error, the rank check
and the data check. The worker process imports only this (no torch, no transformers): its stages run in
children of their own, and what it holds itself stays small for the whole run (about 0.1 GB, not 0.4)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.models import Placement
    from engine.spec import RunSpec
    from engine.store import RunStore

log = logging.getLogger("engine.stages")


class StageFailed(RuntimeError):
    """A stage cannot go on; the message says why and what to change."""


def is_main_process() -> bool:
    """Only rank 0 writes to the store when the run is launched on several processes."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class StageContext:
    store: RunStore
    run_id: int
    run_dir: Path
    spec: RunSpec
    placement: Placement | None  # None in the worker process: each stage's process chooses its own
    resume: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)  # what a stage hands the next (adapter paths, ...)

    def checkpoint_dir(self, stage: str) -> Path:
        return self.run_dir / "checkpoints" / stage

    def event(self, level: str, message: str, stage: str | None = None, step: int | None = None,
              code: str | None = None) -> None:
        getattr(log, "warning" if level == "warning" else "info" if level != "error" else "error")(message)
        if is_main_process():
            self.store.log_event(self.run_id, level, message, stage, step, code)


def check_data(spec: RunSpec) -> None:
    """Raise DataError (with the counts) when the data cannot feed every stage of the spec: before
    any stage starts, so a run never ends 'succeeded' with an adapter that trained on nothing, and
    never spends an SFT stage before a GRPO stage that has too few prompts. Each stage checks again."""
    from engine.data import load_examples
    from engine.spec import grpo_prompts_per_step

    d = spec.data
    g = spec.grpo
    needs = [(1, f"the {stage} stage") for stage in ("sft", "judge", "prefer") if stage in spec.stages]
    if "grpo" in spec.stages:
        needs.append((grpo_prompts_per_step(g) * int(os.environ.get("WORLD_SIZE", "1")),
                      f"one GRPO step (batch_size {g.batch_size} x gradient_accumulation_steps "
                      f"{g.gradient_accumulation_steps} / num_generations {g.num_generations})"))
    if needs:
        min_rows, needed_for = max(needs)
        load_examples(d.source, n=d.train_size, seed=d.seed, split="train", difficulty_mix=d.mix(),
                      columns=d.columns(), min_rows=min_rows, needed_for=needed_for)
    if "eval" in spec.stages:
        load_examples(d.source, n=d.eval_size, seed=d.seed, split="eval", difficulty_mix=d.mix(),
                      columns=d.columns(), min_rows=1, needed_for="the eval stage")
